"""The decision log in the shared PostgreSQL database: one log for every replica.

Same records (`proxy.decisions.DecisionRecord`), same rules as the embedded log: blocks and
hides are written before `record` returns, the rest in batches by one writer thread. When the
database is down nothing is lost while the process lives: refusals are queued too (with an
error in the log), the writer keeps its batch and tries again with a growing pause, up to
`QUEUE_MAX` decisions (past that the oldest are dropped, counted and logged).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from proxy.decisions import _COLUMNS, _FIELDS, _INSERT, BATCH, DURABLE_ACTIONS, DecisionRecord, _row
from proxy.storage.sql import PgDatabase, database_errors, glob_to_regex

log = logging.getLogger(__name__)

DIRECT_TIMEOUT = 2.0  # seconds a durable write waits for a pooled connection
QUEUE_MAX = 200_000  # decisions held in memory while the database is down
RETRY_MAX = 30.0  # seconds between retries at most


class SharedDecisionLog:
    """`proxy.decisions.DecisionLog`'s `record`/`close`, plus `query`, on PostgreSQL."""

    def __init__(self, db: PgDatabase):
        self.db = db
        self.dropped = 0
        self._pending: collections.deque[DecisionRecord] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(
            target=self._write_loop, name="decision-log-shared", daemon=True
        )
        self._thread.start()

    def record(self, *records: DecisionRecord) -> None:
        durable = [r for r in records if r.action in DURABLE_ACTIONS]
        if durable and self.db.health.ok:
            try:
                self._insert(durable, timeout=DIRECT_TIMEOUT)
                durable = []
            except database_errors() as exc:
                log.error(
                    "%d refusals kept in memory until the database is back: %s", len(durable), exc
                )
        self._enqueue([r for r in records if r.action not in DURABLE_ACTIONS] + durable)

    def _enqueue(self, records: Sequence[DecisionRecord]) -> None:
        if not records:
            return
        with self._cond:
            self._pending.extend(records)
            while len(self._pending) > QUEUE_MAX:
                self._pending.popleft()
                self.dropped += 1
            self._cond.notify()

    def _insert(self, records: Sequence[DecisionRecord], timeout: float | None = None) -> None:
        rows = [list(_row(r)) for r in records]
        with (
            self.db.connection(timeout=timeout) as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.executemany(_INSERT.replace("?", "%s"), rows)

    def _write_loop(self) -> None:
        pause = 0.5
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if not self._pending and self._stop:
                    return
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            try:
                self._insert(batch)
            except database_errors():
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                    if self._stop:  # closing with the database down: say what is lost
                        lost = len(self._pending)
                        log.error("%d decisions not written: the database is down", lost)
                        return
                    self._cond.wait(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            pause = 0.5

    def close(self) -> None:
        """Write what is queued (while the database answers), then stop the writer."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(30)

    def query(
        self,
        *,
        package: str | None = None,
        actions: Sequence[str] = (),
        since: float | None = None,
        limit: int | None = None,
        group: str | None = None,
        token: str | None = None,
    ) -> Iterator[DecisionRecord]:
        """Logged decisions, newest first, filtered as `proxy.decisions.query` does."""
        where: list[str] = []
        args: list[Any] = []
        if package:
            where.append("package ~ ?")
            args.append(glob_to_regex(package))
        if actions:
            where.append("(action = ANY(?) OR intended = ANY(?))")
            args.extend([list(actions), list(actions)])
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if group is not None:
            where.append("client_group = ?")
            args.append("" if group == "anonymous" else group)
        if token is not None:
            where.append("token = ?")
            args.append(token)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM decisions"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self.db.query(sql, args):
            values = dict(zip(_FIELDS, row, strict=True))
            values["reasons"] = tuple(orjson.loads(values["reasons"]))
            yield DecisionRecord(**values)
