"""The wallet index: which package names registered the same tea.xyz wallet.

One farming account registers its wallet in every package it publishes, so a wallet seen under
many names ties them together. Persisted in SQLite; grows with every tea.yaml the detector sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from proxy.detect.db import Database
from proxy.storage.sql import SqlDatabase

MAX_NAMES = 20  # other names reported per wallet
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS wallet_names (wallet TEXT NOT NULL, name TEXT NOT NULL, "
    "PRIMARY KEY (wallet, name)) WITHOUT ROWID",
)


class WalletIndex:
    """Wallet (lower-case hex) → names, persisted in SQLite (`path=None`: in memory)."""

    def __init__(self, path: Path | None = None, db: SqlDatabase | None = None):
        self.db: SqlDatabase = db if db is not None else Database(path, SCHEMA)
        if db is not None:
            for statement in SCHEMA:
                db.query(statement)

    def names(self, wallet: str, exclude: str) -> tuple[str, ...]:
        rows = self.db.query(
            "SELECT name FROM wallet_names WHERE wallet = ? AND name != ? ORDER BY name LIMIT ?",
            (wallet.lower(), exclude, MAX_NAMES),
        )
        return tuple(str(r[0]) for r in rows)

    def wallets_of(self, name: str) -> tuple[str, ...]:
        rows = self.db.query(
            "SELECT wallet FROM wallet_names WHERE name = ? ORDER BY wallet", (name,)
        )
        return tuple(str(r[0]) for r in rows)

    def record(self, name: str, wallets: Iterable[str]) -> None:
        rows = [(w.lower(), name) for w in wallets]
        if rows:
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO wallet_names (wallet, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    rows,
                )
