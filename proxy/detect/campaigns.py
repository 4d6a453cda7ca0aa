"""The campaign graph: packages linked by what farms share, clustered.

Every package the detector assessed with a trait of no real function or of farm publishing (its
*own* traits: empty, template, filler code, a generated name, a tea.yaml, ...; never traits
that depend on other packages) is a member. Members are linked by keys:

- `wallet:` a tea.xyz wallet named in their tea.yaml;
- `code:` the sha256 of a code file (the same template under many names);
- `name:` a name template (`word_word_x7k` by its first word and its tag, `brand-0x<hex>` by
  its brand, `<word>-<4 digits>`);
- `dep:` a dependency edge between members (both carry the dependency's name);
- `minute:` the same publish minute, where publish times are known.

A cluster is a connected component of members over shared keys (a breadth-first walk, bounded
by MAX_WALK names). Because members and keys are each package's own facts, the cluster a
package ends up in does not depend on the order packages were seen; only how much of it has
been seen so far. `generation` changes whenever a new member links to existing ones, so that
verdicts that used the graph can be recomputed (`Detector.current`).

Sibling packages of one project (platform builds such as `@esbuild/linux-x64` and
`@esbuild/darwin-arm64`, `@swc/core-*`; monorepo packages sharing a repository) are recognised
by `siblings`, so that shared code between them is not called cloning.

Persisted in SQLite beside the other indexes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from proxy.detect.db import Database
from proxy.storage.sql import SqlDatabase

MAX_WALK = 200  # names visited per cluster walk
MAX_KEY_NAMES = 100  # names read per key during a walk (a template shared by thousands)
MAX_SHOWN = 20  # members listed in evidence
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS campaign_members (name TEXT PRIMARY KEY, traits TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS campaign_keys (key TEXT NOT NULL, name TEXT NOT NULL, "
    "PRIMARY KEY (key, name)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS campaign_keys_name ON campaign_keys (name)",
    "CREATE TABLE IF NOT EXISTS package_repos (name TEXT PRIMARY KEY, repo TEXT NOT NULL)",
)

_PLATFORMS = """linux darwin macos osx win32 windows win freebsd openbsd netbsd sunos android
    ios aix x64 x86 ia32 amd64 arm arm64 armv6 armv7 armv7l aarch64 ppc64 ppc64le s390x riscv64
    loong64 mips64el gnu musl msvc gnueabihf eabi androideabi universal wasm32 wasi glibc 32 64
    binding bin native"""
PLATFORM_TOKENS = frozenset(_PLATFORMS.split())
_UNDERSCORE = re.compile(r"^([a-z]+)(?:_[a-z]+)+_([a-z0-9]*\d[a-z0-9]*)$")
_UNDERSCORE_NUM = re.compile(r"^([a-z]+)(?:_[a-z]+){2,}-\d+$")
_BRAND_HEX = re.compile(r"^([a-z][a-z0-9]*)-0x[0-9a-f]{4,}$")
_WORD_DIGITS = re.compile(r"^[a-z]+(?:-[a-z]+)*-\d{4}$")
_REPO = re.compile(r"^(?:git\+)?(?:[a-z]+://)?(?:[^@/]+@)?|\.git$|/+$", re.IGNORECASE)


def name_keys(name: str) -> list[str]:
    """The name templates `name` fits, as keys (empty for ordinary names)."""
    bare = name.lower().rsplit("/", 1)[-1]
    keys: list[str] = []
    if m := _UNDERSCORE.match(bare):
        keys += [f"name:words:{m[1]}_*", f"name:words:*_{m[2]}"]
    elif m := _UNDERSCORE_NUM.match(bare):
        keys.append(f"name:words:{m[1]}_*")
    if m := _BRAND_HEX.match(bare):
        keys.append(f"name:brand-0x:{m[1]}")
    if _WORD_DIGITS.match(bare) and not 1990 <= int(bare[-4:]) <= 2039:
        keys.append("name:word-dddd")
    return keys


def stem(name: str) -> str:
    """`name` without platform tokens: `@esbuild/linux-x64` -> `@esbuild/`,
    `@swc/core-linux-x64-gnu` -> `@swc/core`, `esbuild-darwin-arm64` -> `esbuild`."""
    scope, _, bare = name.rpartition("/")
    words = [w for w in re.split(r"[-_.]", bare) if w and w.lower() not in PLATFORM_TOKENS]
    return (scope + "/" if scope else "") + "-".join(words)


@functools.lru_cache(maxsize=4096)  # the versions of a package mostly share one repository
def normalize_repo(url: str | None) -> str:
    """A repository URL reduced to host/path, lower-case ('' when unknown)."""
    if not url:
        return ""
    text = url.strip().lower()
    for prefix in ("github:", "gitlab:", "bitbucket:"):
        if text.startswith(prefix):
            text = prefix[:-1] + ".com/" + text[len(prefix) :]
    text = _REPO.sub("", text).replace(":", "/")
    return text


def siblings(a: str, b: str, repo_a: str = "", repo_b: str = "") -> bool:
    """True for packages of one project: platform builds of one package (`@esbuild/linux-x64`
    and `@esbuild/darwin-arm64`), or packages published from one repository (a monorepo)."""
    if repo_a and repo_a == repo_b:
        return True
    sa, sb = stem(a), stem(b)
    return sa == sb and (sa != a or sb != b)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A connected group of members: a stable id, the members and what links them."""

    id: str
    members: tuple[str, ...]  # sorted
    links: Mapping[str, int]  # key kind -> shared keys of that kind
    complete: bool  # False when the walk stopped at a bound (MAX_WALK, MAX_KEY_NAMES)

    @property
    def size(self) -> int:
        return len(self.members)

    def to_json(self) -> dict[str, object]:
        return {
            "campaign": self.id,
            "size": self.size,
            "members": list(self.members[:MAX_SHOWN]),
            "links": dict(self.links),
            "complete": self.complete,
        }


