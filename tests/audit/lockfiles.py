"""One small app written as every lockfile format the audit reads.

The app `my-app` depends on express (→ body-parser → a nested qs 6.11.0: the deep chain), qs
~6.5.2 directly, a scoped package (@sindresorhus/is), an `npm:` alias (my-lodash → lodash),
react-dom with react as a peer (pnpm's peer-suffixed keys), an optional dependency (fsevents),
a dev dependency (@types/node → undici-types), a git dependency (my-git-dep), a file dependency
(local-lib) and a workspace or link member (ui → left-pad).
"""

from __future__ import annotations

import json
from typing import Any

from proxy.audit.model import Source

SHA = "0123abcdef0123abcdef0123abcdef0123abcdef"
NPM = "https://registry-host.invalid"
YARN = "https://yarn-registry-host.invalid"

# (name, version): every registry package of the app, in every format
REGISTRY = (
    ("@sindresorhus/is", "4.6.0"),
    ("@types/node", "20.11.5"),
    ("body-parser", "1.20.1"),
    ("cookie", "0.5.0"),
    ("express", "4.18.2"),
    ("fsevents", "2.3.3"),
    ("left-pad", "1.3.0"),
    ("lodash", "4.17.21"),
    ("qs", "6.11.0"),
    ("qs", "6.5.3"),
    ("react", "18.2.0"),
    ("react-dom", "18.2.0"),
    ("scheduler", "0.23.0"),
    ("undici-types", "5.26.5"),
)
REGISTRY_SET = frozenset((name, version, Source.REGISTRY) for name, version in REGISTRY)

PACKAGE_JSON = json.dumps(
    {
        "name": "my-app",
        "version": "1.0.0",
        "dependencies": {
            "@sindresorhus/is": "^4.6.0",
            "express": "^4.18.2",
            "local-lib": "file:vendor/local-lib",
            "my-git-dep": "github:acme/my-git-dep#0123abc",
            "my-lodash": "npm:lodash@^4.17.21",
            "qs": "~6.5.2",
            "react": "^18.2.0",
            "react-dom": "^18.2.0",
            "ui": "link:packages/ui",
        },
        "devDependencies": {"@types/node": "^20.11.0"},
        "optionalDependencies": {"fsevents": "~2.3.2"},
    },
    indent=2,
)

# yarn 1 does not lock workspaces: the project lists them, and each has its package.json
UI_PACKAGE_JSON = '{"name": "ui", "version": "0.1.0", "dependencies": {"left-pad": "^1.3.0"}}'
_WITH_WORKSPACES = json.loads(PACKAGE_JSON)
del _WITH_WORKSPACES["dependencies"]["ui"]
YARN_WORKSPACE_PACKAGE_JSON = json.dumps(
    {**_WITH_WORKSPACES, "private": True, "workspaces": ["packages/*"]}, indent=2
)


def _tarball(name: str, version: str, registry: str = NPM) -> str:
    return f"{registry}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def _integrity(name: str) -> str:
    return f"sha512-{name.replace('/', '').replace('@', '')}=="


# -- npm -------------------------------------------------------------------------------------------


def _npm_entry(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "resolved": _tarball(name, version),
        "integrity": _integrity(name),
        **extra,
    }


