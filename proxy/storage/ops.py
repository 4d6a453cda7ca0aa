"""Operations on storage: `floodgate storage check`, and moving between embedded and shared.

`check` proves what a replica needs: the database answers, this user may write to it, its
schema is at the version this Floodgate expects; the bucket answers and an object can be
written, read back and deleted.

`copy_storage` copies everything Floodgate keeps from one storage to the other (embedded →
shared to move a single node up, shared → embedded to take a copy down): the detector's
indexes, the verdicts, the decision log and the client tokens row by row (rows already there are
kept, so running it twice copies nothing twice), the hosted packages (their tarballs, from and
to wherever each side keeps them, then their documents and audit events: `copy_hosted`), then
the tarball cache (each verified against the digest it is named by; a file that does not match
is skipped and counted) and the saved packuments.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.detect.db import Database
from proxy.errors import HostedUnavailable
from proxy.files import TMP_SUFFIX, write_atomically
from proxy.settings import Settings
from proxy.storage.backends import DECISIONS_FILE
from proxy.storage.sql import SqlDatabase, database_errors

if TYPE_CHECKING:
    from proxy.hosted.store import HostedStore
    from proxy.storage.sql import PgDatabase

log = logging.getLogger(__name__)

# (file under cache_dir, tables) of the embedded storage.
EMBEDDED_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "detector/detector.sqlite3",
        (
            "clone_files",
            "wallet_names",
            "dep_edges",
            "name_labels",
            "campaign_members",
            "campaign_keys",
            "package_repos",
        ),
    ),
    ("detector/verdicts.sqlite3", ("verdicts",)),
    (DECISIONS_FILE, ("decisions",)),
    ("tokens.sqlite3", ("tokens",)),  # client tokens (their digests): a moved node keeps them
)
# Decisions and hosted events have no natural key: a row is "already there" when these match.
DECISION_IDENTITY = ("time", "package", "version", "action", "request_id", "client")
HOSTED_EVENT_IDENTITY = ("time", "event", "package", "version", "detail", "token", "client")
IDENTITY = {"decisions": DECISION_IDENTITY, "hosted_events": HOSTED_EVENT_IDENTITY}
# The hosted packages' tables, copied after their tarballs (`copy_hosted`).
HOSTED_TABLES = ("hosted_packages", "hosted_events")
BATCH = 500


@dataclass
class CheckLine:
    ok: bool
    what: str
    detail: str


def check(settings: Settings) -> list[CheckLine]:
    """One line per check of the shared storage the settings name (none: embedded)."""
    out: list[CheckLine] = []
    if settings.database_url is None and settings.blob_store is None:
        out.append(CheckLine(True, "storage", f"embedded, under {settings.cache_dir}"))
    if settings.database_url is not None:
        out.extend(_check_database(settings.database_url))
    if settings.blob_store is not None:
        out.extend(_check_bucket(settings.blob_store))
    return out


def _check_database(url: str) -> list[CheckLine]:
    import psycopg

    from proxy.storage.sql import CONNECT_TIMEOUT, latest_version, schema_version

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            server = conn.info.server_version
            lines = [CheckLine(True, "database", f"PostgreSQL {server // 10000} answers")]
            version, latest = schema_version(conn), latest_version()
            if version == latest:
                lines.append(CheckLine(True, "schema", f"version {version} (current)"))
            elif version < latest:
                lines.append(
                    CheckLine(
                        False,
                        "schema",
                        f"version {version}, this Floodgate needs {latest}: run "
                        "`floodgate migrate` (serve also migrates on start)",
                    )
                )
            else:
                lines.append(
                    CheckLine(
                        False,
                        "schema",
                        f"version {version} is newer than this Floodgate's {latest}: upgrade it",
                    )
                )
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute("CREATE TEMP TABLE floodgate_probe (x int)")
                    if version >= 1:
                        conn.execute(
                            "INSERT INTO name_labels (name, label) VALUES (%s, 'clean')",
                            ["floodgate-storage-check"],
                        )
                lines.append(CheckLine(True, "permissions", "may create and write (rolled back)"))
            except psycopg.Error as exc:
                lines.append(CheckLine(False, "permissions", f"cannot write: {exc}"))
            return lines
    except psycopg.Error as exc:
        return [CheckLine(False, "database", f"cannot connect: {exc}")]


def _check_bucket(url: str) -> list[CheckLine]:
    from proxy.storage.blobs import BlobLocation, BlobMissing, BlobUnavailable, S3Bucket

    bucket = S3Bucket(BlobLocation.parse(url))
    key = bucket.location.key("floodgate-storage-check", uuid.uuid4().hex)
    body = b"floodgate storage check\n"
    try:
        bucket.put(key, body, len(body))
        got = bucket.get(key)
        bucket.delete(key)
    except (BlobUnavailable, BlobMissing) as exc:
        return [CheckLine(False, "object store", f"{url}: {exc}")]
    if got != body:
        return [CheckLine(False, "object store", f"{url}: read back other bytes than written")]
    return [CheckLine(True, "object store", f"{url}: write, read back and delete work")]


# -- copying ---------------------------------------------------------------------------------


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    tarballs: int = 0
    hosted_tarballs: int = 0
    packuments: int = 0
    skipped: list[str] = field(default_factory=list)  # what was not copied, and why

    def lines(self) -> list[str]:
        out = [f"{table}: {n} rows" for table, n in self.rows.items()]
        out.append(f"tarballs: {self.tarballs}")
        out.append(f"hosted tarballs: {self.hosted_tarballs}")
        out.append(f"saved packuments: {self.packuments}")
        out.extend(f"skipped {s}" for s in self.skipped)
        return out


def _columns(db: SqlDatabase, table: str, sqlite: bool) -> list[str]:
    if sqlite:
        return [str(r[1]) for r in db.query(f"PRAGMA table_info({table})")]
    rows = db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema() ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in rows]


def copy_table(source: SqlDatabase, target: SqlDatabase, table: str, *, source_sqlite: bool) -> int:
    """Copy `table`'s rows that `target` lacks; how many were copied."""
    have = _columns(source, table, source_sqlite)
    columns = [c for c in _columns(target, table, not source_sqlite) if c in have and c != "id"]
    if not columns:
        return 0
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    identity = IDENTITY.get(table)
    if identity is not None:
        where = " AND ".join(f"{c} = ?" for c in identity)
        insert = (
            f"INSERT INTO {table} ({names}) SELECT {marks} "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {where})"
        )
        index = [columns.index(c) for c in identity]
    else:
        insert = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608
        index = []
    copied = 0
    rows = source.query(f"SELECT {names} FROM {table}")  # noqa: S608
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        with target.transaction() as conn:
            for row in batch:
                values = [bytes(v) if isinstance(v, memoryview) else v for v in row]
                cur = conn.execute(insert, [*values, *(values[i] for i in index)])
                copied += max(cur.rowcount, 0)
    return copied


