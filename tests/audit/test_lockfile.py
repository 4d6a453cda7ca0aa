"""Lockfile readers as tables: every format and version written by the test, read back.

Each `Case` is one lockfile (and the package.json beside it, if any) with what must come out:
the exact set of (name, version, source), the dependency paths of the deep package and of the
aliased one, and the line where one entry starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxy.audit.lockfile import LOCKFILE_NAMES, find_lockfile, read_lockfile
from proxy.audit.model import Lockfile, LockfileKind, Source
from proxy.errors import LockfileError
from tests.audit.lockfiles import (
    PACKAGE_JSON,
    PNPM_V6,
    PNPM_V9,
    REGISTRY_SET,
    UI_PACKAGE_JSON,
    YARN_BERRY,
    YARN_CLASSIC,
    YARN_WORKSPACE_PACKAGE_JSON,
    line_of,
    package_lock,
)

ROOT = "my-app"
DEEP = ("qs", "6.11.0", (ROOT, "express", "body-parser", "qs"))
ALIAS = ("lodash", "4.17.21", (ROOT, "my-lodash"))
WORKSPACE_DEP = ("left-pad", "1.3.0", (ROOT, "ui", "left-pad"))
GIT, FILE, LINK = Source.GIT, Source.FILE, Source.LINK


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    text: str
    kind: LockfileKind
    version: str
    unchecked: frozenset[tuple[str, str, Source]]  # the git, file and link packages
    located: tuple[str, str, str]  # (name, version, text on the line where its entry starts)
    manifest: str | None = PACKAGE_JSON
    paths: tuple[tuple[str, str, tuple[str, ...]], ...] = (DEEP, ALIAS, WORKSPACE_DEP)
    files: dict[str, str] = field(default_factory=dict)  # more files in the project


def _set(*rows: tuple[str, str, Source]) -> frozenset[tuple[str, str, Source]]:
    return frozenset(rows)


CASES = [
    Case(
        "package-lock-v1",
        "package-lock.json",
        package_lock(1),
        LockfileKind.PACKAGE_LOCK,
        "1",
        _set(("my-git-dep", "", GIT), ("local-lib", "", FILE), ("ui", "", FILE)),
        ("lodash", "4.17.21", '"my-lodash": {'),
    ),
    Case(
        "package-lock-v2",
        "package-lock.json",
        package_lock(2),
        LockfileKind.PACKAGE_LOCK,
        "2",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("qs", "6.11.0", '"node_modules/body-parser/node_modules/qs": {'),
    ),
    Case(
        "package-lock-v3",
        "package-lock.json",
        package_lock(3),
        LockfileKind.PACKAGE_LOCK,
        "3",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("lodash", "4.17.21", '"node_modules/my-lodash": {'),
        manifest=None,  # v2 and v3 need no package.json: the root entry lists the edges
    ),
    Case(
        "npm-shrinkwrap-v3",
        "npm-shrinkwrap.json",
        package_lock(3),
        LockfileKind.SHRINKWRAP,
        "3",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("@types/node", "20.11.5", '"node_modules/@types/node": {'),
    ),
    Case(
        "pnpm-v6",
        "pnpm-lock.yaml",
        PNPM_V6,
        LockfileKind.PNPM,
        "6.0",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("react-dom", "18.2.0", "  /react-dom@18.2.0(react@18.2.0):"),
        manifest=None,
    ),
    Case(
        "pnpm-v9",
        "pnpm-lock.yaml",
        PNPM_V9,
        LockfileKind.PNPM,
        "9.0",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("react-dom", "18.2.0", "  react-dom@18.2.0:"),
    ),
    Case(
        "yarn-classic",
        "yarn.lock",
        YARN_CLASSIC,
        LockfileKind.YARN_CLASSIC,
        "1",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("@types/node", "20.11.5", '"@types/node@*", "@types/node@^20.11.0":'),
        # yarn 1 locks no workspace: the reader finds them from the workspaces' package.json
        manifest=YARN_WORKSPACE_PACKAGE_JSON,
        files={"packages/ui/package.json": UI_PACKAGE_JSON},
    ),
    Case(
        "yarn-berry",
        "yarn.lock",
        YARN_BERRY,
        LockfileKind.YARN_BERRY,
        "8",
        _set(("my-git-dep", "1.0.0", GIT), ("local-lib", "1.0.0", FILE), ("ui", "", LINK)),
        ("lodash", "4.17.21", '"my-lodash@npm:lodash@^4.17.21":'),
    ),
]


def _write(tmp_path: Path, case: Case) -> Path:
    """The case's lockfile in a directory named like the project (the root without a name)."""
    project = tmp_path / ROOT
    project.mkdir()
    path = project / case.file
    path.write_text(case.text, encoding="utf-8")
    if case.manifest is not None:
        (project / "package.json").write_text(case.manifest, encoding="utf-8")
    for name, content in case.files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content, encoding="utf-8")
    return path


