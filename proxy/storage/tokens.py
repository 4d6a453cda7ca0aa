"""Client tokens in the shared PostgreSQL database: one token table for every replica.

The same table as the embedded store (`proxy.tokens.SCHEMA`, created by migration 3) and the
same answers: a token made with `floodgate token create --database-url ...` on any machine is
accepted by every replica, and a revocation applies everywhere within `proxy.tokens.LOOKUP_TTL`.

Reads do not use `PgDatabase.query`'s "nothing known" answer while the database is down: a
token store that answered "no such token" would revoke every token at once. They raise, and
`TokenIndex` keeps what it knew. Every call waits at most `LOOKUP_TIMEOUT` for a connection,
so a lookup made for a request never waits for the pool's longer timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from proxy.storage.sql import PgDatabase, database_errors, to_postgres
from proxy.tokens import TokenInfo, check_name, digest_of, duplicate_name, new_token, unknown_name

LOOKUP_TIMEOUT = 1.0  # seconds a token call waits for a pooled connection
_COLUMNS = "name, token_group, created, last_used"


class SharedTokenStore:
    """`proxy.tokens.TokenStorage` on the shared database's `tokens` table."""

    where = "in the shared database"

    def __init__(self, db: PgDatabase, clock: Callable[[], float] = time.time):
        self.db = db
        self.clock = clock

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.db.connection(timeout=LOOKUP_TIMEOUT) as conn:
            cur = conn.execute(to_postgres(sql), list(params))
            return cur.fetchall() if cur.description is not None else []

    def create(self, group: str, name: str) -> str:
        """Store a new token for `group`/`name` and return it (the only time it is seen)."""
        import psycopg

        check_name("group", group)
        check_name("token name", name)
        token = new_token()
        try:
            self._rows(
                "INSERT INTO tokens (name, token_group, digest, created) VALUES (?, ?, ?, ?)",
                (name, group, digest_of(token), self.clock()),
            )
        except psycopg.errors.UniqueViolation:
            raise duplicate_name(name) from None
        return token

    def revoke(self, name: str) -> TokenInfo:
        """Delete the token named `name` (one statement: two replicas revoking it at once see
        one success and one "no token"); TokenError when there is none."""
        rows = self._rows(f"DELETE FROM tokens WHERE name = ? RETURNING {_COLUMNS}", (name,))  # noqa: S608
        if not rows:
            raise unknown_name(name)
        return TokenInfo(*rows[0])

    def list(self) -> list[TokenInfo]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM tokens ORDER BY token_group, name")  # noqa: S608
        return [TokenInfo(*row) for row in rows]

    def count(self) -> int:
        ((n,),) = self._rows("SELECT COUNT(*) FROM tokens")
        return int(n)

    def find(self, digest: str) -> TokenInfo | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM tokens WHERE digest = ?", (digest,))  # noqa: S608
        return TokenInfo(*rows[0]) if rows else None

    def touch(self, name: str, when: float) -> None:
        """Record a use of the token (a failure to write is not the request's problem; a later
        use from another replica is never overwritten by an earlier one)."""
        try:
            self._rows(
                "UPDATE tokens SET last_used = ? WHERE name = ? "
                "AND (last_used IS NULL OR last_used < ?)",
                (when, name, when),
            )
        except database_errors():
            return

    def close(self) -> None:
        """Nothing of its own to close: the database handle belongs to its opener."""
