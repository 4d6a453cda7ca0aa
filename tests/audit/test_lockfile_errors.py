"""Malformed lockfiles as a table: each error names the file and the spot, never a KeyError.

Rows are (id, file name, text, where, detail): the LockfileError message must start with
`<path><where>: ` (where is `:line:column`, or "" when the spot is a key path alone) and
contain `detail` (the key path and the reason).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.audit.lockfile import detect_kind, parse_lockfile, read_lockfile
from proxy.audit.model import LockfileKind
from proxy.errors import LockfileError
from tests.audit.lockfiles import PNPM_V6, PNPM_V9, YARN_BERRY, YARN_CLASSIC, package_lock

NPM = "package-lock.json"
PNPM = "pnpm-lock.yaml"
YARN = "yarn.lock"
CLASSIC = "# yarn lockfile v1\n\n\n"
BERRY = "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n"


def _v3(entry: str) -> str:
    """A lockfileVersion 3 file whose one entry, `node_modules/a`, starts on line 4."""
    head = '{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/a": '
    return head + entry + "\n  }\n}\n"


def _v9(body: str) -> str:
    return "lockfileVersion: '9.0'\n\n" + body


INVALID: list[tuple[str, str, str, str, str]] = [
    # -- package-lock.json: syntax --------------------------------------------------------------
    ("json-missing-comma", NPM, '{\n  "a": 1\n  "b": 2\n}\n', ":3:3", "Expecting ',' delimiter"),
    ("json-empty", NPM, "", ":1:1", "not valid JSON: Expecting value"),
    ("json-trailing-text", NPM, '{"lockfileVersion": 3}\n}\n', ":2:1", "Extra data"),
    ("json-deeply-nested", NPM, "[" * 100_000, "", "nested too deeply"),
    # -- package-lock.json: structure -----------------------------------------------------------
    ("json-top-level-list", NPM, "[]\n", "", "expected a mapping, got a list"),
    (
        "unknown-version",
        NPM,
        '{\n  "lockfileVersion": 4\n}',
        ":2:3",
        "lockfileVersion: unsupported version 4",
    ),
    ("version-as-text", NPM, '{"lockfileVersion": "3"}', ":1:2", "unsupported version '3'"),
    ("version-bool", NPM, '{"lockfileVersion": true}', ":1:2", "lockfileVersion: unsupported"),
    ("v3-without-packages", NPM, '{"lockfileVersion": 3}', "", "packages: missing"),
    (
        "packages-a-list",
        NPM,
        '{\n  "lockfileVersion": 3,\n  "packages": []\n}',
        ":3:3",
        "packages: expected a mapping, got a list",
    ),
    (
        "entry-without-version",
        NPM,
        _v3('{\n      "resolved": "https://r.example/a/-/a-1.0.0.tgz"\n    }'),
        ":4:5",
        'packages["node_modules/a"].version: missing',
    ),
    (
        "entry-version-a-number",
        NPM,
        _v3('{\n      "version": 1\n    }'),
        ":5:7",
        'packages["node_modules/a"].version: expected a string, got a number',
    ),
    (
        "entry-a-string",
        NPM,
        _v3('"1.0.0"'),
        ":4:5",
        'packages["node_modules/a"]: expected a mapping',
    ),
    (
        "entry-dependencies-a-list",
        NPM,
        _v3('{"version": "1.0.0", "dependencies": ["b"]}'),
        ":4:44",
        'packages["node_modules/a"].dependencies: expected a mapping, got a list',
    ),
    (
        "entry-dev-a-string",
        NPM,
        _v3('{"version": "1.0.0", "dev": "yes"}'),
        ":4:44",
        'packages["node_modules/a"].dev: expected true or false, got a string',
    ),
    (
        "entry-without-a-name",
        NPM,
        '{"lockfileVersion": 3, "packages": {"node_modules/": {"version": "1.0.0"}}}',
        ":1:37",
        'packages["node_modules/"]: an install location without a package name',
    ),
    (
        "v1-nested-entry-without-version",
        NPM,
        '{\n "lockfileVersion": 1,\n "dependencies": {\n  "a": {\n   "version": "1.0.0",\n'
        '   "dependencies": {\n    "b": {"resolved": "x"}\n   }\n  }\n }\n}',
        ":7:5",
        "dependencies.a.dependencies.b.version: missing",
    ),
    (
        "v1-requires-not-a-mapping",
        NPM,
        '{"lockfileVersion": 1, "dependencies": {"a": {"version": "1.0.0", "requires": true}}}',
        ":1:67",
        "dependencies.a.requires: expected a mapping, got a boolean",
    ),
    # -- pnpm-lock.yaml -------------------------------------------------------------------------
    (
        "yaml-bad-indentation",
        PNPM,
        _v9("importers:\n  .:\n    dependencies:\n      a:\n        specifier: ^1\n       v: 1\n"),
        ":8:8",
        "not valid YAML: did not find expected key",
    ),
    ("yaml-tab", PNPM, _v9("packages:\n\t/a@1.0.0: {}\n"), ":4:1", "not valid YAML"),
    (
        "yaml-unsafe-tag",
        PNPM,
        _v9("packages: !!python/object/apply:os.system ['id']\n"),
        ":3:11",
        "could not determine a constructor",
    ),
    (
        "pnpm-5",
        PNPM,
        "lockfileVersion: 5.4\n",
        ":1:1",
        "lockfileVersion: unsupported version '5.4'",
    ),
    ("pnpm-no-version", PNPM, "importers: {}\n", ":1:1", "lockfileVersion: unsupported"),
    ("pnpm-empty", PNPM, "", "", "expected a mapping, got null"),
    ("pnpm-packages-a-list", PNPM, _v9("packages:\n  - a@1.0.0\n"), ":3:1", "packages: expected a"),
    (
        "pnpm-importer-without-version",
        PNPM,
        _v9("importers:\n  .:\n    dependencies:\n      a:\n        specifier: ^1\n"),
        ":6:7",
        'importers["."].dependencies.a.version: missing',
    ),
    (
        "pnpm-key-without-name",
        PNPM,
        _v9("packages:\n\n  '@x':\n    resolution: {integrity: sha512-x}\n"),
        ":5:3",
        'packages["@x"]: no package name in the key',
    ),
    (
        "pnpm-key-without-version",
        PNPM,
        _v9("packages:\n\n  left-pad@:\n    resolution: {integrity: sha512-x}\n"),
        ":5:3",
        'packages["left-pad@"]: no version',
    ),
    (
        "pnpm-dev-maybe",
        PNPM,
        "lockfileVersion: '6.0'\n\npackages:\n\n  /a@1.0.0:\n    resolution: {integrity: x}\n"
        "    dev: maybe\n",
        ":7:5",
        'packages["/a@1.0.0"].dev: expected true or false',
    ),
    (
        "pnpm-snapshot-dependency-a-mapping",
        PNPM,
        _v9("snapshots:\n\n  a@1.0.0:\n    dependencies:\n      b: {version: 1.0.0}\n"),
        ":7:7",
        'snapshots["a@1.0.0"].dependencies.b: expected a version string',
    ),
    (
        "pnpm-git-without-repo",
        PNPM,
        _v9("packages:\n\n  a@git+https://x/a.git:\n    resolution: {type: git, commit: abc}\n"),
        ":6:5",
        'packages["a@git+https://x/a.git"].resolution.repo: missing',
    ),
    # -- yarn.lock (classic) --------------------------------------------------------------------
    (
        "classic-unterminated-string",
        YARN,
        CLASSIC + 'a@^1.0.0:\n  version "1.0.0\n',
        ":5:11",
        "cannot read this",
    ),
    ("classic-odd-indent", YARN, CLASSIC + 'a@^1:\n   version "1"\n', ":5:4", "two spaces"),
    ("classic-tab", YARN, CLASSIC + 'a@^1:\n\tversion "1"\n', ":5:1", "two spaces"),
    ("classic-too-deep", YARN, CLASSIC + 'a@^1:\n    version "1"\n', ":5:5", "deeper than"),
    ("classic-no-colon", YARN, CLASSIC + 'a@^1\n  version "1"\n', ":4:1", "`key value` or `key:`"),
    ("classic-top-scalar", YARN, CLASSIC + "a b\n", ":4:1", "a `pattern:` block at the top"),
    ("classic-bad-keys", YARN, CLASSIC + "a@^1 b@^1:\n", ":4:1", "`pattern, pattern:`"),
    ("classic-bad-escape", YARN, CLASSIC + 'a@^1:\n  version "\\q"\n', ":5:11", "bad escape"),
    (
        "classic-without-version",
        YARN,
        CLASSIC + 'a@^1:\n  resolved "https://r.example/a/-/a-1.0.0.tgz"\n',
        ":4:1",
        '["a@^1"].version: missing',
    ),
    (
        "classic-version-a-block",
        YARN,
        CLASSIC + "a@^1:\n  version:\n    x y\n",
        ":5:3",
        '["a@^1"].version: expected a string, got a mapping',
    ),
    (
        "classic-dependency-a-block",
        YARN,
        CLASSIC + 'a@^1:\n  version "1.0.0"\n  dependencies:\n    b:\n      c d\n',
        ":7:5",
        '["a@^1"].dependencies.b: expected a range',
    ),
    # -- yarn.lock (berry) ----------------------------------------------------------------------
    ("berry-yaml", YARN, BERRY + '"a@npm:^1":\n  resolution: [\n', ":7:1", "not valid YAML"),
    ("berry-no-version", YARN, "__metadata:\n  cacheKey: 8\n", ":1:1", "__metadata.version"),
    (
        "berry-without-resolution",
        YARN,
        BERRY + '"a@npm:^1":\n  version: 1.0.0\n',
        ":5:1",
        '["a@npm:^1"].resolution: missing',
    ),
    (
        "berry-bad-resolution",
        YARN,
        BERRY + '"a@npm:^1":\n  version: 1.0.0\n  resolution: a\n',
        ":7:3",
        "'a' is not `name@reference`",
    ),
    (
        "berry-without-version",
        YARN,
        BERRY + '"a@npm:^1":\n  resolution: "a@npm:1.0.0"\n',
        ":5:1",
        '["a@npm:^1"].version: missing',
    ),
    (
        "berry-dependencies-a-list",
        YARN,
        BERRY + '"a@npm:^1":\n  version: 1.0.0\n  resolution: "a@npm:1.0.0"\n  dependencies: [b]\n',
        ":8:3",
        '["a@npm:^1"].dependencies: expected a mapping, got a list',
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "where", "detail"),
    [pytest.param(*row[1:], id=row[0]) for row in INVALID],
)
def test_malformed_lockfiles_name_the_file_and_the_spot(
    tmp_path: Path, name: str, text: str, where: str, detail: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LockfileError) as caught:
        read_lockfile(path)
    message = str(caught.value)
    assert message.startswith(f"{path}{where}: "), message
    assert detail in message


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    directory = tmp_path / "package-lock.json"
    directory.mkdir()
    with pytest.raises(LockfileError, match=r"package-lock\.json: cannot read"):
        read_lockfile(directory)
    binary = tmp_path / "yarn.lock"
    binary.write_bytes(b"\xff\xfe# yarn lockfile v1\n")
    with pytest.raises(LockfileError, match=r"yarn\.lock: not UTF-8 text \(byte 0\)"):
        read_lockfile(binary)
    with pytest.raises(LockfileError, match=r"missing\.lock: cannot read: No such file"):
        read_lockfile(tmp_path / "missing.lock")


# -- the format, from the name and then the content ------------------------------------------------

KINDS = [
    ("npm-shrinkwrap.json", "{}", LockfileKind.SHRINKWRAP),
    ("package-lock.json", "{}", LockfileKind.PACKAGE_LOCK),
    ("pnpm-lock.yaml", "lockfileVersion: '9.0'", LockfileKind.PNPM),
    ("yarn.lock", YARN_CLASSIC, LockfileKind.YARN_CLASSIC),
    ("yarn.lock", YARN_BERRY, LockfileKind.YARN_BERRY),
    ("yarn.lock", "", LockfileKind.YARN_CLASSIC),
    # a lockfile saved under another name is recognised by its content
    ("lock.json", package_lock(3), LockfileKind.PACKAGE_LOCK),
    ("old-pnpm.yaml", PNPM_V6, LockfileKind.PNPM),
    ("yarn-v1.lock", YARN_CLASSIC, LockfileKind.YARN_CLASSIC),
    ("berry.lock", YARN_BERRY, LockfileKind.YARN_BERRY),
]


@pytest.mark.parametrize(("name", "text", "kind"), KINDS)
def test_detect_kind(name: str, text: str, kind: LockfileKind) -> None:
    assert detect_kind(Path(name), text) is kind


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deps.txt", ""),
        ("deps.txt", "hello\n"),
        ("deps.txt", "name: x\n"),
        ("deps.txt", "[1, 2]"),
        ("package.json", '{"name": "app", "dependencies": {"express": "^4.18.2"}}'),
    ],
)
def test_unknown_content_under_an_unknown_name_is_an_error(name: str, text: str) -> None:
    with pytest.raises(LockfileError, match=rf"{name}: cannot tell which lockfile this is"):
        detect_kind(Path(name), text)


# -- hostile input: type confusion anywhere gives LockfileError, never a crash --------------------

_SUBSTITUTES: list[Any] = [None, True, 7, "x", [], {}, ["x"], {"x": 1}]


def _spots(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _spots(value, (*path, key))
    return found


def _replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return data


HOSTILE = [
    ("package-lock.json", package_lock(1), json.loads, json.dumps),
    ("package-lock.json", package_lock(3), json.loads, json.dumps),
    ("pnpm-lock.yaml", PNPM_V6, yaml.safe_load, yaml.safe_dump),
    ("pnpm-lock.yaml", PNPM_V9, yaml.safe_load, yaml.safe_dump),
    ("yarn.lock", YARN_BERRY, yaml.safe_load, yaml.safe_dump),
]


def _error(text: str, name: str) -> str | None:
    """The LockfileError message reading `text` as `name` gives, or None if it reads."""
    try:
        parse_lockfile(text, Path(name))
    except LockfileError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    ("name", "text", "load", "dump"),
    HOSTILE,
    ids=["npm-v1", "npm-v3", "pnpm-v6", "pnpm-v9", "berry"],
)
def test_type_confusion_is_a_lockfile_error(name: str, text: str, load: Any, dump: Any) -> None:
    data = load(text)
    rng = random.Random(f"{name}:{len(text)}")  # the same rows on every run
    spots = _spots(data)
    for path in rng.sample(spots, min(len(spots), 60)):
        error = _error(dump(_replaced(data, path, rng.choice(_SUBSTITUTES))), name)
        assert error is None or error.startswith(name), error


@pytest.mark.parametrize("seed", range(3))
def test_cut_text_is_a_lockfile_error(seed: int) -> None:
    rng = random.Random(seed)
    texts = [
        ("package-lock.json", package_lock(2)),
        ("pnpm-lock.yaml", PNPM_V9),
        ("yarn.lock", YARN_CLASSIC),
        ("yarn.lock", YARN_BERRY),
    ]
    for name, text in texts:
        for _ in range(15):
            lines = text.splitlines(keepends=True)
            i, j = sorted(rng.sample(range(len(lines)), 2))
            cut = "".join(lines[:i] + lines[j:])
            for mutated in (cut, text[: rng.randrange(len(text))]):
                error = _error(mutated, name)
                assert error is None or error.startswith(name), error
