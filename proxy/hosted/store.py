"""Where the organization's own packages live: their documents, tarballs and audit events.

One implementation over `SqlDatabase`, so the embedded default and the shared backend run the
same SQL: the embedded store is `hosted/registry.sqlite3` in the cache folder (outside the
tarball cache, so cache eviction never touches it), the shared one the `hosted_*` tables of the
PostgreSQL database every replica uses (migration 4). Tarballs are rows of `hosted_tarballs`
keyed by the SHA-512 of their bytes, unless a `TarballBlobs` is given (the shared object store,
under its `hosted/` prefix): then the row only records which package owns the object.

A document is saved with compare-and-swap on its revision (`save(..., expected=rev)`): two
publishes racing on one package, on one replica or on two, never lose each other's versions;
the loser gets `Conflict` and tries again on the fresh document. Every write is one
transaction: a crash leaves the old document or the new one, never half of either.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from proxy.errors import Conflict, HostedUnavailable
from proxy.storage.sql import SqlConnection, SqlDatabase, database_errors, split_script

HOSTED_DIR = "hosted"
HOSTED_FILE = "registry.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS hosted_packages (
    name TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    rev TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hosted_tarballs (
    digest TEXT PRIMARY KEY,
    package TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS hosted_events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    detail TEXT NOT NULL,
    client_group TEXT NOT NULL,
    token TEXT NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hosted_events_time ON hosted_events (time);
CREATE INDEX IF NOT EXISTS hosted_events_package ON hosted_events (package, time)
"""
EVENT_KINDS = ("publish", "unpublish", "deprecate", "dist-tag", "refused")


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """A hosted package's document (the full packument JSON) and its revision."""

    body: bytes
    rev: str


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One change to a hosted package, or a refused attempt: who, what, when."""

    time: float
    event: str  # one of EVENT_KINDS
    package: str
    version: str  # "" for a whole-package event
    detail: str  # what changed, in words (the tag and version, the deprecation, the reason)
    group: str  # the caller's token group
    token: str  # the caller's token name
    client: str  # the caller's address

    def to_json(self) -> dict[str, object]:
        return {
            "time": self.time,
            "event": self.event,
            "package": self.package,
            "version": self.version,
            "detail": self.detail,
            "group": self.group,
            "token": self.token,
            "client": self.client,
        }


class TarballBlobs(Protocol):
    """Tarball bytes by key somewhere other than the database (the shared object store).
    `get` answers None for a key it does not have; every method raises HostedUnavailable when
    the store cannot be reached."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...


