"""A small SQLite handle shared by the detector's on-disk indexes and the verdict store.

One connection guarded by a lock, so it is safe from any thread (the proxy assesses in worker
threads); WAL journaling with `synchronous=NORMAL`, so a commit costs no fsync and readers do
not block the writer. `path=None` keeps everything in memory (tests, the evaluation script).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 5.0  # seconds another process may hold the write lock


class Database:
    """A locked SQLite connection with a schema applied at open."""

    def __init__(self, path: Path | None, schema: Iterable[str]):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            ":memory:" if path is None else str(path),
            timeout=BUSY_TIMEOUT,
            check_same_thread=False,
            isolation_level=None,  # explicit transactions only
        )
        self._lock = threading.RLock()
        with self._lock:
            if path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for statement in schema:
                self._conn.execute(statement)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