def _read(tmp_path: Path, case: Case) -> Lockfile:
    return read_lockfile(_write(tmp_path, case))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_locked_package_is_read(tmp_path: Path, case: Case) -> None:
    lockfile = _read(tmp_path, case)
    assert (lockfile.kind, lockfile.version, lockfile.root) == (case.kind, case.version, ROOT)
    found = {(p.name, p.version, p.source) for p in lockfile.packages}
    assert found == REGISTRY_SET | case.unchecked
    assert len(found) == len(lockfile.packages)  # (name, version, source) is unique
    order = [(p.name, p.version) for p in lockfile.packages]
    assert order == sorted(order)
    assert {p.spec for p in lockfile.packages if not p.checkable} == {
        f"{name}@{version}" if version else name for name, version, _ in case.unchecked
    }


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_dependency_paths_start_at_the_root(tmp_path: Path, case: Case) -> None:
    packages = {(p.name, p.version): p for p in _read(tmp_path, case).packages}
    for name, version, path in case.paths:
        assert packages[name, version].path == path, (name, version)
    lodash = packages["lodash", "4.17.21"]
    assert lodash.alias == "my-lodash"
    assert all(p.alias is None for p in packages.values() if p.name != "lodash")
    assert packages["qs", "6.5.3"].path == (ROOT, "qs")
    assert packages["react-dom", "18.2.0"].path == (ROOT, "react-dom")
    assert packages["scheduler", "0.23.0"].path == (ROOT, "react-dom", "scheduler")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_dev_and_optional_flags(tmp_path: Path, case: Case) -> None:
    packages = {p.name: p for p in _read(tmp_path, case).packages}
    flags = {name: (p.dev, p.optional) for name, p in packages.items()}
    assert flags["@types/node"] == (True, False)
    assert flags["undici-types"] == (True, False)  # dev because only a dev dependency needs it
    assert flags["fsevents"] == (False, True)
    assert flags["express"] == flags["body-parser"] == flags["lodash"] == (False, False)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_entry_location_is_where_the_entry_starts(tmp_path: Path, case: Case) -> None:
    name, version, needle = case.located
    (package,) = [
        p for p in _read(tmp_path, case).packages if (p.name, p.version) == (name, version)
    ]
    assert package.location is not None
    line = line_of(case.text, needle)
    assert package.location.line == line
    assert package.location.column == case.text.splitlines()[line - 1].index(needle.strip()) + 1


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_registry_entries_keep_resolved_and_integrity(tmp_path: Path, case: Case) -> None:
    packages = {(p.name, p.version): p for p in _read(tmp_path, case).packages}
    express = packages["express", "4.18.2"]
    if case.kind is LockfileKind.YARN_BERRY:  # berry records a resolution and a zip checksum
        assert (express.resolved, express.integrity) == ("express@npm:4.18.2", None)
    else:
        assert express.integrity == "sha512-express=="
        assert express.resolved is None or "/express/-/express-4.18.2.tgz" in express.resolved


