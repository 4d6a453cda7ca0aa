"""The verdict store: verdicts persisted in SQLite so that a restart does not rescan.

Keyed by (name, version, integrity, detector version): a re-published tarball (new integrity)
or a new detector version is assessed afresh. A metadata-only verdict never replaces one made
with the tarball. Safe from any thread (one locked connection, WAL journaling).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson

from proxy.detect.db import Database
from proxy.detect.evaluate import DETECTOR_VERSION
from proxy.detect.model import Verdict
from proxy.storage.sql import SqlDatabase

log = logging.getLogger(__name__)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS verdicts ("
    " name TEXT NOT NULL, version TEXT NOT NULL, integrity TEXT NOT NULL,"
    " detector_version TEXT NOT NULL, tarball_scanned INTEGER NOT NULL,"
    " label TEXT NOT NULL, body BLOB NOT NULL, stored_at REAL NOT NULL,"
    " PRIMARY KEY (name, version, integrity, detector_version))",
)


class VerdictStore:
    """`get`/`put` verdicts by (name, version, integrity); `path=None` keeps them in memory,
    `db` stores them there instead (the shared PostgreSQL database)."""

    def __init__(self, path: Path | None = None, db: SqlDatabase | None = None):
        self.db: SqlDatabase = db if db is not None else Database(path, SCHEMA)

    def get(
        self,
        name: str,
        version: str,
        integrity: str | None,
        *,
        need_tarball: bool = False,
        detector_version: str = DETECTOR_VERSION,
    ) -> Verdict | None:
        """The stored verdict, or None; with `need_tarball`, only one made with the tarball."""
        rows = self.db.query(
            "SELECT body, tarball_scanned FROM verdicts WHERE name = ? AND version = ? "
            "AND integrity = ? AND detector_version = ?",
            (name, version, integrity or "", detector_version),
        )
        if not rows or (need_tarball and not rows[0][1]):
            return None
        try:
            return Verdict.from_json(orjson.loads(rows[0][0]))
        except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
            log.warning(
                "stored verdict for %s@%s is unreadable, rescanning: %s", name, version, exc
            )
            return None

    def for_package(
        self, name: str, *, detector_version: str = DETECTOR_VERSION
    ) -> dict[tuple[str, str], Verdict]:
        """Every tarball verdict stored for `name`, keyed by (version, integrity or "")."""
        rows = self.db.query(
            "SELECT version, integrity, body FROM verdicts WHERE name = ? "
            "AND detector_version = ? AND tarball_scanned = 1",
            (name, detector_version),
        )
        out: dict[tuple[str, str], Verdict] = {}
        for version, integrity, body in rows:
            try:
                out[(str(version), str(integrity))] = Verdict.from_json(orjson.loads(body))
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue
        return out

    def put(self, verdict: Verdict, integrity: str | None) -> None:
        """Store `verdict` unless a tarball-based one is already stored for the same key."""
        key = (verdict.name, verdict.version, integrity or "", verdict.detector_version)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT tarball_scanned FROM verdicts WHERE name = ? AND version = ? "
                "AND integrity = ? AND detector_version = ?",
                key,
            ).fetchone()
            if row is not None and row[0] and not verdict.tarball_scanned:
                return
            conn.execute(
                "INSERT INTO verdicts (name, version, integrity, detector_version, tarball_scanned,"
                " label, body, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name, version, integrity, detector_version) DO UPDATE SET"
                " tarball_scanned = excluded.tarball_scanned, label = excluded.label,"
                " body = excluded.body, stored_at = excluded.stored_at",
                (
                    *key,
                    int(verdict.tarball_scanned),
                    verdict.label.value,
                    orjson.dumps(verdict.to_json()),
                    time.time(),
                ),
            )

    def close(self) -> None:
        self.db.close()
