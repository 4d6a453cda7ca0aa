"""The npm clients the end-to-end tests drive: npm, pnpm 9, yarn 1, yarn 4 (berry) and bun.

npm comes with the machine; the others are installed by `.ci/run` into `.ci/clients/` (exact
versions, from the npm registry). A test for a client that is not there is skipped and says
why, except in CI (env CI=true), where it fails: the suite must run there.

Every run gets its own HOME, cache, store and config in the test's folder, and the only registry
it knows is the Floodgate under test on 127.0.0.1 (proxy variables are cleared).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS_DIR = Path(os.environ.get("FLOODGATE_TEST_CLIENTS", ROOT / ".ci" / "clients"))
MODULES = CLIENTS_DIR / "node_modules"
NODE = shutil.which("node")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TIMEOUT = 180  # seconds one client command may take

# Variables that would make a client read the developer's config or talk to another host.
_DROPPED = re.compile(
    r"^(npm_config_|yarn_|pnpm_|bun_|berry_|corepack_|https?_proxy|all_proxy)", re.I
)


@dataclass(frozen=True)
class Client:
    """One client: how to run it, how to point it at a registry, its lockfile and commands."""

    name: str
    argv: tuple[str, ...]  # empty when the client is not installed
    lockfile: str
    install: tuple[str, ...]
    frozen: tuple[str, ...]  # install exactly the lockfile, failing if it would change

    @property
    def missing(self) -> str:
        """Why this client cannot run here ("" when it can)."""
        if self.argv:
            return ""
        if self.name == "npm":
            return "npm is not installed on this machine"
        return f"{self.name} is not installed in {CLIENTS_DIR} (bash .ci/run installs it)"

    def require(self) -> None:
        """Skip (fail in CI) when the client is not installed."""
        if not self.missing:
            return
        if IN_CI:
            pytest.fail(f"{self.missing}; in CI every client must run")
        pytest.skip(self.missing)


def _js(path: Path) -> tuple[str, ...]:
    return (NODE, str(path)) if NODE is not None and path.is_file() else ()


def _native(path: Path) -> tuple[str, ...]:
    return (str(path),) if path.is_file() and os.access(path, os.X_OK) else ()


_npm = shutil.which("npm")
CLIENTS = {
    c.name: c
    for c in (
        Client("npm", (_npm,) if _npm else (), "package-lock.json", ("install",), ("ci",)),
        Client(
            "pnpm",
            _js(MODULES / "pnpm" / "bin" / "pnpm.cjs"),
            "pnpm-lock.yaml",
            ("install",),
            ("install", "--frozen-lockfile"),
        ),
        Client(
            "yarn1",
            _js(MODULES / "yarn" / "bin" / "yarn.js"),
            "yarn.lock",
            ("install", "--non-interactive", "--no-progress"),
            ("install", "--frozen-lockfile", "--non-interactive", "--no-progress"),
        ),
        Client(
            "yarn4",
            _js(MODULES / "@yarnpkg" / "cli-dist" / "bin" / "yarn.js"),
            "yarn.lock",
            ("install", "--no-immutable"),
            ("install", "--immutable"),
        ),
        Client(
            "bun",
            _native(MODULES / "bun" / "bin" / "bun.exe"),
            "bun.lock",
            ("install", "--no-progress"),
            ("install", "--frozen-lockfile", "--no-progress"),
        ),
    )
}


@dataclass
class Run:
    """A finished client command; `output` is stdout and stderr together."""

    returncode: int
    output: str


@dataclass
class Sandbox:
    """A project folder and a private home for one client against one registry."""

    client: Client
    project: Path
    home: Path
    registry: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _DROPPED.match(k)}
        home = self.home
        env.update(
            {
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "XDG_STATE_HOME": str(home / ".local" / "state"),
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "NO_COLOR": "1",
                "FORCE_COLOR": "0",
                "DO_NOT_TRACK": "1",
                "npm_config_userconfig": str(home / ".npmrc"),
                "npm_config_cache": str(home / "npm-cache"),
                "YARN_CACHE_FOLDER": str(home / "yarn1-cache"),
                "YARN_GLOBAL_FOLDER": str(home / "yarn-berry"),
                "YARN_ENABLE_TELEMETRY": "0",
                "BUN_INSTALL_CACHE_DIR": str(home / "bun-cache"),
                "BUN_INSTALL": str(home / ".bun"),
            }
        )
        return env

    def fresh_cache(self) -> None:
        """A new home: no client cache, store or metadata from earlier runs."""
        shutil.rmtree(self.home)
        self._write_home()

    def _write_home(self) -> None:
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        registry = self.registry + "/"
        # npm and pnpm read ~/.npmrc (npm_config_userconfig points there too).
        npmrc = (
            f"registry={registry}\n"
            "fetch-retries=0\naudit=false\nfund=false\nupdate-notifier=false\nprogress=false\n"
        )
        if self.client.name == "pnpm":
            npmrc += (
                f"store-dir={home / 'pnpm-store'}\ncache-dir={home / 'pnpm-cache'}\n"
                f"state-dir={home / 'pnpm-state'}\n"
            )
        (home / ".npmrc").write_text(npmrc)
        (home / ".yarnrc").write_text(
            f'registry "{registry}"\ndisable-self-update-check true\n'
            f'cache-folder "{home / "yarn1-cache"}"\n'
        )

    def write(self, dependencies: dict[str, str]) -> None:
        """The project's package.json and the per-project config the client reads."""
        self.project.mkdir(parents=True, exist_ok=True)
        manifest = {"name": "fg-e2e-app", "version": "1.0.0", "private": True}
        (self.project / "package.json").write_text(
            json.dumps({**manifest, "dependencies": dependencies})
        )
        registry = self.registry + "/"
        if self.client.name == "yarn4":
            (self.project / ".yarnrc.yml").write_text(
                f'npmRegistryServer: "{self.registry}"\n'
                'unsafeHttpWhitelist: ["127.0.0.1"]\n'
                "nodeLinker: node-modules\n"
                "enableGlobalCache: false\n"
                f'cacheFolder: "{self.home / "yarn4-cache"}"\n'
                "enableTelemetry: false\n"
                "enableImmutableInstalls: false\n"
                "httpRetry: 0\n"
                "enableProgressBars: false\n"
            )
            (self.project / "yarn.lock").touch()  # marks the project root
        if self.client.name == "bun":
            (self.project / "bunfig.toml").write_text(
                f'[install]\nregistry = "{registry}"\n'
                f'[install.cache]\ndir = "{self.home / "bun-cache"}"\n'
            )

    def run(self, args: Sequence[str], check: bool = True) -> Run:
        """Run the client in the project; with `check`, a failure raises with its output."""
        argv = [*self.client.argv, *args]
        done = subprocess.run(
            argv,
            cwd=self.project,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        result = Run(done.returncode, done.stdout + done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{self.client.name} {' '.join(args)} failed ({done.returncode}):\n{result.output}"
            )
        return result

    def install(self, check: bool = True) -> Run:
        return self.run(self.client.install, check)

    def frozen_install(self, check: bool = True) -> Run:
        """Install from the lockfile alone: no node_modules, a fresh client cache."""
        shutil.rmtree(self.project / "node_modules", ignore_errors=True)
        self.fresh_cache()
        return self.run(self.client.frozen, check)

    def installed(self, name: str) -> str | None:
        """The version of `name` in node_modules (a direct dependency), or None."""
        path = self.project / "node_modules" / name / "package.json"
        if not path.exists():
            return None
        return str(json.loads(path.read_text())["version"])


def sandbox(client: Client, folder: Path, registry: str, dependencies: dict[str, str]) -> Sandbox:
    """A fresh project with `dependencies` and a private home for `client`."""
    client.require()
    box = Sandbox(client, folder / "app", folder / "home", registry)
    box._write_home()
    box.write(dependencies)
    return box


def slug(text: str) -> str:
    """Lowercase words joined by "-": compares a reason with what a client printed, whether
    as text, in a URL's path, or wrapped across lines."""
    return re.sub(r"[^a-z0-9@.]+", "-", text.lower()).strip("-")


def heard(output: str, text: str) -> bool:
    """True when `text` reached the user in `output`, as words or as a blocked URL's slug."""
    return slug(text) in slug(output)
