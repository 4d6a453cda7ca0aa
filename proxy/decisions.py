"""The decision log: every policy decision Floodgate enforces, in an embedded SQLite database.

Allows, warnings and monitors go through a queue to one writer thread that commits in batches,
so recording them costs the request a queue put, not a disk write. Blocks and hides are
committed before `record` returns (before the response is sent): a refusal is never lost to a
crash. `query` serves `floodgate decisions`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

BATCH = 500  # rows per commit at most
DURABLE_ACTIONS = frozenset({"block", "hide"})  # committed before the response
DIRECT_TIMEOUT = 2.0  # seconds a durable write waits for the database lock
SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    intended TEXT NOT NULL,
    rule TEXT NOT NULL,
    label TEXT,
    score INTEGER,
    reasons TEXT NOT NULL,
    waiver TEXT NOT NULL,
    via TEXT NOT NULL,
    client TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    token TEXT NOT NULL,
    request_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    policy_digest TEXT NOT NULL,
    client_group TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS decisions_package ON decisions (package, time);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time);
"""
# Columns added after the first release, with their definitions: added to older logs on open.
ADDED_COLUMNS = {"client_group": "TEXT NOT NULL DEFAULT ''"}


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One logged decision. `via` says where it was made: packument, tarball, audit."""

    time: float
    package: str
    version: str
    action: str
    intended: str
    rule: str
    label: str | None
    score: int | None
    reasons: tuple[str, ...]
    waiver: str
    via: str
    client: str
    user_agent: str
    token: str
    request_id: str
    policy: str
    policy_digest: str
    group: str = ""  # the caller's group ("" anonymous); `token` holds the token's name

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out


_FIELDS = list(DecisionRecord.__dataclass_fields__)
_COLUMN_OF = {"group": "client_group"}  # `group` is an SQL keyword
_COLUMNS = [_COLUMN_OF.get(f, f) for f in _FIELDS]


def _connect(path: Path, timeout: float = 30) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=timeout)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    _add_columns(conn)
    return conn


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a log written by an older Floodgate up to today's columns."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    for column, definition in ADDED_COLUMNS.items():
        if column not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                conn.execute(f"ALTER TABLE decisions ADD COLUMN {column} {definition}")
    conn.commit()


_INSERT = (
    f"INSERT INTO decisions ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


class DecisionWriter(Protocol):
    """What the proxy records decisions to: `DecisionLog` (SQLite), or the shared log in
    PostgreSQL (`proxy.storage.decisions.SharedDecisionLog`)."""

    def record(self, *records: DecisionRecord) -> None: ...

    def close(self) -> None: ...


class DecisionLog:
    """Append-only decision log: blocks and hides committed at once, the rest in batches."""

    def __init__(self, path: Path):
        self.path = path
        self._queue: queue.SimpleQueue[DecisionRecord | None] = queue.SimpleQueue()
        self._conn = _connect(path)
        self._direct = _connect(path, DIRECT_TIMEOUT)  # for durable writes, on the caller
        # In WAL mode a commit is in the log file once written: it survives the process being
        # killed (not a power cut) without an fsync per refusal.
        self._direct.execute("PRAGMA synchronous=NORMAL")
        self._direct_lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_loop, name="decision-log", daemon=True)
        self._thread.start()

    def record(self, *records: DecisionRecord) -> None:
        """Log `records` (one transaction for the durable ones among them)."""
        durable = [r for r in records if r.action in DURABLE_ACTIONS]
        for r in records:
            if r.action not in DURABLE_ACTIONS:
                self._queue.put(r)
        if not durable:
            return
        try:
            with self._direct_lock, self._direct:
                self._direct.executemany(_INSERT, [_row(r) for r in durable])
        except sqlite3.Error as exc:  # full disk, lock held too long: keep it queued
            log.error(
                "could not write %d decisions to %s at once (%s); queued instead",
                len(durable),
                self.path,
                exc,
            )
            for r in durable:
                self._queue.put(r)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(30)
        self._conn.close()
        with self._direct_lock:
            self._direct.close()

    def _write_loop(self) -> None:
        sql = _INSERT
        stop = False
        while not stop:
            batch: list[DecisionRecord] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stop = True
                    break
                batch.append(item)
                if len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                rows = [_row(r) for r in batch]
                try:
                    with self._conn:
                        self._conn.executemany(sql, rows)
                except sqlite3.Error as exc:
                    log.error("could not write %d decisions to %s: %s", len(rows), self.path, exc)


def _row(r: DecisionRecord) -> tuple[Any, ...]:
    values = [getattr(r, f) for f in _FIELDS]
    values[_FIELDS.index("reasons")] = orjson.dumps(list(r.reasons)).decode()
    return tuple(values)


def query(
    path: Path,
    *,
    package: str | None = None,
    actions: Sequence[str] = (),
    since: float | None = None,
    limit: int | None = None,
    group: str | None = None,
    token: str | None = None,
) -> Iterator[DecisionRecord]:
    """Logged decisions, newest first, filtered by package (glob), actions, time, the caller's
    group ("" or "anonymous": anonymous callers) and token name."""
    if not path.exists():
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        where: list[str] = []
        args: list[str | float] = []
        if package:
            where.append("package GLOB ?")
            args.append(package)
        if actions:
            where.append(
                f"(action IN ({', '.join('?' for _ in actions)}) "
                f"OR intended IN ({', '.join('?' for _ in actions)}))"
            )
            args.extend(actions)
            args.extend(actions)
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        have = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
        if group is not None:
            wanted = "" if group == "anonymous" else group
            if "client_group" in have:
                where.append("client_group = ?")
                args.append(wanted)
            elif wanted:
                return  # a log older than groups: every caller was anonymous
        if token is not None:
            where.append("token = ?")
            args.append(token)
        columns = [c if c in have else f"{_default(c)} AS {c}" for c in _COLUMNS]
        sql = f"SELECT {', '.join(columns)} FROM decisions"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in conn.execute(sql, args):
            values = dict(zip(_FIELDS, row, strict=True))
            values["reasons"] = tuple(orjson.loads(values["reasons"]))
            yield DecisionRecord(**values)
    finally:
        conn.close()


def _default(column: str) -> str:
    """The SQL default of a column a log written by an older Floodgate lacks."""
    return ADDED_COLUMNS[column].rsplit("DEFAULT ", 1)[1]


def now() -> float:
    return time.time()
