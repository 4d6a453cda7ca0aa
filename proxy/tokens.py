"""Client tokens: who may use this Floodgate, in SQLite or the shared database.

`floodgate token create --group ci --name runner-7` makes a high-entropy random token, prints it
once and stores only its SHA-256 (with the name, group, creation time and last use); the token
itself is never written anywhere. Clients send it as they send any registry token
(`//host/:_authToken=` in `.npmrc`, `npmAuthToken` for yarn 4): `Authorization: Bearer <token>`.

The store is `tokens.sqlite3` in the cache folder (WAL mode, one transaction per change, so a
crash never leaves half a row), or with `database_url` the `tokens` table of the shared
PostgreSQL database (`proxy.storage.tokens`), so that every replica accepts the same tokens;
`proxy.storage.backends.open_token_store` chooses. The running proxy reads it through
`TokenIndex`, which keeps lookups in memory for `LOOKUP_TTL` seconds: a revocation made by
the CLI (another process, another machine) applies within that time, and a warm request costs
a hash and a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from proxy.errors import FloodgateError
from proxy.identity import Identity
from proxy.storage.sql import database_errors

log = logging.getLogger(__name__)

TOKEN_FILE = "tokens.sqlite3"  # noqa: S105 (a file name)
TOKEN_PREFIX = "fg_"  # noqa: S105 (recognisable in a secret scan; 32 random bytes follow)
LOOKUP_TTL = 5.0  # seconds a lookup (hit or miss) is trusted; a revocation applies within this
LOOKUP_MEMO = 10_000  # distinct token hashes remembered (misses included, bounded)
TOUCH_INTERVAL = 60.0  # seconds between `last_used` writes for one token
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    token_group TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    last_used REAL
);
"""


class TokenError(FloodgateError):
    """A token command that cannot be done (bad name, duplicate, unknown token)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One stored token, without the token: its name, group and times."""

    name: str
    group: str
    created: float
    last_used: float | None

    @property
    def identity(self) -> Identity:
        return Identity(self.group, self.name)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "group": self.group,
            "created": self.created,
            "last_used": self.last_used,
        }


def digest_of(token: str) -> str:
    """What is stored of a token: its SHA-256, hex (the token has 256 bits of entropy, so a
    plain hash is as good as a slow one and costs a microsecond per request)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(kind: str, value: str) -> str:
    """A token or group name: letters, digits, `.`, `_`, `-`, at most 64 (pure)."""
    if not NAME.match(value):
        raise TokenError(
            f"{kind} {value!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return value


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    return conn


class TokenStorage(Protocol):
    """Where tokens are kept: `TokenStore` (SQLite) or the shared database's
    (`proxy.storage.tokens.SharedTokenStore`). Reads and writes raise the database's errors
    (`proxy.storage.sql.database_errors`) but `touch`, which never raises."""

    @property
    def where(self) -> str: ...  # for messages: the file, or "the shared database"

    def create(self, group: str, name: str) -> str: ...

    def revoke(self, name: str) -> TokenInfo: ...

    def list(self) -> list[TokenInfo]: ...

    def count(self) -> int: ...

    def find(self, digest: str) -> TokenInfo | None: ...

    def touch(self, name: str, when: float) -> None: ...

    def close(self) -> None: ...


def duplicate_name(name: str) -> TokenError:
    return TokenError(
        f"a token named {name!r} exists already: revoke it first, or choose another name"
    )


def unknown_name(name: str) -> TokenError:
    return TokenError(f"no token named {name!r} (floodgate token list shows them)")


class TokenStore:
    """The token table in SQLite: create, list, revoke, look up by digest."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path = path
        self.where = str(path)
        self.clock = clock
        self._conn = _connect(path)
        self._lock = threading.Lock()

    @classmethod
    def in_cache(cls, cache_dir: Path) -> TokenStore:
        return cls(cache_dir / TOKEN_FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, group: str, name: str) -> str:
        """Store a new token for `group`/`name` and return it (the only time it is seen)."""
        check_name("group", group)
        check_name("token name", name)
        token = new_token()
        try:
            with self._lock, self._conn:
                self._conn.execute(
                    "INSERT INTO tokens (name, token_group, digest, created) VALUES (?, ?, ?, ?)",
                    (name, group, digest_of(token), self.clock()),
                )
        except sqlite3.IntegrityError:
            raise duplicate_name(name) from None
        return token

    def revoke(self, name: str) -> TokenInfo:
        """Delete the token named `name`; TokenError when there is none."""
        with self._lock, self._conn:
            row = self._conn.execute(
                "SELECT name, token_group, created, last_used FROM tokens WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise unknown_name(name)
            self._conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return TokenInfo(*row)

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, token_group, created, last_used FROM tokens "
                "ORDER BY token_group, name"
            ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            (n,) = self._conn.execute("SELECT COUNT(*) FROM tokens").fetchone()
        return int(n)

    def find(self, digest: str) -> TokenInfo | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT name, token_group, created, last_used FROM tokens WHERE digest = ?",
                (digest,),
            ).fetchone()
        return TokenInfo(*row) if row is not None else None

    def touch(self, name: str, when: float) -> None:
        """Record a use of the token (a failure to write is not the request's problem)."""
        try:
            with self._lock, self._conn:
                self._conn.execute("UPDATE tokens SET last_used = ? WHERE name = ?", (when, name))
        except sqlite3.Error:
            return


