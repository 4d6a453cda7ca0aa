"""What replicas share at run time: one fetch (and one scan) per tarball, cluster-wide, and
change notifications (`PgNotifier`).

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
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import orjson
from anyio.abc import TaskStatus

from proxy.storage.health import Health
from proxy.storage.sql import database_errors

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from proxy.storage.sql import PgDatabase

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

    def __init__(self, pool: ConnectionPool, health: Health, wait: float = LEASE_WAIT):
        self.pool = pool
        self.health = health  # the database's: a lease is not waited for while it is down
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

        if self.health.fail_fast():
            return None
        try:
            conn = self.pool.getconn()
        except database_errors() as exc:
            self.health.failed(exc)
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
        self.health.succeeded()
        return conn

    def _unlock(self, conn: Any, key: int) -> None:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        except database_errors() as exc:  # the session is gone, and its locks with it
            log.info("releasing a lease failed (%s); the session's end releases it", exc)
        finally:
            self.pool.putconn(conn)


CHANNEL = "floodgate"  # the PostgreSQL notification channel replicas listen on
PAYLOAD_MAX = 7900  # bytes: NOTIFY payloads are limited to 8000
RECONNECT_MAX = 30.0  # seconds between attempts to listen again at most
RESYNC = "resync"  # the kind `listen` hands over itself after listening again (never sent)


class PgNotifier:
    """Change notifications between replicas over PostgreSQL LISTEN/NOTIFY.

    PostgreSQL is already what replicas share, so this needs no other server (Redis pub/sub
    would be one more thing to run and to lose); a notification is sent when the transaction
    that made the change has committed, and a replica that was not listening (restarting, or
    its connection down) misses it but loses nothing lasting: what it serves from memory is
    revalidated within `packument_ttl`, and verdicts are read from the database.

    Messages are (kind, subject): ("packument", name) when a replica fetched a new packument
    of a package (the others drop their copy from memory), ("verdict", name) when it stored a
    tarball verdict (the others plan that package afresh). After listening again, `listen` calls
    `handle("resync", "")`: whatever changed meanwhile was missed, and what must not wait for
    `packument_ttl` (the hosted documents) is dropped."""

    def __init__(self, db: PgDatabase, replica: str | None = None):
        self.db = db
        self.replica = replica or uuid.uuid4().hex[:12]
        self.received = 0
        self.listening = False

    def publish(self, kind: str, subject: str) -> None:
        """Tell the other replicas (blocking: call from a thread); a database that is down
        makes it a no-op (its health says so)."""
        payload = orjson.dumps({"r": self.replica, "k": kind, "s": subject}).decode()
        if len(payload.encode()) > PAYLOAD_MAX:
            return
        with contextlib.suppress(*database_errors()):
            self.db.query("SELECT pg_notify(?, ?)", (CHANNEL, payload))

    async def listen(
        self,
        handle: Callable[[str, str], None],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call `handle(kind, subject)` for every other replica's message, for ever; listens
        again (with a growing pause) after the connection is lost. Started (for `tg.start`)
        once it first listens."""
        import psycopg

        pause = 0.5
        started = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.db.url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if not self.listening:
                        log.info("listening for other replicas' changes")
                    self.listening, pause = True, 0.5
                    if not started:
                        started = True
                        task_status.started()
                    else:  # notifications may have been missed meanwhile
                        self._call(handle, RESYNC, "")
                    async for notice in conn.notifies():
                        self._dispatch(notice.payload, handle)
            except (psycopg.Error, OSError) as exc:
                if self.listening:
                    log.warning("lost the change notifications (%s): listening again", exc)
                self.listening = False
            await anyio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    def _dispatch(self, payload: str, handle: Callable[[str, str], None]) -> None:
        try:
            message = orjson.loads(payload)
            origin, kind, subject = message["r"], message["k"], message["s"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed change notification: %r", payload[:200])
            return
        if origin == self.replica or not isinstance(subject, str) or kind == RESYNC:
            return
        self.received += 1
        self._call(handle, str(kind), subject)

    @staticmethod
    def _call(handle: Callable[[str, str], None], kind: str, subject: str) -> None:
        try:
            handle(kind, subject)
        except Exception:
            log.exception("handling the change notification (%s, %r) failed", kind, subject[:200])