def _packages() -> dict[str, Any]:
    root_deps = json.loads(PACKAGE_JSON)
    del root_deps["dependencies"]["ui"]  # a workspace, not a dependency
    root_deps["dependencies"]["local-lib"] = "file:vendor/local-lib-1.0.0.tgz"
    return {
        "": {
            "name": "my-app",
            "version": "1.0.0",
            "workspaces": ["packages/*"],
            "dependencies": root_deps["dependencies"],
            "devDependencies": root_deps["devDependencies"],
            "optionalDependencies": root_deps["optionalDependencies"],
        },
        "node_modules/@sindresorhus/is": _npm_entry("@sindresorhus/is", "4.6.0"),
        "node_modules/@types/node": _npm_entry(
            "@types/node", "20.11.5", dev=True, dependencies={"undici-types": "~5.26.4"}
        ),
        "node_modules/body-parser": _npm_entry(
            "body-parser", "1.20.1", dependencies={"qs": "6.11.0"}
        ),
        "node_modules/body-parser/node_modules/qs": _npm_entry("qs", "6.11.0"),
        "node_modules/cookie": _npm_entry("cookie", "0.5.0"),
        "node_modules/express": _npm_entry(
            "express", "4.18.2", dependencies={"body-parser": "1.20.1", "cookie": "0.5.0"}
        ),
        "node_modules/fsevents": _npm_entry("fsevents", "2.3.3", optional=True, os=["darwin"]),
        "node_modules/left-pad": _npm_entry("left-pad", "1.3.0"),
        "node_modules/local-lib": {
            "version": "1.0.0",
            "resolved": "file:vendor/local-lib-1.0.0.tgz",
            "integrity": _integrity("local-lib"),
        },
        "node_modules/my-git-dep": {
            "version": "1.0.0",
            "resolved": f"git+ssh://git@github.com/acme/my-git-dep.git#{SHA}",
        },
        "node_modules/my-lodash": {"name": "lodash", **_npm_entry("lodash", "4.17.21")},
        "node_modules/qs": _npm_entry("qs", "6.5.3"),
        "node_modules/react": _npm_entry("react", "18.2.0"),
        "node_modules/react-dom": _npm_entry(
            "react-dom",
            "18.2.0",
            dependencies={"scheduler": "^0.23.0"},
            peerDependencies={"react": "^18.2.0"},
        ),
        "node_modules/scheduler": _npm_entry("scheduler", "0.23.0"),
        "node_modules/ui": {"resolved": "packages/ui", "link": True},
        "node_modules/undici-types": _npm_entry("undici-types", "5.26.5", dev=True),
        "packages/ui": {"name": "ui", "version": "0.1.0", "dependencies": {"left-pad": "^1.3.0"}},
    }


def _tree() -> dict[str, Any]:
    """lockfileVersion 1's nested tree (npm 5 and 6: no workspaces; `ui` is a file: link)."""
    return {
        "@sindresorhus/is": _npm_entry("@sindresorhus/is", "4.6.0"),
        "@types/node": _npm_entry(
            "@types/node", "20.11.5", dev=True, requires={"undici-types": "~5.26.4"}
        ),
        "body-parser": _npm_entry(
            "body-parser",
            "1.20.1",
            requires={"qs": "6.11.0"},
            dependencies={"qs": _npm_entry("qs", "6.11.0")},
        ),
        "cookie": _npm_entry("cookie", "0.5.0"),
        "express": _npm_entry(
            "express", "4.18.2", requires={"body-parser": "1.20.1", "cookie": "0.5.0"}
        ),
        "fsevents": _npm_entry("fsevents", "2.3.3", optional=True),
        "left-pad": _npm_entry("left-pad", "1.3.0"),
        "local-lib": {
            "version": "file:vendor/local-lib-1.0.0.tgz",
            "integrity": _integrity("local-lib"),
        },
        "my-git-dep": {
            "version": f"github:acme/my-git-dep#{SHA}",
            "from": "github:acme/my-git-dep#0123abc",
        },
        "my-lodash": {**_npm_entry("lodash", "4.17.21"), "version": "npm:lodash@4.17.21"},
        "qs": _npm_entry("qs", "6.5.3"),
        "react": _npm_entry("react", "18.2.0"),
        "react-dom": _npm_entry("react-dom", "18.2.0", requires={"scheduler": "^0.23.0"}),
        "scheduler": _npm_entry("scheduler", "0.23.0"),
        "ui": {"version": "file:packages/ui", "requires": {"left-pad": "^1.3.0"}},
        "undici-types": _npm_entry("undici-types", "5.26.5", dev=True),
    }