class HostedStore:
    """Hosted documents, tarballs and events in one `SqlDatabase`. Blocking: call from a
    worker thread.

    Every read goes through a transaction, never `query`: the shared database in degrade mode
    answers a SELECT it cannot send with no rows, which here would read as "not published".
    A database (or object store) that cannot be reached raises HostedUnavailable (503)."""

    def __init__(self, db: SqlDatabase, where: str, blobs: TarballBlobs | None = None):
        self.db = db
        self.where = where  # for logs and `floodgate doctor`
        self.blobs = blobs
        for statement in split_script(SCHEMA):
            db.query(statement)  # the shared database ignores these: its migrations own it

    @classmethod
    def in_cache(cls, cache_dir: Path) -> HostedStore:
        from proxy.detect.db import Database

        path = cache_dir / HOSTED_DIR / HOSTED_FILE
        return cls(Database(path, split_script(SCHEMA)), str(path))

    @contextmanager
    def _reaching(self, what: str) -> Iterator[SqlConnection]:
        """A transaction; the database's failures as HostedUnavailable naming `what`."""
        try:
            with self.db.transaction() as conn:
                yield conn
        except database_errors() as exc:
            raise HostedUnavailable(
                f"Floodgate cannot {what} (the hosted packages, in {self.where}): {exc}; "
                "nothing was lost, try again later"
            ) from exc

    def _rows(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reaching(what) as conn:
            return conn.execute(sql, params).fetchall()

    # -- documents -------------------------------------------------------------------------

    def load(self, name: str) -> StoredDoc | None:
        rows = self._rows(
            f"read {name}", "SELECT body, rev FROM hosted_packages WHERE name = ?", [name]
        )
        return StoredDoc(bytes(rows[0][0]), str(rows[0][1])) if rows else None

    def save(self, name: str, body: bytes, rev: str, expected: str | None) -> None:
        """Store `body` as revision `rev` if the stored revision is still `expected` (None:
        the package must not exist yet); else raise Conflict."""
        now = time.time()
        with self._reaching(f"store {name}") as conn:
            if expected is None:
                cur = conn.execute(
                    "INSERT INTO hosted_packages (name, body, rev, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    [name, body, rev, now],
                )
            else:
                cur = conn.execute(
                    "UPDATE hosted_packages SET body = ?, rev = ?, updated = ? "
                    "WHERE name = ? AND rev = ?",
                    [body, rev, now, name, expected],
                )
            if cur.rowcount != 1:
                raise Conflict(f"{name} was changed by another request; try again")

    def remove(self, name: str, expected: str) -> None:
        """Delete the document if it is still at revision `expected`; else raise Conflict."""
        with self._reaching(f"remove {name}") as conn:
            cur = conn.execute(
                "DELETE FROM hosted_packages WHERE name = ? AND rev = ?", [name, expected]
            )
            if cur.rowcount != 1:
                raise Conflict(f"{name} was changed by another request; try again")

    def names(self) -> list[str]:
        return [name for name, _rev in self.revisions()]

    def revisions(self) -> list[tuple[str, str]]:
        """Every hosted name with its document's revision (no bodies read)."""
        rows = self._rows(
            "list the hosted packages", "SELECT name, rev FROM hosted_packages ORDER BY name"
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def documents(self) -> Iterator[tuple[str, StoredDoc]]:
        """Every hosted document (search, export)."""
        for name in self.names():
            doc = self.load(name)
            if doc is not None:
                yield name, doc

    # -- tarballs --------------------------------------------------------------------------

    def put_tarball(self, key: str, package: str, data: bytes) -> bool:
        """Store a tarball under `key` (its SHA-512 in hex); idempotent. Whether it was new
        (False: it was stored already, and is not this call's to remove again)."""
        if self.blobs is not None:
            self.blobs.put(key, data)
            data = b""  # the row only records which package owns the blob
        with self._reaching(f"store a tarball of {package}") as conn:
            cur = conn.execute(
                "INSERT INTO hosted_tarballs (digest, package, data) VALUES (?, ?, ?) "
                "ON CONFLICT (digest) DO NOTHING",
                [key, package, data],
            )
            return cur.rowcount == 1

    def get_tarball(self, key: str) -> bytes | None:
        if self.blobs is not None:
            return self.blobs.get(key)
        rows = self._rows(
            "read a hosted tarball", "SELECT data FROM hosted_tarballs WHERE digest = ?", [key]
        )
        return bytes(rows[0][0]) if rows else None

    def drop_tarball(self, key: str) -> None:
        with self._reaching("remove a hosted tarball") as conn:
            conn.execute("DELETE FROM hosted_tarballs WHERE digest = ?", [key])
        if self.blobs is not None:
            self.blobs.delete(key)

    def tarball_keys(self, package: str) -> list[str]:
        rows = self._rows(
            f"list the tarballs of {package}",
            "SELECT digest FROM hosted_tarballs WHERE package = ?",
            [package],
        )
        return [str(r[0]) for r in rows]

    def tarballs(self) -> list[tuple[str, str]]:
        """Every stored tarball's (key, package) (export)."""
        rows = self._rows(
            "list the hosted tarballs",
            "SELECT digest, package FROM hosted_tarballs ORDER BY digest",
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    # -- events ----------------------------------------------------------------------------

    def record(self, event: RegistryEvent) -> None:
        with self._reaching("write the hosted packages' audit log") as conn:
            conn.execute(
                "INSERT INTO hosted_events (time, event, package, version, detail, "
                "client_group, token, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    event.time,
                    event.event,
                    event.package,
                    event.version,
                    event.detail,
                    event.group,
                    event.token,
                    event.client,
                ],
            )

    def events(
        self, *, package: str | None = None, kinds: Sequence[str] = (), limit: int = 100
    ) -> list[RegistryEvent]:
        """The newest events first, optionally of one package and of some kinds."""
        where, params = [], []
        if package is not None:
            where.append("package = ?")
            params.append(package)
        if kinds:
            where.append(f"event IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        sql = (
            "SELECT time, event, package, version, detail, client_group, token, client "
            "FROM hosted_events"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY time DESC, id DESC LIMIT ?"
        )
        rows = self._rows("read the hosted packages' audit log", sql, [*params, limit])
        return [RegistryEvent(*r) for r in rows]

    def close(self) -> None:
        self.db.close()


def doc_json(doc: StoredDoc) -> dict[str, object]:
    """The stored document parsed (it was validated when written)."""
    data = orjson.loads(doc.body)
    assert isinstance(data, dict)
    return data
