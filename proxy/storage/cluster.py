"""What replicas share at run time: one fetch (and one scan) per tarball, cluster-wide.

`PgLeases.hold(name)` takes a PostgreSQL session advisory lock on a 64-bit digest of `name`,
waiting at most `wait` seconds (`lock_timeout`, enforced by the server). A replica that
crashes while holding one loses its session and with it the lock, so it never wedges the
others; a replica that hangs while holding one makes the others wait `wait` seconds, after
which they go on without it (the work may then be done twice, never not at all). When the
database cannot be reached the block runs without the lock (each replica on its own).

`NoLeases` is the embedded default: one process, nothing to coordinate.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from proxy.storage.sql import database_errors

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

LEASE_WAIT = 60.0  # seconds a replica waits for another's fetch and scan of the same thing


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` (pure)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Lease(Protocol):
    """A cluster-wide lock on a name, held for a block; yields whether it is held."""

    def hold(self, name: str) -> AbstractAsyncContextManager[bool]: ...


class NoLeases:
    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        yield True


class PgLeases:
    """Advisory locks on a pool of their own (each held lock holds one connection)."""

    def __init__(self, pool: ConnectionPool, wait: float = LEASE_WAIT):
        self.pool = pool
        self.wait = wait
        self.waited = 0  # holds that had to wait for another replica (or task)

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """Yield True while holding the lock on `name`, False when going on without it."""
        key = lock_key(name)
        conn = await anyio.to_thread.run_sync(self._lock, key)
        try:
            yield conn is not None
        finally:
            if conn is not None:
                await anyio.to_thread.run_sync(self._unlock, conn, key)

    def _lock(self, key: int) -> Any:
        import psycopg

        try:
            conn = self.pool.getconn()
        except database_errors() as exc:
            log.info("no lease (the database cannot be reached: %s): going on alone", exc)
            return None
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            if got is None or not got[0]:
                self.waited += 1
                conn.execute(f"SET lock_timeout = {int(self.wait * 1000)}")
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", [key])
                finally:
                    conn.execute("SET lock_timeout = 0")
        except psycopg.errors.LockNotAvailable:
            log.warning("another replica held a lease for %.0fs: going on without it", self.wait)
            self.pool.putconn(conn)
            return None
        except database_errors() as exc:
            log.info("no lease (%s): going on alone", exc)
            self.pool.putconn(conn)
            return None
        return conn

    def _unlock(self, conn: Any, key: int) -> None:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        except database_errors() as exc:  # the session is gone, and its locks with it
            log.info("releasing a lease failed (%s); the session's end releases it", exc)
        finally:
            self.pool.putconn(conn)
