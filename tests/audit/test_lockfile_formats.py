"""Format details beyond the shared app: the shapes each format can take, one test per shape."""

from __future__ import annotations

import json
from pathlib import Path

from proxy.audit.lockfile import parse_lockfile, read_lockfile
from proxy.audit.lockfiles.manifest import parse_manifest
from proxy.audit.model import Lockfile, LockfileKind, Source
from tests.audit.lockfiles import PACKAGE_JSON, YARN_BERRY, YARN_CLASSIC, package_lock


def _paths(lockfile: Lockfile) -> dict[str, tuple[str, ...]]:
    return {p.spec: p.path for p in lockfile.packages}


def _read(name: str, text: str, manifest: str | None = None) -> Lockfile:
    return parse_lockfile(
        text, Path("app") / name, parse_manifest(manifest) if manifest is not None else None
    )


# -- npm -------------------------------------------------------------------------------------------


def test_v2_reads_the_packages_map_and_ignores_the_v1_tree() -> None:
    data = json.loads(package_lock(2))
    data["dependencies"] = {"express": {"version": "4.0.0"}, "evil": {"version": "6.6.6"}}
    lockfile = _read("package-lock.json", json.dumps(data, indent=2))
    specs = {p.spec for p in lockfile.packages}
    assert "express@4.18.2" in specs
    assert not {"express@4.0.0", "evil@6.6.6"} & specs


def test_nested_copies_collapse_and_extraneous_packages_hang_off_the_root() -> None:
    packages = {
        "": {"name": "app", "dependencies": {"a": "^1", "b": "^1"}},
        "node_modules/a": {"version": "1.0.0", "dependencies": {"qs": "6.11.0"}},
        "node_modules/a/node_modules/qs": {"version": "6.11.0"},
        "node_modules/b": {"version": "1.0.0", "dependencies": {"c": "1.0.0", "qs": "6.11.0"}},
        "node_modules/b/node_modules/c": {
            "version": "1.0.0",
            "dependencies": {"qs": "6.11.0"},
            "peerDependencies": {"not-installed": "*"},
        },
        "node_modules/b/node_modules/qs": {"version": "6.11.0"},
        "node_modules/left-behind": {"version": "0.1.0", "extraneous": True},
    }
    lockfile = _read("package-lock.json", json.dumps({"lockfileVersion": 3, "packages": packages}))
    assert _paths(lockfile) == {
        "a@1.0.0": ("app", "a"),
        "b@1.0.0": ("app", "b"),
        "c@1.0.0": ("app", "b", "c"),  # c's qs is b's, the nearest node_modules up
        "left-behind@0.1.0": ("app", "left-behind"),
        "qs@6.11.0": ("app", "a", "qs"),  # three copies, one package
    }


def test_a_shrinkwrap_of_version_1_and_a_file_without_a_version_field() -> None:
    v1 = _read("npm-shrinkwrap.json", package_lock(1), PACKAGE_JSON)
    assert (v1.kind, v1.version) == (LockfileKind.SHRINKWRAP, "1")
    old = json.loads(package_lock(1))
    del old["lockfileVersion"]  # npm 4's shrinkwrap had none
    unversioned = _read("npm-shrinkwrap.json", json.dumps(old), PACKAGE_JSON)
    assert unversioned.version == "1"
    assert [(p.spec, p.source, p.path) for p in unversioned.packages] == [
        (p.spec, p.source, p.path) for p in v1.packages
    ]


# -- pnpm ------------------------------------------------------------------------------------------

PNPM_SINGLE = """\
lockfileVersion: '6.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

dependencies:
  express:
    specifier: ^4.18.2
    version: 4.18.2

devDependencies:
  '@types/node':
    specifier: ^20.11.0
    version: 20.11.5

packages:

  /@types/node@20.11.5:
    resolution: {integrity: sha512-typesnode==}
    dev: true

  /body-parser@1.20.1:
    resolution: {integrity: sha512-body-parser==}
    dependencies:
      qs: 6.11.0

  /express@4.18.2:
    resolution: {integrity: sha512-express==}
    dependencies:
      body-parser: 1.20.1
    dev: false

  /qs@6.11.0:
    resolution: {integrity: sha512-qs==, tarball: https://npm.corp.example/qs/-/qs-6.11.0.tgz}
"""


def test_pnpm6_single_project_keeps_its_dependencies_at_the_top() -> None:
    lockfile = _read("pnpm-lock.yaml", PNPM_SINGLE, '{"name": "single"}')
    assert lockfile.root == "single"
    assert _paths(lockfile) == {
        "@types/node@20.11.5": ("single", "@types/node"),
        "body-parser@1.20.1": ("single", "express", "body-parser"),
        "express@4.18.2": ("single", "express"),
        "qs@6.11.0": ("single", "express", "body-parser", "qs"),
    }
    qs = lockfile.packages[-1]
    assert (qs.source, qs.resolved, qs.dev) == (
        Source.REGISTRY,
        "https://npm.corp.example/qs/-/qs-6.11.0.tgz",
        False,  # no `dev` field: derived, and only production dependencies lead to it
    )


