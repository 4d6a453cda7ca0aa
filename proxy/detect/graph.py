"""The package graph the detector has seen: dependency edges and each name's worst label.

Farming rings publish packages that depend on each other (often in a circle) to inflate
dependents counts. The graph answers "does a path lead from this package's dependencies back to
it?" and "which of its dependencies were flagged?". Persisted in SQLite; grows with every
package assessed.

Versions of one package mostly share their dependency set, so answers are memoised by the
question and the graph's change count: assessing a 4,000-version packument asks SQLite once per
distinct dependency set, not once per version, and any `record` makes older answers stale.

`record` also says whether what it recorded can change *other* packages' ring findings (a
name whose spam label changed and that others depend on, or new edges that close a cycle), so
that the detector moves its epoch only then, not on every package.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

from proxy.detect.db import Database
from proxy.detect.model import Label
from proxy.storage.sql import SqlDatabase

MAX_DEPTH = 4  # edges followed when looking for a cycle
MAX_VISITS = 2_000  # nodes expanded per cycle search
MAX_CYCLES = 5
MEMO_SIZE = 4096  # memoised answers kept (all dropped when full)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dep_edges (name TEXT NOT NULL, dep TEXT NOT NULL, "
    "PRIMARY KEY (name, dep)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS name_labels (name TEXT PRIMARY KEY, label TEXT NOT NULL)",
)
# Local (SQLite) only: "who depends on this name?" is asked when a name's spam label changes.
# (A shared PostgreSQL database has the tables of migration 1, which is never edited; there the
# question scans dep_edges until a storage migration adds this index.)
INDEXES = ("CREATE INDEX IF NOT EXISTS dep_edges_by_dep ON dep_edges (dep)",)
_RANK = {label: i for i, label in enumerate(Label)}


class PackageGraph:
    """Dependency edges and labels by name (`path=None`: in memory)."""

    def __init__(self, path: Path | None = None, db: SqlDatabase | None = None):
        self.db: SqlDatabase = db if db is not None else Database(path, SCHEMA + INDEXES)
        if db is not None:
            for statement in SCHEMA + INDEXES:
                db.query(statement)
        self.changes = 0  # bumped by every record: memoised answers older than it are stale
        self._memo: dict[Hashable, tuple[int, Any]] = {}

    def _memoised(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        changes = self.changes  # read first: a record racing the query makes the answer stale
        hit = self._memo.get(key)
        if hit is not None and hit[0] == changes:
            return hit[1]
        value = compute()
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = (changes, value)
        return value

    def _deps(self, name: str) -> list[str]:
        return [
            str(r[0]) for r in self.db.query("SELECT dep FROM dep_edges WHERE name = ?", (name,))
        ]

    def cycles(self, name: str, deps: Iterable[str]) -> tuple[tuple[str, ...], ...]:
        """Paths name → dep → ... → name through recorded edges (self-dependency included)."""
        wanted = frozenset(deps)
        result: tuple[tuple[str, ...], ...] = self._memoised(
            ("cycles", name, wanted), lambda: self._cycles(name, wanted)
        )
        return result

    def _cycles(self, name: str, deps: frozenset[str]) -> tuple[tuple[str, ...], ...]:
        found: list[tuple[str, ...]] = []
        frontier: list[tuple[str, ...]] = [(name, d) for d in sorted(deps)]
        visits = 0
        seen: set[str] = set()
        while frontier and visits < MAX_VISITS and len(found) < MAX_CYCLES:
            nxt: list[tuple[str, ...]] = []
            for path in frontier:
                last = path[-1]
                if last == name:
                    found.append(path)
                    continue
                if last in seen or len(path) > MAX_DEPTH:
                    continue
                seen.add(last)
                visits += 1
                nxt.extend((*path, d) for d in self._deps(last))
            frontier = nxt
        return tuple(found[:MAX_CYCLES])

    def flagged(self, names: Iterable[str]) -> Mapping[str, str]:
        """The given names that were labelled spam or malicious, with their label."""
        wanted = frozenset(names)
        if not wanted:
            return {}
        result: Mapping[str, str] = self._memoised(
            ("flagged", wanted), lambda: self._flagged(wanted)
        )
        return result

    def _flagged(self, names: frozenset[str]) -> Mapping[str, str]:
        wanted = sorted(names)
        marks = ",".join("?" * len(wanted))
        rows = self.db.query(
            f"SELECT name, label FROM name_labels WHERE name IN ({marks})",  # noqa: S608
            wanted,
        )
        return {str(n): str(lab) for n, lab in rows if Label(lab).flagged}

    def record(
        self, name: str, deps: Iterable[str], label: Label, *, closes_cycle: bool = False
    ) -> bool:
        """Record `name`'s dependency edges and label (a name keeps its worst label). True when
        this can change other packages' ring findings: the name's spam label changed and
        recorded packages depend on it, or `closes_cycle` (the caller found that these
        dependencies lead back to `name`) and some of the edges are new."""
        try:
            return self._record(name, frozenset(deps), label, closes_cycle)
        finally:
            self.changes += 1  # after the write: an answer computed meanwhile is stale

    def _record(self, name: str, deps: frozenset[str], label: Label, closes_cycle: bool) -> bool:
        spam = Label.SPAM.value
        with self.db.transaction() as conn:
            new_edges = bool(deps)
            if closes_cycle and deps:
                known = {
                    str(r[0])
                    for r in conn.execute(
                        "SELECT dep FROM dep_edges WHERE name = ?", (name,)
                    ).fetchall()
                }
                new_edges = not deps <= known
            conn.executemany(
                "INSERT INTO dep_edges (name, dep) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(name, d) for d in sorted(deps)],
            )
            row = conn.execute("SELECT label FROM name_labels WHERE name = ?", (name,)).fetchone()
            before = str(row[0]) if row is not None else None
            if before is None or _RANK[Label(before)] < _RANK[label]:
                conn.execute(
                    "INSERT INTO name_labels (name, label) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET label = excluded.label",
                    (name, label.value),
                )
                # Ring findings count spam only: from spam to malicious drops it from them too.
                if (before == spam) != (label is Label.SPAM):
                    dependent = conn.execute(
                        "SELECT 1 FROM dep_edges WHERE dep = ? AND name != ? LIMIT 1",
                        (name, name),
                    ).fetchone()
                    if dependent is not None:
                        return True
            return closes_cycle and new_edges

    def dependencies(self, name: str) -> dict[str, str]:
        """The dependency edges recorded for `name` (every version recorded), ranges unknown."""
        return dict.fromkeys(self._deps(name), "")