def package_lock(version: int) -> str:
    """package-lock.json as npm writes it (two-space JSON) for lockfileVersion 1, 2 or 3."""
    top: dict[str, Any] = {"name": "my-app", "version": "1.0.0", "lockfileVersion": version}
    top["requires"] = True
    if version >= 2:
        top["packages"] = _packages()
    if version <= 2:
        top["dependencies"] = _tree()
    return json.dumps(top, indent=2) + "\n"


# -- pnpm ------------------------------------------------------------------------------------------

_PNPM_IMPORTERS = """\
importers:

  .:
    dependencies:
      '@sindresorhus/is':
        specifier: ^4.6.0
        version: 4.6.0
      express:
        specifier: ^4.18.2
        version: 4.18.2
      local-lib:
        specifier: file:vendor/local-lib
        version: file:vendor/local-lib
      my-git-dep:
        specifier: {git_spec}
        version: {git_version}
      my-lodash:
        specifier: npm:lodash@^4.17.21
        version: {alias_version}
      qs:
        specifier: ~6.5.2
        version: 6.5.3
      react:
        specifier: ^18.2.0
        version: 18.2.0
      react-dom:
        specifier: ^18.2.0
        version: 18.2.0(react@18.2.0)
      ui:
        specifier: workspace:*
        version: link:packages/ui
    optionalDependencies:
      fsevents:
        specifier: ~2.3.2
        version: 2.3.3
    devDependencies:
      '@types/node':
        specifier: ^20.11.0
        version: 20.11.5

  packages/ui:
    dependencies:
      left-pad:
        specifier: ^1.3.0
        version: 1.3.0
"""

PNPM_V6 = (
    "lockfileVersion: '6.0'\n\nsettings:\n  autoInstallPeers: true\n"
    "  excludeLinksFromLockfile: false\n\n"
    + _PNPM_IMPORTERS.format(
        git_spec="github:acme/my-git-dep#0123abc",
        git_version=f"github.com/acme/my-git-dep/{SHA}",
        alias_version="/lodash@4.17.21",
    )
    + f"""
packages:

  /@sindresorhus/is@4.6.0:
    resolution: {{integrity: {_integrity("@sindresorhus/is")}}}
    engines: {{node: '>=10'}}
    dev: false

  /@types/node@20.11.5:
    resolution: {{integrity: {_integrity("@types/node")}}}
    dependencies:
      undici-types: 5.26.5
    dev: true

  /body-parser@1.20.1:
    resolution: {{integrity: {_integrity("body-parser")}}}
    engines: {{node: '>= 0.8', npm: 1.2.8000 || >= 1.4.16}}
    dependencies:
      qs: 6.11.0
    dev: false

  /cookie@0.5.0:
    resolution: {{integrity: {_integrity("cookie")}}}
    dev: false

  /express@4.18.2:
    resolution: {{integrity: {_integrity("express")}}}
    engines: {{node: '>= 0.10.0'}}
    dependencies:
      body-parser: 1.20.1
      cookie: 0.5.0
    dev: false

  /fsevents@2.3.3:
    resolution: {{integrity: {_integrity("fsevents")}}}
    engines: {{node: ^8.16.0 || ^10.6.0 || >=11.0.0}}
    os: [darwin]
    requiresBuild: true
    dev: false
    optional: true

  /left-pad@1.3.0:
    resolution: {{integrity: {_integrity("left-pad")}}}
    deprecated: use String.prototype.padStart()
    dev: false

  /lodash@4.17.21:
    resolution: {{integrity: {_integrity("lodash")}}}
    dev: false

  /qs@6.11.0:
    resolution: {{integrity: {_integrity("qs")}}}
    dev: false

  /qs@6.5.3:
    resolution: {{integrity: {_integrity("qs")}}}
    dev: false

  /react-dom@18.2.0(react@18.2.0):
    resolution: {{integrity: {_integrity("react-dom")}}}
    peerDependencies:
      react: ^18.2.0
    dependencies:
      react: 18.2.0
      scheduler: 0.23.0
    dev: false

  /react@18.2.0:
    resolution: {{integrity: {_integrity("react")}}}
    dev: false

  /scheduler@0.23.0:
    resolution: {{integrity: {_integrity("scheduler")}}}
    dev: false

  /undici-types@5.26.5:
    resolution: {{integrity: {_integrity("undici-types")}}}
    dev: true

  file:vendor/local-lib:
    resolution: {{directory: vendor/local-lib, type: directory}}
    name: local-lib
    version: 1.0.0
    dev: false

  github.com/acme/my-git-dep/{SHA}:
    resolution: {{tarball: https://codeload.github.com/acme/my-git-dep/tar.gz/{SHA}}}
    name: my-git-dep
    version: 1.0.0
    dev: false
"""
)