def cluster_id(members: Iterable[str]) -> str:
    """A name for a cluster: its alphabetically first member's digest (stable while it grows
    by names that sort later)."""
    first = min(members)
    return "campaign-" + hashlib.sha256(first.encode()).hexdigest()[:10]


def package_keys(
    name: str,
    wallets: Iterable[str],
    code: Iterable[str],
    dependencies: Iterable[str],
    published: datetime | None,
) -> set[str]:
    """Every key a member links by (see the module docstring)."""
    keys = {f"wallet:{w.lower()}" for w in wallets}
    keys |= {f"code:{h}" for h in code}
    keys |= set(name_keys(name))
    keys |= {f"dep:{d}" for d in dependencies}
    keys.add(f"dep:{name}")
    if published is not None:
        keys.add(f"minute:{published.strftime('%Y-%m-%dT%H:%M')}")
    return keys


class CampaignIndex:
    """Members, their keys and traits; package repositories (`path=None`: in memory)."""

    def __init__(self, path: Path | None = None, db: SqlDatabase | None = None):
        self.db: SqlDatabase = db if db is not None else Database(path, SCHEMA)
        if db is not None:
            for statement in SCHEMA:
                db.query(statement)
        self._lock = threading.Lock()
        self.generation = 0

    # -- recording ---------------------------------------------------------------------------

    def record(self, name: str, repo: str, traits: Iterable[str], keys: Iterable[str]) -> bool:
        """Record a package; True when it linked to names already known (the graph changed
        for others)."""
        trait_list = sorted(set(traits))
        changed = False
        with self.db.transaction() as conn:
            if repo:
                conn.execute(
                    "INSERT INTO package_repos (name, repo) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET repo = excluded.repo",
                    (name, repo),
                )
            if not trait_list:
                return False
            row = conn.execute(
                "SELECT traits FROM campaign_members WHERE name = ?", (name,)
            ).fetchone()
            known = set(row[0].split(",")) if row and row[0] else set()
            merged = sorted(known | set(trait_list))
            if row is None or merged != sorted(known):
                conn.execute(
                    "INSERT INTO campaign_members (name, traits) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET traits = excluded.traits",
                    (name, ",".join(merged)),
                )
                changed = row is not None  # a member's traits changed: its cluster's verdicts
            for key in sorted(set(keys)):
                inserted = conn.execute(
                    "INSERT INTO campaign_keys (key, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (key, name),
                ).rowcount
                if inserted and not changed:
                    other = conn.execute(
                        "SELECT 1 FROM campaign_keys WHERE key = ? AND name != ? LIMIT 1",
                        (key, name),
                    ).fetchone()
                    changed = other is not None
        if changed:
            with self._lock:
                self.generation += 1
        return changed

    # -- reading -----------------------------------------------------------------------------

    def repos(self, names: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self.db.query(
            f"SELECT name, repo FROM package_repos WHERE name IN ({marks})",  # noqa: S608
            wanted,
        )
        return {str(n): str(r) for n, r in rows}

    def keys_of(self, name: str) -> set[str]:
        rows = self.db.query("SELECT key FROM campaign_keys WHERE name = ?", (name,))
        return {str(r[0]) for r in rows}

    def is_member(self, name: str) -> bool:
        rows = self.db.query("SELECT 1 FROM campaign_members WHERE name = ?", (name,))
        return bool(rows)

    def _names(self, key: str) -> tuple[list[str], bool]:
        """Members holding `key` (at most MAX_KEY_NAMES, alphabetically), and whether that is
        all of them."""
        rows = self.db.query(
            "SELECT k.name FROM campaign_keys k JOIN campaign_members m ON m.name = k.name "
            "WHERE k.key = ? ORDER BY k.name LIMIT ?",
            (key, MAX_KEY_NAMES + 1),
        )
        names = [str(r[0]) for r in rows]
        return names[:MAX_KEY_NAMES], len(names) <= MAX_KEY_NAMES

    def cluster(self, name: str, keys: Iterable[str] | None = None) -> Cluster:
        """The cluster of `name` (its own keys given when it is not recorded yet).

        A `dep:X` key links only when X is itself a member (an edge among farm packages, not
        two packages that both depend on react)."""
        own = set(keys) if keys is not None else self.keys_of(name)
        members = {name}
        linked: dict[str, set[str]] = {}
        frontier: list[set[str]] = [own]
        seen: set[str] = set()
        complete = True
        while frontier and len(members) < MAX_WALK:
            for key in sorted(frontier.pop() - seen):
                seen.add(key)
                found, whole = self._names(key)
                complete = complete and whole
                holders = set(found) | ({name} if key in own else set())
                kind, _, value = key.partition(":")
                if len(holders) < 2 or (kind == "dep" and value not in holders):
                    continue
                linked.setdefault(kind, set()).add(key)
                for other in sorted(holders - members):
                    if len(members) >= MAX_WALK:
                        complete = False
                        break
                    members.add(other)
                    frontier.append(self.keys_of(other))
        if any(keys - seen for keys in frontier):
            complete = False  # stopped at MAX_WALK with links left to follow
        return Cluster(
            cluster_id(members),
            tuple(sorted(members)),
            {k: len(v) for k, v in sorted(linked.items())},
            complete,
        )

    def clusters(self, min_size: int = 2) -> list[Cluster]:
        """Every cluster of at least `min_size` members, largest first."""
        names = [str(r[0]) for r in self.db.query("SELECT name FROM campaign_members ORDER BY 1")]
        placed: set[str] = set()
        out: list[Cluster] = []
        for name in names:
            if name in placed:
                continue
            c = self.cluster(name)
            placed.update(c.members)
            if c.size >= min_size:
                out.append(c)
        return sorted(out, key=lambda c: (-c.size, c.id))
