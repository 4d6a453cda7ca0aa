"""The audit's values: packages as a lockfile records them, and what the audit found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from proxy.detect.model import Verdict
from proxy.policy.model import Decision


class Source(StrEnum):
    """Where a locked package comes from; only registry packages can be checked."""

    REGISTRY = "registry"
    GIT = "git"
    FILE = "file"  # file: tarballs and directories
    LINK = "link"  # workspace and link: dependencies
    OTHER = "other"  # remote tarball URLs and anything unrecognised


class LockfileKind(StrEnum):
    PACKAGE_LOCK = "package-lock.json"
    SHRINKWRAP = "npm-shrinkwrap.json"
    PNPM = "pnpm-lock.yaml"
    YARN_CLASSIC = "yarn.lock (classic)"
    YARN_BERRY = "yarn.lock (berry)"


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the lockfile an entry starts (1-based line and column)."""

    line: int
    column: int = 1


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One installed (name, version) as the lockfile records it.

    `name` is the real package name; `alias` the name it is installed under when the spec is an
    `npm:` alias. `path` is the dependency path from the project root to this package, root
    first (the shortest one when there are several). `version` is "" when not recorded (git,
    file, link sources).
    """

    name: str
    version: str
    path: tuple[str, ...]
    source: Source = Source.REGISTRY
    alias: str | None = None
    dev: bool = False
    optional: bool = False
    resolved: str | None = None
    integrity: str | None = None
    location: Location | None = None

    @property
    def checkable(self) -> bool:
        return self.source is Source.REGISTRY and bool(self.version)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class Lockfile:
    path: Path
    kind: LockfileKind
    version: str  # the lockfile format's own version (lockfileVersion, pnpm's, yarn's __metadata)
    root: str  # the project's name (or its directory name)
    packages: tuple[LockedPackage, ...]


@dataclass(frozen=True, slots=True)
class Audited:
    """The audit of one locked package: the verdict and the policy's decision, or why not."""

    package: LockedPackage
    verdict: Verdict | None = None
    decision: Decision | None = None
    error: str | None = None  # not checkable (git/file/link) or could not be fetched

    @property
    def blocked(self) -> bool:
        from proxy.policy.model import Action

        return self.decision is not None and self.decision.action is Action.BLOCK