def test_the_root_falls_back_on_the_directory_name(tmp_path: Path) -> None:
    project = tmp_path / "shop-frontend"
    project.mkdir()
    (project / "pnpm-lock.yaml").write_text(PNPM_V9, encoding="utf-8")
    lockfile = read_lockfile(project / "pnpm-lock.yaml")
    assert lockfile.root == "shop-frontend"
    qs = next(p for p in lockfile.packages if p.spec == "qs@6.11.0")
    assert qs.path == ("shop-frontend", "express", "body-parser", "qs")


@pytest.mark.parametrize(
    ("case_id", "deep_path"),
    [
        # without package.json, the packages nothing depends on stand in for the root's
        ("package-lock-v1", (ROOT, "express", "body-parser", "qs")),
        ("yarn-classic", ("yarn-project", "express", "body-parser", "qs")),
    ],
)
def test_without_a_manifest_paths_start_at_unrequired_packages(
    tmp_path: Path, case_id: str, deep_path: tuple[str, ...]
) -> None:
    case = next(case for case in CASES if case.id == case_id)
    project = tmp_path / "yarn-project"
    project.mkdir()
    (project / case.file).write_text(case.text, encoding="utf-8")
    packages = {p.spec: p for p in read_lockfile(project / case.file).packages}
    assert packages["qs@6.11.0"].path == deep_path
    assert packages["body-parser@1.20.1"].dev is False


# -- find_lockfile ---------------------------------------------------------------------------------

FIND = [
    # (files present, the one found)
    (
        ("yarn.lock", "pnpm-lock.yaml", "package-lock.json", "npm-shrinkwrap.json"),
        "npm-shrinkwrap.json",
    ),
    (("yarn.lock", "pnpm-lock.yaml", "package-lock.json"), "package-lock.json"),
    (("yarn.lock", "pnpm-lock.yaml"), "pnpm-lock.yaml"),
    (("yarn.lock", "package.json"), "yarn.lock"),
    (("package-lock.json",), "package-lock.json"),
]


@pytest.mark.parametrize(("present", "found"), FIND)
def test_find_lockfile_prefers_npm_then_pnpm_then_yarn(
    tmp_path: Path, present: tuple[str, ...], found: str
) -> None:
    for name in present:
        (tmp_path / name).write_text("{}", encoding="utf-8")
    assert find_lockfile(tmp_path) == tmp_path / found


def test_find_lockfile_accepts_a_lockfile_path(tmp_path: Path) -> None:
    (tmp_path / "package-lock.json").write_text("{}", encoding="utf-8")
    (tmp_path / "yarn.lock").write_text("", encoding="utf-8")
    assert find_lockfile(tmp_path / "yarn.lock") == tmp_path / "yarn.lock"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param("empty", "no lockfile found", id="empty-directory"),
        pytest.param("package.json only", "no lockfile found", id="only-package-json"),
        pytest.param("missing", "no such file or directory", id="missing-directory"),
        pytest.param("lockfile in a subdirectory", "no lockfile found", id="not-recursive"),
    ],
)
def test_find_lockfile_errors_name_the_directory_and_the_names(
    tmp_path: Path, setup: str, expected: str
) -> None:
    directory = tmp_path / "app"
    if setup != "missing":
        directory.mkdir()
    if setup == "package.json only":
        (directory / "package.json").write_text(PACKAGE_JSON, encoding="utf-8")
    if setup == "lockfile in a subdirectory":
        (directory / "web").mkdir()
        (directory / "web" / "yarn.lock").write_text(YARN_CLASSIC, encoding="utf-8")
    with pytest.raises(LockfileError) as caught:
        find_lockfile(directory)
    message = str(caught.value)
    assert str(directory) in message
    assert expected in message
    if expected == "no lockfile found":
        assert all(name in message for name in LOCKFILE_NAMES)