def _files(root: Path) -> Iterator[tuple[Path, str]]:
    """Files under `root` with their relative key, temp files left out."""
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(TMP_SUFFIX):
                path = Path(dirpath) / name
                yield path, path.relative_to(root).as_posix()


def tarball_matches(relative: str, data: bytes) -> bool:
    """Whether a tarball's bytes match the digest its key names (`alg/xx/hexdigest`; pure)."""
    parts = relative.split("/")
    if len(parts) != 3 or parts[0] not in hashlib.algorithms_available:
        return False
    return hashlib.new(parts[0], data).hexdigest() == parts[2]


def copy_storage(
    embedded_dir: Path,
    shared: Settings,
    *,
    up: bool,
    progress: Callable[[str], None] = lambda _line: None,
) -> CopyReport:
    """Copy the embedded storage under `embedded_dir` into the shared one `shared` names
    (`up`), or the shared one into `embedded_dir` (not `up`)."""
    from proxy.storage.backends import open_database

    report = CopyReport()
    db = open_database(shared)  # migrated
    if db is not None:
        try:
            for filename, tables in EMBEDDED_TABLES:
                path = embedded_dir / filename
                if up and not path.exists():
                    continue
                local = Database(path, _embedded_schema(filename))
                try:
                    for table in tables:
                        source, target = (local, db) if up else (db, local)
                        n = copy_table(source, target, table, source_sqlite=up)
                        report.rows[table] = report.rows.get(table, 0) + n
                        progress(f"{table}: {n} rows")
                finally:
                    local.close()
            _copy_hosted_storage(embedded_dir, shared, db, up, report, progress)
        except database_errors() as exc:
            report.skipped.append(f"the rest of the database: {exc}")
        except HostedUnavailable as exc:  # the object store, for the hosted tarballs
            report.skipped.append(f"the rest of the hosted packages: {exc}")
        finally:
            db.close()
    if shared.blob_store is not None:
        _copy_blobs(embedded_dir, shared.blob_store, up, report, progress)
    return report


