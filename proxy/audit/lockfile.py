"""Find and read a project's lockfile: npm, pnpm and yarn formats into one `Lockfile`.

    find_lockfile(directory)  → the lockfile npm, pnpm or yarn would use there
    read_lockfile(path)       → Lockfile: every locked (name, version) with its dependency path
    parse_lockfile(text, …)   → the same from text, without touching the disk

Formats: package-lock.json and npm-shrinkwrap.json (lockfileVersion 1, 2, 3), pnpm-lock.yaml
(6.x, 9.x), yarn.lock (yarn 1 "classic", and yarn 2+ "berry"). Each reader lives in
`proxy.audit.lockfiles`; they share the walk that turns a dependency graph into packages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path

from proxy.audit.lockfiles.documents import Invalid, dotted
from proxy.audit.lockfiles.graph import Graph, locked_packages
from proxy.audit.lockfiles.manifest import Manifest, parse_manifest
from proxy.audit.lockfiles.npm import read_npm
from proxy.audit.lockfiles.pnpm import read_pnpm
from proxy.audit.lockfiles.yarn_berry import read_yarn_berry
from proxy.audit.lockfiles.yarn_classic import read_yarn_classic
from proxy.audit.model import Lockfile, LockfileKind
from proxy.errors import LockfileError

log = logging.getLogger(__name__)

# the order npm, then pnpm, then yarn would pick; npm itself prefers a shrinkwrap
LOCKFILE_NAMES = ("npm-shrinkwrap.json", "package-lock.json", "pnpm-lock.yaml", "yarn.lock")
_BY_NAME = {
    "npm-shrinkwrap.json": LockfileKind.SHRINKWRAP,
    "package-lock.json": LockfileKind.PACKAGE_LOCK,
    ".package-lock.json": LockfileKind.PACKAGE_LOCK,  # npm's hidden lockfile in node_modules
    "pnpm-lock.yaml": LockfileKind.PNPM,
    "pnpm-lock.yml": LockfileKind.PNPM,
}
_BERRY = re.compile(r"^__metadata:", re.MULTILINE)
_CLASSIC = re.compile(r"^# yarn lockfile v1\s*$", re.MULTILINE)
_PNPM = re.compile(r"^lockfileVersion:", re.MULTILINE)
_NPM = re.compile(r'"lockfileVersion"\s*:')
_MAX_MEMBERS = 1000  # workspaces read beside a yarn 1 lockfile

Reader = Callable[[str, Manifest], tuple[str, Graph]]
_READERS: dict[LockfileKind, Reader] = {
    LockfileKind.PACKAGE_LOCK: read_npm,
    LockfileKind.SHRINKWRAP: read_npm,
    LockfileKind.PNPM: read_pnpm,
    LockfileKind.YARN_CLASSIC: read_yarn_classic,
    LockfileKind.YARN_BERRY: read_yarn_berry,
}


def find_lockfile(directory: Path) -> Path:
    """The lockfile in `directory`, preferring the names in `LOCKFILE_NAMES` order.

    A path that is itself a file is taken as the lockfile. Raises `LockfileError` naming the
    directory and the names looked for when there is none.
    """
    if directory.is_file():
        return directory
    if not directory.is_dir():
        raise LockfileError(f"{directory}: no such file or directory")
    for name in LOCKFILE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise LockfileError(f"{directory}: no lockfile found (looked for {', '.join(LOCKFILE_NAMES)})")


def detect_kind(path: Path, text: str) -> LockfileKind:
    """The format from the file name, and for yarn.lock (or an unknown name) from the content."""
    kind = _BY_NAME.get(path.name)
    if kind is not None:
        return kind
    if _BERRY.search(text):
        return LockfileKind.YARN_BERRY
    if path.name == "yarn.lock" or _CLASSIC.search(text):
        return LockfileKind.YARN_CLASSIC
    if text.lstrip().startswith("{") and _NPM.search(text):
        return LockfileKind.PACKAGE_LOCK
    if _PNPM.search(text):
        return LockfileKind.PNPM
    raise LockfileError(
        f"{path}: cannot tell which lockfile this is (expected one of {', '.join(LOCKFILE_NAMES)})"
    )


def parse_lockfile(text: str, path: Path, manifest: Manifest | None = None) -> Lockfile:
    """The `Lockfile` in `text`, read as the file at `path` beside `manifest` (its package.json).

    The root of every dependency path is the project name the lockfile records, else the
    manifest's, else the name of the lockfile's directory. Raises `LockfileError` naming the
    file, the line and column (syntax) or the key path (structure).
    """
    manifest = manifest or Manifest()
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors add
    kind = detect_kind(path, text)
    try:
        version, graph = _READERS[kind](text, manifest)
    except Invalid as exc:
        raise LockfileError(_message(path, exc)) from None
    root = graph.root or manifest.name or path.absolute().parent.name or "(root)"
    packages = locked_packages(graph, root)
    log.debug("read %s (%s %s): %d packages", path, kind.value, version, len(packages))
    return Lockfile(path=path, kind=kind, version=version, root=root, packages=packages)


def read_lockfile(path: Path) -> Lockfile:
    """Read the lockfile at `path` (and the package.json beside it, if there is one).

    Raises `LockfileError` when the file cannot be read or is not a lockfile it understands.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockfileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise LockfileError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    manifest = _read_manifest(path.parent, ".")
    if manifest.workspaces and detect_kind(path, text) is LockfileKind.YARN_CLASSIC:
        # yarn 1 locks neither its workspaces nor what they depend on directly
        manifest = replace(manifest, members=_read_members(path.parent, manifest.workspaces))
    return parse_lockfile(text, path, manifest)


def _read_manifest(directory: Path, folder: str) -> Manifest:
    path = directory / "package.json"
    try:
        return parse_manifest(path.read_text(encoding="utf-8"), folder)
    except FileNotFoundError:
        return Manifest(folder=folder)
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("ignoring %s: cannot read it (%s)", path, exc)
        return Manifest(folder=folder)


def _read_members(directory: Path, globs: tuple[str, ...]) -> tuple[Manifest, ...]:
    """The package.json of each workspace folder the globs match inside `directory`."""
    folders: dict[str, Path] = {}
    excluded = [pattern[1:] for pattern in globs if pattern.startswith("!")]
    for pattern in globs:
        if pattern.startswith(("/", "!")) or ".." in pattern.split("/"):
            continue  # outside the project, or an exclusion
        if "**" in pattern:  # would walk every node_modules folder (and follow symlink loops)
            log.warning("ignoring workspace pattern %r: `**` is not supported", pattern)
            continue
        try:
            matches = sorted(directory.glob(pattern))
        except (ValueError, OSError) as exc:
            log.warning("ignoring workspace pattern %r: %s", pattern, exc)
            continue
        for match in matches:
            folder = match.relative_to(directory).as_posix()
            if any(fnmatchcase(folder, pattern) for pattern in excluded):
                continue
            if "node_modules" not in match.parts and (match / "package.json").is_file():
                folders.setdefault(folder, match)
    if len(folders) > _MAX_MEMBERS:
        log.warning("reading the first %d of %d workspaces", _MAX_MEMBERS, len(folders))
    chosen = list(folders.items())[:_MAX_MEMBERS]
    return tuple(_read_manifest(match, folder) for folder, match in chosen)


def _message(path: Path, exc: Invalid) -> str:
    at = f":{exc.at.line}:{exc.at.column}" if exc.at is not None else ""
    where = f"{dotted(exc.where)}: " if exc.where else ""
    return f"{path}{at}: {where}{exc.message}"