PNPM_TWO_DOCUMENTS = """\
---
lockfileVersion: '9.0'

importers:
  .:
    configDependencies: {}

---
lockfileVersion: 9.0

importers:

  .:
    dependencies:
      express:
        specifier: ^4.18.2
        version: 4.18.2

packages:

  express@4.18.2:
    resolution: {integrity: sha512-express==}

snapshots:

  express@4.18.2: {}
"""


def test_pnpm_environment_document_before_the_lockfile() -> None:
    lockfile = _read("pnpm-lock.yaml", PNPM_TWO_DOCUMENTS)
    assert lockfile.version == "9.0"  # unquoted, and still the text "9.0"
    assert _paths(lockfile) == {"express@4.18.2": ("app", "express")}
    assert lockfile.packages[0].location is not None
    assert lockfile.packages[0].location.line == 21


PNPM_WORKSPACE = """\
lockfileVersion: '9.0'

importers:

  .: {}

  packages/app:
    dependencies:
      ui:
        specifier: workspace:^
        version: link:../ui

  packages/ui:
    dependencies:
      left-pad:
        specifier: ^1.3.0
        version: 1.3.0

packages:

  left-pad@1.3.0:
    resolution: {integrity: sha512-left-pad==}

snapshots:

  left-pad@1.3.0: {}
"""


def test_pnpm_workspace_projects_are_reached_from_the_root() -> None:
    lockfile = _read("pnpm-lock.yaml", PNPM_WORKSPACE)
    assert _paths(lockfile) == {
        "left-pad@1.3.0": ("app", "packages/ui", "left-pad"),
        "ui": ("app", "packages/app", "ui"),  # `link:../ui` from packages/app
    }
    ui = lockfile.packages[1]
    assert (ui.source, ui.resolved, ui.checkable) == (Source.LINK, "link:packages/ui", False)
    assert ui.location is not None
    assert ui.location.line == 9


# -- yarn ------------------------------------------------------------------------------------------


def test_classic_with_windows_line_ends_and_a_byte_order_mark() -> None:
    text = "\ufeff" + YARN_CLASSIC.replace("\n", "\r\n")
    crlf = _read("yarn.lock", text, PACKAGE_JSON)
    plain = _read("yarn.lock", YARN_CLASSIC, PACKAGE_JSON)
    assert crlf.packages == plain.packages
    assert crlf.kind is LockfileKind.YARN_CLASSIC


def test_classic_alias_required_by_a_package() -> None:
    text = (
        "# yarn lockfile v1\n\n\n"
        'app-utils@^1.0.0:\n  version "1.0.0"\n  dependencies:\n    my-lodash "npm:lodash@^4"\n\n'
        '"my-lodash@npm:lodash@^4":\n  version "4.17.21"\n'
        '  resolved "https://yarn-registry-host.invalid/lodash/-/lodash-4.17.21.tgz#679591c5"\n'
    )
    lockfile = _read("yarn.lock", text, '{"dependencies": {"app-utils": "^1.0.0"}}')
    lodash = lockfile.packages[1]
    assert (lodash.spec, lodash.alias, lodash.path) == (
        "lodash@4.17.21",
        "my-lodash",
        ("app", "app-utils", "my-lodash"),
    )


def test_berry_without_a_manifest_still_has_its_root() -> None:
    lockfile = _read("yarn.lock", YARN_BERRY)
    packages = {p.spec: p for p in lockfile.packages}
    assert lockfile.root == "my-app"
    assert packages["qs@6.11.0"].path == ("my-app", "express", "body-parser", "qs")
    # the lockfile does not tell dev dependencies apart; only package.json does
    assert packages["@types/node@20.11.5"].dev is False


def test_berry_lockfile_4_ranges_without_the_npm_protocol() -> None:
    text = (
        "__metadata:\n  version: 4\n  cacheKey: 7\n\n"
        '"app@workspace:.":\n  version: 0.0.0-use.local\n  resolution: "app@workspace:."\n'
        "  dependencies:\n    express: ^4.18.2\n  languageName: unknown\n  linkType: soft\n\n"
        '"express@npm:^4.18.2":\n  version: 4.18.2\n  resolution: "express@npm:4.18.2"\n'
        "  languageName: node\n  linkType: hard\n"
    )
    lockfile = _read("yarn.lock", text)
    assert (lockfile.version, _paths(lockfile)) == ("4", {"express@4.18.2": ("app", "express")})
    assert lockfile.packages[0].location is not None
    assert lockfile.packages[0].location.line == 13


