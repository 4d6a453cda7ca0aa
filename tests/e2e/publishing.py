"""Publishing with the real clients: a package folder set up the way each client's users set
up theirs, with the client's own token configuration.

    npm, pnpm, yarn 1  `//host:port/:_authToken=<token>` in the user's .npmrc (pnpm 9 publishes
                       by running npm, which reads the same file; yarn 1 sends it for unscoped
                       packages only with `always-auth=true`)
    yarn 4             `npmAuthToken` and `npmAlwaysAuth` in the project's .yarnrc.yml (its
                       registry is `npmRegistryServer`, which `yarn npm publish` also uses)
    bun                `[install] registry = { url, token }` in the project's bunfig.toml
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.clients import Client, Run, Sandbox, sandbox

PUBLISH = {
    "npm": ("publish",),
    "pnpm": ("publish", "--no-git-checks"),  # the package folder is no git checkout
    "yarn4": ("npm", "publish"),
    "bun": ("publish",),
}
PUBLISHED = {  # what each client prints once the registry took the package
    "npm": "+ {name}@{version}",
    "pnpm": "+ {name}@{version}",
    "yarn4": "Package archive published",
    "bun": "+ {name}@{version}",
}


def with_token(box: Sandbox, token: str | None) -> Sandbox:
    """Configure `token` for the registry the way the client's users do."""
    if token is None:
        return box
    name = box.client.name
    if name == "yarn4":
        with (box.project / ".yarnrc.yml").open("a") as yarnrc:
            # yarn 4 sends a token to installs only with npmAlwaysAuth.
            yarnrc.write(f'npmAuthToken: "{token}"\nnpmAlwaysAuth: true\n')
    elif name == "bun":
        registry = box.registry + "/"
        (box.project / "bunfig.toml").write_text(
            f'[install]\nregistry = {{ url = "{registry}", token = "{token}" }}\n'
            f'[install.cache]\ndir = "{box.home / "bun-cache"}"\n'
        )
    else:
        line = f"//{urlsplit(box.registry).netloc}/:_authToken={token}\n"
        if name == "yarn1":  # yarn 1 sends it for unscoped packages only with always-auth
            line += "always-auth=true\n"
        with (box.home / ".npmrc").open("a") as npmrc:
            npmrc.write(line)
    return box


def consumer(
    client: Client,
    folder: Path,
    registry: str,
    token: str | None,
    deps: dict[str, str],
    fresh_scope: str | None = None,
) -> Sandbox:
    """A fresh project depending on `deps`, with its own home, cache and token.

    yarn 4 (since 4.10) installs no version younger than a day (`npmMinimalAgeGate`, "All
    versions satisfying ... are quarantined"), which is every version just published: its
    users lift that gate for their internal scope, `fresh_scope`, as done here."""
    box = with_token(sandbox(client, folder, registry, deps), token)
    if client.name == "yarn4" and fresh_scope is not None:
        # A scope's block replaces the registry settings for it: without its own
        # npmRegistryServer yarn would send the scope's requests to its default public registry.
        block = f'npmRegistryServer: "{registry}"\nnpmMinimalAgeGate: 0\n'
        if token is not None:
            block += f'npmAuthToken: "{token}"\nnpmAlwaysAuth: true\n'
        indented = "".join(f"    {line}\n" for line in block.splitlines())
        with (box.project / ".yarnrc.yml").open("a") as yarnrc:
            yarnrc.write(f"npmScopes:\n  {fresh_scope.lstrip('@')}:\n{indented}")
    return box


def package(
    client: Client,
    folder: Path,
    registry: str,
    token: str | None,
    manifest: Mapping[str, object],
    files: Mapping[str, bytes],
) -> Sandbox:
    """A package folder ready for the client's publish command: `manifest` (name, version,
    ...) with `files` beside it. Only those files are packed (`files` in the manifest), not the
    client's configuration."""
    box = sandbox(client, folder, registry, {})
    full = {"main": "index.js", "license": "MIT", "files": sorted(files), **manifest}
    (box.project / "package.json").write_text(json.dumps(full, indent=2))
    for path, data in files.items():
        (box.project / path).write_bytes(data)
    return with_token(box, token)


def publish(box: Sandbox, *extra: str) -> Run:
    """The client's publish command in the package folder (not checked: callers assert)."""
    if box.client.name == "yarn4":
        # `yarn npm publish` packs the workspace, which must be in the lockfile first.
        box.run(["install"])
    return box.run([*PUBLISH[box.client.name], *extra], check=False)


def published(box: Sandbox, run: Run, name: str, version: str) -> bool:
    """True when the client says it published `name@version`."""
    marker = PUBLISHED[box.client.name].format(name=name, version=version)
    return run.returncode == 0 and marker in run.output


def frozen_install(box: Sandbox, token: str) -> Run:
    """Install from the lockfile alone with an empty client cache, the token kept (a fresh
    home loses the .npmrc line of npm, pnpm and yarn 1)."""
    shutil.rmtree(box.project / "node_modules", ignore_errors=True)
    box.fresh_cache()
    if box.client.name not in ("yarn4", "bun"):  # theirs is in the project
        with_token(box, token)
    return box.run(box.client.frozen)
