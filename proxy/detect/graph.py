"""The package graph the detector has seen: dependency edges and each name's worst label.

Farming rings publish packages that depend on each other (often in a circle) to inflate
dependents counts. The graph answers "does a path lead from this package's dependencies back to
it?" and "which of its dependencies were flagged?". Persisted in SQLite; grows with every
package assessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from proxy.detect.db import Database
from proxy.detect.model import Label

MAX_DEPTH = 4  # edges followed when looking for a cycle
MAX_VISITS = 2_000  # nodes expanded per cycle search
MAX_CYCLES = 5
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dep_edges (name TEXT NOT NULL, dep TEXT NOT NULL, "
    "PRIMARY KEY (name, dep)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS name_labels (name TEXT PRIMARY KEY, label TEXT NOT NULL)",
)
_RANK = {label: i for i, label in enumerate(Label)}


class PackageGraph:
    """Dependency edges and labels by name (`path=None`: in memory)."""

    def __init__(self, path: Path | None = None, db: Database | None = None):
        self.db = db if db is not None else Database(path, SCHEMA)
        if db is not None:
            for statement in SCHEMA:
                db.query(statement)

    def _deps(self, name: str) -> list[str]:
        return [
            str(r[0]) for r in self.db.query("SELECT dep FROM dep_edges WHERE name = ?", (name,))
        ]

    def cycles(self, name: str, deps: Iterable[str]) -> tuple[tuple[str, ...], ...]:
        """Paths name → dep → ... → name through recorded edges (self-dependency included)."""
        found: list[tuple[str, ...]] = []
        frontier: list[tuple[str, ...]] = [(name, d) for d in sorted(set(deps))]
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
        wanted = sorted(set(names))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self.db.query(
            f"SELECT name, label FROM name_labels WHERE name IN ({marks})",  # noqa: S608
            wanted,
        )
        return {str(n): str(lab) for n, lab in rows if Label(lab).flagged}

    def record(self, name: str, deps: Iterable[str], label: Label) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO dep_edges (name, dep) VALUES (?, ?)",
                [(name, d) for d in set(deps)],
            )
            row = conn.execute("SELECT label FROM name_labels WHERE name = ?", (name,)).fetchone()
            if row is None or _RANK[Label(row[0])] < _RANK[label]:
                conn.execute(
                    "INSERT OR REPLACE INTO name_labels (name, label) VALUES (?, ?)",
                    (name, label.value),
                )