def test_npm_file_directory_is_a_linked_file_dependency() -> None:
    # npm 7+ links a `file:` directory like a workspace; it is still a file dependency
    packages = {
        "": {"name": "app", "dependencies": {"local-lib": "file:vendor/local-lib"}},
        "node_modules/local-lib": {"resolved": "vendor/local-lib", "link": True},
        "vendor/local-lib": {"version": "1.0.0", "dependencies": {"ms": "2.1.3"}},
        "vendor/local-lib/node_modules/ms": {"version": "2.1.3"},
    }
    lockfile = _read("package-lock.json", json.dumps({"lockfileVersion": 3, "packages": packages}))
    assert [(p.spec, p.source, p.path, p.resolved) for p in lockfile.packages] == [
        ("local-lib", Source.FILE, ("app", "local-lib"), "vendor/local-lib"),
        ("ms@2.1.3", Source.REGISTRY, ("app", "local-lib", "ms"), None),
    ]


LOCAL_RESOLUTION = (
    "local-lib@file:vendor/local-lib#vendor/local-lib::hash=9d126e&locator=app%40workspace%3A."
)
BERRY_FILE = f"""\
__metadata:
  version: 8
  cacheKey: 10c0

"app@workspace:.":
  version: 0.0.0-use.local
  resolution: "app@workspace:."
  dependencies:
    local-lib: "file:vendor/local-lib"
  languageName: unknown
  linkType: soft

"local-lib@file:vendor/local-lib::locator=app%40workspace%3A.":
  version: 1.0.0
  resolution: "{LOCAL_RESOLUTION}"
  dependencies:
    ms: "npm:2.1.3"
  languageName: node
  linkType: hard

"ms@npm:2.1.3":
  version: 2.1.3
  resolution: "ms@npm:2.1.3"
  checksum: 10c0/d924b57e7312b3b63ad21fc5b3dc0af5e78d61a1fc7cfb5457edaf26326bf62be5307cc87ffb
  languageName: node
  linkType: hard
"""


def test_berry_binds_relative_descriptors_to_their_parent() -> None:
    lockfile = _read("yarn.lock", BERRY_FILE)
    assert [(p.spec, p.source, p.path) for p in lockfile.packages] == [
        ("local-lib@1.0.0", Source.FILE, ("app", "local-lib")),
        ("ms@2.1.3", Source.REGISTRY, ("app", "local-lib", "ms")),
    ]


def test_classic_link_dependencies_are_reported_though_yarn_does_not_lock_them() -> None:
    manifest = '{"name": "app", "dependencies": {"ui": "link:packages/ui", "gone": "^1.0.0"}}'
    lockfile = _read("yarn.lock", "# yarn lockfile v1\n", manifest)
    assert [(p.spec, p.source, p.path, p.resolved) for p in lockfile.packages] == [
        ("ui", Source.LINK, ("app", "ui"), "link:packages/ui"),  # `gone` is not locked: skipped
    ]


def test_classic_workspaces_are_read_from_inside_the_project(tmp_path: Path) -> None:
    project = tmp_path / "mono"
    files = {
        "package.json": json.dumps(
            {
                "name": "mono",
                "private": True,
                "workspaces": {"packages": ["*", "packages/*", "../outside/*", "!packages/skip*"]},
            }
        ),
        "packages/a/package.json": '{"name": "a", "dependencies": {"b": "1.0.0"}}',
        "packages/b/package.json": '{"name": "b", "dependencies": {"left-pad": "^1.3.0"}}',
        "packages/no-manifest/README": "not a workspace",
        "packages/skipped/package.json": '{"name": "skipped"}',
        "node_modules/left-pad/package.json": '{"name": "left-pad"}',
        "../outside/c/package.json": '{"name": "c"}',
        "yarn.lock": (
            "# yarn lockfile v1\n\n\nleft-pad@^1.3.0:\n"
            f'  version "1.3.0"\n  resolved "{_LEFT_PAD}"\n'
        ),
    }
    for name, content in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content, encoding="utf-8")
    lockfile = read_lockfile(project / "yarn.lock")
    assert [(p.spec, p.source, p.path, p.resolved) for p in lockfile.packages] == [
        ("a", Source.LINK, ("mono", "a"), "packages/a"),
        ("b", Source.LINK, ("mono", "b"), "packages/b"),
        ("left-pad@1.3.0", Source.REGISTRY, ("mono", "b", "left-pad"), _LEFT_PAD),
    ]


_LEFT_PAD = "https://yarn-registry-host.invalid/left-pad/-/left-pad-1.3.0.tgz"
