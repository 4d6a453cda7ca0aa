"""The SQL side of storage: one small interface, SQLite (embedded) and PostgreSQL (shared).

The detector's indexes, the verdict store and the decision log speak to `SqlDatabase`: `query`
for one statement, `transaction()` for several that commit together. Their SQL is written once,
in the dialect both engines accept (`?` placeholders, `INSERT ... ON CONFLICT`); `to_postgres`
turns placeholders and SQLite's column types into PostgreSQL's.

PostgreSQL is reached through psycopg 3 (maintained, both a sync and an async API over one
libpq binding: the stores are called from worker threads, the notification listener runs on the
event loop) with a `psycopg_pool` connection pool. The schema is created by `migrate`, which
runs on start (and as `floodgate migrate`) under a PostgreSQL advisory lock, so two replicas
starting at once apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from proxy.storage.health import Health

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

POOL_MAX = 8  # connections per replica
POOL_TIMEOUT = 5.0  # seconds a caller waits for a pooled connection (the database is down)
CONNECT_TIMEOUT = 5  # seconds to open one connection
MIGRATION_LOCK = 0x466C6F6F64  # pg_advisory_lock key held while migrating ("Flood")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlConnection(Protocol):
    """What a transaction offers: sqlite3.Connection's `execute` and `executemany`."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> Any: ...


class SqlDatabase(Protocol):
    """One statement with `query`; several that commit together in `transaction()`."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> Any: ...  # a context manager yielding a SqlConnection

    def close(self) -> None: ...


class DatabaseDown(Exception):
    """The shared database is known to be down: the call was not even tried."""


def database_errors() -> tuple[type[Exception], ...]:
    """The exceptions a store raises when its database fails (full disk, server down)."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError:  # pragma: no cover - the shared extra is not installed
        return (sqlite3.Error, DatabaseDown)
    return (sqlite3.Error, DatabaseDown, psycopg.Error, psycopg_pool.PoolTimeout)


def unreachable_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean the database cannot be reached (not a bad statement)."""
    import psycopg
    import psycopg_pool

    return (
        DatabaseDown,
        psycopg.OperationalError,
        psycopg.InterfaceError,
        psycopg_pool.PoolTimeout,
    )


# -- dialect ---------------------------------------------------------------------------------

_DDL = (
    (re.compile(r"\s+WITHOUT ROWID", re.IGNORECASE), ""),
    (re.compile(r"\bINTEGER PRIMARY KEY\b", re.IGNORECASE), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.IGNORECASE), "BIGINT"),
    (re.compile(r"\bREAL\b", re.IGNORECASE), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.IGNORECASE), "BYTEA"),
    # SQLite compares text byte by byte: the C collation keeps ORDER BY the same.
    (re.compile(r"\bTEXT\b", re.IGNORECASE), 'TEXT COLLATE "C"'),
)


def to_postgres(sql: str) -> str:
    """One statement in both engines' dialect, as PostgreSQL (and psycopg) want it (pure):
    `?` becomes `%s` (a literal `%` doubled), and in CREATE TABLE SQLite's types become
    PostgreSQL's. The statements given never hold a `?` or `%` inside a string literal."""
    out = sql.replace("%", "%%").replace("?", "%s")
    if out.lstrip().upper().startswith("CREATE TABLE"):
        for pattern, replacement in _DDL:
            out = pattern.sub(replacement, out)
    return out


def split_script(script: str) -> tuple[str, ...]:
    """An SQL script's statements (pure; no `;` inside the statements' literals)."""
    return tuple(s.strip() for s in script.split(";") if s.strip())


def glob_to_regex(pattern: str) -> str:
    """SQLite's GLOB (case-sensitive `*`, `?`, `[...]`) as an anchored POSIX regex (pure)."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]  # a class, `[^...]` negated, in both syntaxes
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)


# -- PostgreSQL ------------------------------------------------------------------------------


class _PgCursor:
    def __init__(self, cursor: psycopg.Cursor[Any]):
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class _PgConnection:
    """A connection in a transaction, with sqlite3.Connection's `execute`/`executemany`."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return _PgCursor(self._conn.execute(to_postgres(sql), list(parameters)))

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(to_postgres(sql), [list(p) for p in seq_of_parameters])


def open_pool(url: str, *, max_size: int = POOL_MAX, name: str = "floodgate") -> ConnectionPool:
    """A connection pool to `url` that does not wait for the server: a database that is down
    makes callers fail after `POOL_TIMEOUT`, and the pool reconnects once it is back."""
    from psycopg_pool import ConnectionPool

    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        timeout=POOL_TIMEOUT,
        name=name,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
        check=ConnectionPool.check_connection,
        reconnect_timeout=0,  # keep trying for ever; the default gives up after 5 minutes
        open=True,
    )