_GIT9 = f"git+https://github.com/acme/my-git-dep.git#{SHA}"
PNPM_V9 = (
    "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n"
    "  excludeLinksFromLockfile: false\n\n"
    + _PNPM_IMPORTERS.format(
        git_spec="git+https://github.com/acme/my-git-dep.git",
        git_version=_GIT9,
        alias_version="lodash@4.17.21",
    )
    + f"""
packages:

  '@sindresorhus/is@4.6.0':
    resolution: {{integrity: {_integrity("@sindresorhus/is")}}}
    engines: {{node: '>=10'}}

  '@types/node@20.11.5':
    resolution: {{integrity: {_integrity("@types/node")}}}

  body-parser@1.20.1:
    resolution: {{integrity: {_integrity("body-parser")}}}

  cookie@0.5.0:
    resolution: {{integrity: {_integrity("cookie")}}}

  express@4.18.2:
    resolution: {{integrity: {_integrity("express")}}}
    engines: {{node: '>= 0.10.0'}}

  fsevents@2.3.3:
    resolution: {{integrity: {_integrity("fsevents")}}}
    engines: {{node: ^8.16.0 || ^10.6.0 || >=11.0.0}}
    os: [darwin]

  left-pad@1.3.0:
    resolution: {{integrity: {_integrity("left-pad")}}}
    deprecated: use String.prototype.padStart()

  local-lib@file:vendor/local-lib:
    resolution: {{directory: vendor/local-lib, type: directory}}
    version: 1.0.0

  lodash@4.17.21:
    resolution: {{integrity: {_integrity("lodash")}}}

  my-git-dep@{_GIT9}:
    resolution: {{commit: {SHA}, repo: https://github.com/acme/my-git-dep.git, type: git}}
    version: 1.0.0

  qs@6.11.0:
    resolution: {{integrity: {_integrity("qs")}}}

  qs@6.5.3:
    resolution: {{integrity: {_integrity("qs")}}}

  react-dom@18.2.0:
    resolution: {{integrity: {_integrity("react-dom")}}}
    peerDependencies:
      react: ^18.2.0

  react@18.2.0:
    resolution: {{integrity: {_integrity("react")}}}

  scheduler@0.23.0:
    resolution: {{integrity: {_integrity("scheduler")}}}

  undici-types@5.26.5:
    resolution: {{integrity: {_integrity("undici-types")}}}

snapshots:

  '@sindresorhus/is@4.6.0': {{}}

  '@types/node@20.11.5':
    dependencies:
      undici-types: 5.26.5

  body-parser@1.20.1:
    dependencies:
      qs: 6.11.0

  cookie@0.5.0: {{}}

  express@4.18.2:
    dependencies:
      body-parser: 1.20.1
      cookie: 0.5.0

  fsevents@2.3.3:
    optional: true

  left-pad@1.3.0: {{}}

  local-lib@file:vendor/local-lib: {{}}

  lodash@4.17.21: {{}}

  my-git-dep@{_GIT9}: {{}}

  qs@6.11.0: {{}}

  qs@6.5.3: {{}}

  react-dom@18.2.0(react@18.2.0):
    dependencies:
      react: 18.2.0
      scheduler: 0.23.0

  react@18.2.0: {{}}

  scheduler@0.23.0: {{}}

  undici-types@5.26.5: {{}}
"""
)