def _copy_hosted_storage(
    embedded_dir: Path,
    shared: Settings,
    db: PgDatabase,
    up: bool,
    report: CopyReport,
    progress: Callable[[str], None],
) -> None:
    from proxy.hosted.store import HOSTED_DIR, HOSTED_FILE, HostedStore
    from proxy.storage.backends import open_hosted_store

    if up and not (embedded_dir / HOSTED_DIR / HOSTED_FILE).exists():
        return
    local = HostedStore.in_cache(embedded_dir)
    remote = open_hosted_store(shared, db)  # not closed here: it would close `db`
    try:
        source, target = (local, remote) if up else (remote, local)
        copy_hosted(source, target, source_sqlite=up, report=report, progress=progress)
    finally:
        local.close()


def copy_hosted(
    source: HostedStore,
    target: HostedStore,
    *,
    source_sqlite: bool,
    report: CopyReport,
    progress: Callable[[str], None] = lambda _line: None,
) -> None:
    """Copy the hosted packages `target` lacks: tarballs first (each read through the source's
    store, database row or object, verified against its SHA-512, and written the way the
    target keeps them), then the documents (so that no document arrives before a tarball it
    refers to) and the audit events. A document both have keeps the target's."""
    for key, package in source.tarballs():
        data = source.get_tarball(key)
        if data is None:
            report.skipped.append(f"hosted tarball {key[:16]}... of {package}: not in the source")
            continue
        if hashlib.sha512(data).hexdigest() != key:
            report.skipped.append(
                f"hosted tarball {key[:16]}... of {package}: does not match its digest"
            )
            continue
        if target.put_tarball(key, package, data):
            report.hosted_tarballs += 1
    progress(f"hosted tarballs: {report.hosted_tarballs}")
    for table in HOSTED_TABLES:
        n = copy_table(source.db, target.db, table, source_sqlite=source_sqlite)
        report.rows[table] = report.rows.get(table, 0) + n
        progress(f"{table}: {n} rows")


def _embedded_schema(filename: str) -> tuple[str, ...]:
    from proxy.decisions import SCHEMA as DECISIONS
    from proxy.detect import campaigns, clones, graph, store, wallets
    from proxy.storage.sql import split_script

    if filename.endswith("detector.sqlite3"):
        return clones.SCHEMA + wallets.SCHEMA + graph.SCHEMA + campaigns.SCHEMA
    if filename.endswith("verdicts.sqlite3"):
        return store.SCHEMA
    if filename == "tokens.sqlite3":
        from proxy.tokens import SCHEMA as TOKENS

        return split_script(TOKENS)
    return split_script(DECISIONS)


def _copy_blobs(
    embedded_dir: Path, url: str, up: bool, report: CopyReport, progress: Callable[[str], None]
) -> None:
    from proxy.storage.blobs import BlobLocation, BlobUnavailable, S3Bucket

    bucket = S3Bucket(BlobLocation.parse(url))
    for kind in ("tarballs", "packuments"):
        root = embedded_dir / kind
        try:
            if up:
                items = [(key, path) for path, key in _files(root)]
            else:
                prefix = bucket.location.key(kind) + "/"
                items = [(k[len(prefix) :], root / k[len(prefix) :]) for k in bucket.keys(kind)]
            for relative, path in items:
                blob = bucket.location.key(kind, relative)
                data = path.read_bytes() if up else bucket.get(blob)
                if kind == "tarballs" and not tarball_matches(relative, data):
                    report.skipped.append(f"{kind}/{relative}: does not match its digest")
                    continue
                if up:
                    bucket.put(blob, data, len(data), create_only=kind == "tarballs")
                else:
                    write_atomically(path, data)
                if kind == "tarballs":
                    report.tarballs += 1
                else:
                    report.packuments += 1
        except (BlobUnavailable, OSError) as exc:
            report.skipped.append(f"the rest of {kind}: {exc}")
        progress(f"{kind}: {report.tarballs if kind == 'tarballs' else report.packuments}")