class PgDatabase:
    """`SqlDatabase` on a PostgreSQL pool; safe from any thread.

    `health` follows whether the server answers. While it is down, calls fail at once
    (DatabaseDown) instead of each waiting `POOL_TIMEOUT`; with `degrade`, a read (SELECT) that
    cannot reach the server answers "nothing known" (no rows) instead of raising, so that the
    proxy goes on assessing packages on their own while the shared memory is away. Writes
    always raise: their callers keep or drop them, and say so."""

    def __init__(self, url: str, pool: ConnectionPool | None = None, *, degrade: bool = False):
        self.url = url
        self.pool = pool if pool is not None else open_pool(url)
        self._owns_pool = pool is None
        self.degrade = degrade
        self.health = Health("the shared database", probe=self._probe)
        self.migrated = False  # see `migrate`: done before the first connection is used
        self._migrating = threading.Lock()

    def migrate(self) -> None:
        """Bring the schema up to date (once per process; `migrate` below)."""
        with self._migrating:
            if not self.migrated:
                before, after = migrate(self.url)
                if before != after:
                    log.info("shared database schema: version %d -> %d", before, after)
                self.migrated = True

    def _probe(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if sql.lstrip()[:7].upper() == "CREATE ":
            return []  # the stores' own schema statements: here the migrations own the schema
        try:
            with self.connection() as conn:
                cur = conn.execute(to_postgres(sql), list(params))
                return cur.fetchall() if cur.description is not None else []
        except unreachable_errors():
            if self.degrade and sql.lstrip()[:6].upper() == "SELECT":
                return []
            raise

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; `health` learns whether the server answered."""
        if self.health.fail_fast():
            raise DatabaseDown(f"{self.health.what} is down: {self.health.error}")
        try:
            if not self.migrated:  # it could not be reached at start
                self.migrate()
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except unreachable_errors() as exc:
            if not isinstance(exc, DatabaseDown):
                self.health.failed(exc)
            raise
        self.health.succeeded()

    @contextmanager
    def transaction(self) -> Iterator[SqlConnection]:
        with self.connection() as conn, conn.transaction():
            yield _PgConnection(conn)

    def close(self) -> None:
        if self._owns_pool and not self.pool.closed:
            self.pool.close()


# -- migrations ------------------------------------------------------------------------------


def migrations() -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(version, what, statements in both dialects), oldest first. Never edit a released one:
    a later schema change is a new migration."""
    from proxy.decisions import SCHEMA as DECISIONS
    from proxy.detect import campaigns, clones, graph, store, wallets
    from proxy.hosted.store import SCHEMA as HOSTED
    from proxy.tokens import SCHEMA as TOKENS

    detector = clones.SCHEMA + wallets.SCHEMA + graph.SCHEMA + campaigns.SCHEMA
    return (
        (1, "detector indexes and verdicts", detector + store.SCHEMA),
        (2, "decision log", split_script(DECISIONS)),
        (3, "client tokens", split_script(TOKENS)),
        (4, "hosted packages", split_script(HOSTED)),
        (5, "package graph: who depends on a package", graph.INDEXES),
    )


def latest_version() -> int:
    return migrations()[-1][0]


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version the database is at (0: never migrated)."""
    row = conn.execute("SELECT to_regclass('floodgate_schema') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    got = conn.execute("SELECT max(version) FROM floodgate_schema").fetchone()
    return int(got[0]) if got is not None and got[0] is not None else 0


def migrate(url: str) -> tuple[int, int]:
    """Bring the database at `url` up to `latest_version()`; (version before, after).

    Holds an advisory lock while it works, so replicas starting together migrate one after
    the other (the second finds nothing to do); each migration commits with its version row,
    so a crash leaves the database at the previous version, never half-way."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS floodgate_schema (version INTEGER PRIMARY KEY,"
                " what TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            before = schema_version(conn)
            for version, what, statements in migrations():
                if version <= before:
                    continue
                with conn.transaction():
                    for statement in statements:
                        conn.execute(to_postgres(statement).replace("%%", "%"))
                    conn.execute(
                        "INSERT INTO floodgate_schema (version, what) VALUES (%s, %s)",
                        [version, what],
                    )
                log.info("database migrated to version %d (%s)", version, what)
            return before, schema_version(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