# -- yarn ------------------------------------------------------------------------------------------


def _classic_block(patterns: str, name: str, version: str, deps: str = "") -> str:
    resolved = f"{_tarball(name, version, YARN)}#0a1b2c3d"
    block = f'{patterns}:\n  version "{version}"\n  resolved "{resolved}"\n'
    block += f"  integrity {_integrity(name)}\n"
    return block + (f"  dependencies:\n{deps}" if deps else "") + "\n"


YARN_CLASSIC = (
    "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n"
    + _classic_block('"@sindresorhus/is@^4.6.0"', "@sindresorhus/is", "4.6.0")
    + _classic_block(
        '"@types/node@*", "@types/node@^20.11.0"',
        "@types/node",
        "20.11.5",
        '    undici-types "~5.26.4"\n',
    )
    + _classic_block("body-parser@1.20.1", "body-parser", "1.20.1", '    qs "6.11.0"\n')
    + _classic_block("cookie@0.5.0", "cookie", "0.5.0")
    + _classic_block(
        "express@^4.18.2", "express", "4.18.2", '    body-parser "1.20.1"\n    cookie "0.5.0"\n'
    )
    + _classic_block("fsevents@~2.3.2", "fsevents", "2.3.3")
    + _classic_block("left-pad@^1.3.0", "left-pad", "1.3.0")
    + '"local-lib@file:vendor/local-lib":\n  version "1.0.0"\n\n'
    + '"my-git-dep@github:acme/my-git-dep#0123abc":\n  version "1.0.0"\n'
    + f'  resolved "https://codeload.github.com/acme/my-git-dep/tar.gz/{SHA}"\n\n'
    + _classic_block('"my-lodash@npm:lodash@^4.17.21"', "lodash", "4.17.21")
    + _classic_block("qs@6.11.0", "qs", "6.11.0")
    + _classic_block("qs@~6.5.2", "qs", "6.5.3")
    + _classic_block("react-dom@^18.2.0", "react-dom", "18.2.0", '    scheduler "^0.23.0"\n')
    + _classic_block("react@^18.2.0", "react", "18.2.0")
    + _classic_block("scheduler@^0.23.0", "scheduler", "0.23.0")
    + _classic_block("undici-types@~5.26.4", "undici-types", "5.26.5")
)


def _berry_entry(key: str, resolution: str, version: str, body: str = "") -> str:
    return (
        f'"{key}":\n  version: {version}\n  resolution: "{resolution}"\n{body}'
        f"  checksum: 10c0/{version.replace('.', '')}aa\n  languageName: node\n  linkType: hard\n\n"
    )