@dataclass(slots=True)
class Seen:
    """One lookup's answer and until when it is trusted."""

    info: TokenInfo | None
    identity: Identity | None
    until: float


class TokenIndex:
    """The running proxy's view of the store: lookups and the token count, each trusted for
    `ttl` seconds (`clock` is injectable). Blocking only when an entry is due again (one small
    indexed query)."""

    def __init__(
        self,
        store: TokenStorage,
        ttl: float = LOOKUP_TTL,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.wall = wall
        self._seen: dict[str, Seen] = {}
        self._count: tuple[int, float] = (0, float("-inf"))
        self._touched: dict[str, float] = {}
        self._errors = database_errors()

    def cached(self, token: str) -> Seen | None:
        """The lookup of `token` while it is trusted, else None (never blocks)."""
        seen = self._seen.get(token)
        return seen if seen is not None and self.clock() < seen.until else None

    def any_cached(self) -> bool | None:
        """`any()` while its answer is trusted, else None (never blocks)."""
        count, until = self._count
        return count > 0 if self.clock() < until else None

    def any(self) -> bool:
        """Whether any token exists (so anonymous `auto` means off)."""
        now = self.clock()
        count, until = self._count
        if now >= until:
            try:
                count = self.store.count()
            except self._errors as exc:  # keep the last answer (or assume tokens: refuse)
                log.warning("cannot read the token store %s: %s", self.store.where, exc)
                count = count if until > float("-inf") else 1
            self._count = (count, now + self.ttl)
        return count > 0

    def resolve(self, token: str) -> TokenInfo | None:
        """The token's stored info, or None for an unknown or revoked token."""
        return self._lookup(token).info

    def identify(self, token: str) -> Identity | None:
        """The identity of a token (None: unknown or revoked). The warm path: one dictionary
        lookup keyed by the token (hashed only when it is looked up in the store)."""
        seen = self._seen.get(token)
        if seen is not None and self.clock() < seen.until:
            return seen.identity
        return self._lookup(token).identity

    def _lookup(self, token: str) -> Seen:
        now = self.clock()
        seen = self._seen.get(token)
        if seen is not None and now < seen.until:
            return seen
        if len(self._seen) >= LOOKUP_MEMO:
            self._seen = {k: v for k, v in self._seen.items() if v.until > now}
            if len(self._seen) >= LOOKUP_MEMO:
                self._seen.clear()
        try:
            info = self.store.find(digest_of(token))
        except self._errors as exc:  # keep what was known; an unknown token stays unknown
            log.warning("cannot read the token store %s: %s", self.store.where, exc)
            info = seen.info if seen is not None else None
        seen = Seen(info, info.identity if info is not None else None, now + self.ttl)
        self._seen[token] = seen
        if info is not None:
            # Recorded when the lookup is renewed (every `ttl` seconds of use at most), so
            # `last_used` is exact to TOUCH_INTERVAL + ttl without a write per request.
            last = self._touched.get(info.name)
            if last is None or now - last >= TOUCH_INTERVAL:
                self._touched[info.name] = now
                self.store.touch(info.name, self.wall())
        return seen

    def forget(self) -> None:
        """Drop every remembered lookup (after a change made in this process)."""
        self._seen.clear()
        self._count = (0, float("-inf"))
