"""The clone index: which package names shipped byte-identical code files.

Token-farming accounts publish one template (a create-next-app or Vite starter, a hello-world)
under dozens of names. The index maps the sha256 of each *code* file to the names it was seen
under; a package whose code files were mostly seen under other names is a clone. Files that
differ per package or are shared by everyone for good reasons (package.json, README, LICENSE,
changelogs, lock files, tea.yaml) are left out, and so are empty files. The index grows with
every package the detector sees and lives on disk (SQLite).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from proxy.detect.db import Database
from proxy.npm.tarball import EntryKind, TarballFacts
from proxy.npm.teafile import is_tea_path
from proxy.storage.sql import SqlDatabase

log = logging.getLogger(__name__)

CODE_SUFFIXES = (
    ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts", ".vue", ".svelte",
    ".css", ".scss", ".html", ".svg", ".json", ".sol", ".py",
)  # fmt: skip
_SKIP_BASENAMES = frozenset(
    {
        "package.json",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "tsconfig.json",
    }
)
_SKIP_PREFIXES = ("readme", "license", "licence", "changelog", "history", "copying", "notice")
MAX_HASHES = 512  # code files fingerprinted per package
MAX_NAMES = 20  # other names reported per match
MAX_ROWS = 5_000  # (hash, name) rows read per match that filters siblings
MIN_FILE_BYTES = 64  # smaller files (stubs, `export {}`) are too common to mean anything

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS clone_files (hash TEXT NOT NULL, name TEXT NOT NULL, "
    "PRIMARY KEY (hash, name)) WITHOUT ROWID",
)


def code_hashes(tarball: TarballFacts) -> frozenset[str]:
    """The sha256 of the package's code files that count for clone matching."""
    out: set[str] = set()
    for e in tarball.entries:
        if e.kind is not EntryKind.FILE or not e.sha256 or e.size < MIN_FILE_BYTES:
            continue
        base = e.path.rsplit("/", 1)[-1].lower()
        if base in _SKIP_BASENAMES or base.startswith(_SKIP_PREFIXES) or is_tea_path(e.path):
            continue
        if "/node_modules/" in e.path or not base.endswith(CODE_SUFFIXES):
            continue
        out.add(e.sha256)
        if len(out) >= MAX_HASHES:
            break
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class CloneMatch:
    names: tuple[str, ...]  # other names, most files shared first
    shared: int  # of our code files, how many were seen under another name
    total: int  # our code files

    @property
    def share(self) -> float:
        return self.shared / self.total if self.total else 0.0


class CloneIndex:
    """File hash → names, persisted in SQLite (`path=None`: in memory)."""

    def __init__(self, path: Path | None = None, db: SqlDatabase | None = None):
        self.db: SqlDatabase = db if db is not None else Database(path, SCHEMA)
        if db is not None:
            for statement in SCHEMA:
                db.query(statement)

    def hashes_of(self, name: str) -> frozenset[str]:
        """The code-file hashes recorded under `name`."""
        rows = self.db.query("SELECT hash FROM clone_files WHERE name = ?", (name,))
        return frozenset(str(r[0]) for r in rows)

    def match(
        self, name: str, hashes: Iterable[str], exclude: Callable[[str], bool] | None = None
    ) -> CloneMatch:
        """Which other names shipped these files; names for which `exclude` is true (sibling
        packages of one project) do not count."""
        hs = sorted(hashes)
        if not hs:
            return CloneMatch((), 0, 0)
        if exclude is not None:
            return self._match_excluding(name, hs, exclude)
        marks = ",".join("?" * len(hs))
        shared = self.db.query(
            f"SELECT COUNT(DISTINCT hash) FROM clone_files WHERE hash IN ({marks}) AND name != ?",  # noqa: S608 (placeholders only)
            [*hs, name],
        )[0][0]
        rows = self.db.query(
            f"SELECT name, COUNT(*) AS n FROM clone_files WHERE hash IN ({marks}) AND name != ? "  # noqa: S608
            "GROUP BY name ORDER BY n DESC, name LIMIT ?",
            [*hs, name, MAX_NAMES],
        )
        return CloneMatch(tuple(str(r[0]) for r in rows), int(shared), len(hs))

    def _match_excluding(
        self, name: str, hs: list[str], exclude: Callable[[str], bool]
    ) -> CloneMatch:
        marks = ",".join("?" * len(hs))
        rows = self.db.query(
            f"SELECT hash, name FROM clone_files WHERE hash IN ({marks}) AND name != ? "  # noqa: S608
            "ORDER BY name LIMIT ?",
            [*hs, name, MAX_ROWS],
        )
        counts: dict[str, int] = {}
        shared: set[str] = set()
        verdicts: dict[str, bool] = {}
        for h, other in rows:
            other = str(other)
            if other not in verdicts:
                verdicts[other] = exclude(other)
            if verdicts[other]:
                continue
            shared.add(str(h))
            counts[other] = counts.get(other, 0) + 1
        ranked = sorted(counts, key=lambda n: (-counts[n], n))[:MAX_NAMES]
        return CloneMatch(tuple(ranked), len(shared), len(hs))

    def record(self, name: str, hashes: Iterable[str]) -> None:
        rows = [(h, name) for h in hashes]
        if not rows:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO clone_files (hash, name) VALUES (?, ?) ON CONFLICT DO NOTHING", rows
            )