_LOCATOR = "::locator=my-app%40workspace%3A."
_FSEVENTS_PATCH = "patch:fsevents@npm%3A~2.3.2#optional!builtin<compat/fsevents>"
YARN_BERRY = (
    '# This file is generated by running "yarn install" inside your project.\n'
    "# Manual changes might be lost - proceed with caution!\n\n"
    "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n"
    + _berry_entry("@sindresorhus/is@npm:^4.6.0", "@sindresorhus/is@npm:4.6.0", "4.6.0")
    + _berry_entry(
        "@types/node@npm:*, @types/node@npm:^20.11.0",
        "@types/node@npm:20.11.5",
        "20.11.5",
        '  dependencies:\n    undici-types: "npm:~5.26.4"\n',
    )
    + _berry_entry(
        "body-parser@npm:1.20.1",
        "body-parser@npm:1.20.1",
        "1.20.1",
        '  dependencies:\n    qs: "npm:6.11.0"\n',
    )
    + _berry_entry("cookie@npm:0.5.0", "cookie@npm:0.5.0", "0.5.0")
    + _berry_entry(
        "express@npm:^4.18.2",
        "express@npm:4.18.2",
        "4.18.2",
        '  dependencies:\n    body-parser: "npm:1.20.1"\n    cookie: "npm:0.5.0"\n',
    )
    + _berry_entry(
        "fsevents@npm:~2.3.2",
        "fsevents@npm:2.3.3",
        "2.3.3",
        '  dependencies:\n    node-gyp: "npm:latest"\n  conditions: os=darwin\n',
    )
    + f'"fsevents@{_FSEVENTS_PATCH}":\n  version: 2.3.3\n'
    + '  resolution: "fsevents@patch:fsevents@npm%3A2.3.3#optional!builtin<compat/fsevents>'
    + '::version=2.3.3&hash=df0bf1"\n'
    + "  dependencies:\n    node-gyp: npm:latest\n  conditions: os=darwin\n"
    + "  languageName: node\n  linkType: hard\n\n"
    + _berry_entry("left-pad@npm:^1.3.0", "left-pad@npm:1.3.0", "1.3.0")
    + _berry_entry(
        f"local-lib@file:vendor/local-lib{_LOCATOR}",
        "local-lib@file:vendor/local-lib#vendor/local-lib::hash=4a1f0e&locator=my-app%40workspace%3A.",
        "1.0.0",
    )
    + '"my-app@workspace:.":\n  version: 0.0.0-use.local\n  resolution: "my-app@workspace:."\n'
    + "  dependencies:\n"
    + '    "@sindresorhus/is": "npm:^4.6.0"\n    "@types/node": "npm:^20.11.0"\n'
    + '    express: "npm:^4.18.2"\n'
    + '    fsevents: "npm:~2.3.2"\n'
    + '    local-lib: "file:vendor/local-lib"\n'
    + '    my-git-dep: "github:acme/my-git-dep#0123abc"\n'
    + '    my-lodash: "npm:lodash@^4.17.21"\n    qs: "npm:~6.5.2"\n'
    + '    react: "npm:^18.2.0"\n    react-dom: "npm:^18.2.0"\n    ui: "workspace:*"\n'
    + "  dependenciesMeta:\n    fsevents:\n      optional: true\n"
    + "  languageName: unknown\n  linkType: soft\n\n"
    + _berry_entry(
        "my-git-dep@github:acme/my-git-dep#0123abc",
        f"my-git-dep@https://github.com/acme/my-git-dep.git#commit={SHA}",
        "1.0.0",
    )
    + _berry_entry("my-lodash@npm:lodash@^4.17.21", "lodash@npm:4.17.21", "4.17.21")
    + _berry_entry("qs@npm:6.11.0", "qs@npm:6.11.0", "6.11.0")
    + _berry_entry("qs@npm:~6.5.2", "qs@npm:6.5.3", "6.5.3")
    + _berry_entry(
        "react-dom@npm:^18.2.0",
        "react-dom@npm:18.2.0",
        "18.2.0",
        '  dependencies:\n    scheduler: "npm:^0.23.0"\n'
        '  peerDependencies:\n    react: "npm:^18.2.0"\n',
    )
    + _berry_entry("react@npm:^18.2.0", "react@npm:18.2.0", "18.2.0")
    + _berry_entry("scheduler@npm:^0.23.0", "scheduler@npm:0.23.0", "0.23.0")
    + '"ui@workspace:*, ui@workspace:packages/ui":\n  version: 0.0.0-use.local\n'
    + '  resolution: "ui@workspace:packages/ui"\n'
    + '  dependencies:\n    left-pad: "npm:^1.3.0"\n  languageName: unknown\n  linkType: soft\n\n'
    + _berry_entry("undici-types@npm:~5.26.4", "undici-types@npm:5.26.5", "5.26.5")
)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the only line containing `needle`."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines}"
    return lines[0]
