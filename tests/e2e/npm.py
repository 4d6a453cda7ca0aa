"""Drive the real npm client and a real `floodgate serve` process in end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

NPM = shutil.which("npm")
needs_npm = pytest.mark.skipif(NPM is None, reason="npm is not installed on this machine")
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/")


@dataclass
class Floodgate:
    """A `floodgate serve` subprocess; its log goes to a file the tests can read."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str, timeout: float = 5.0) -> bool:
        """True once `text` is in the log (access lines are written in batches)."""
        return self.logged_times(text, 1, timeout)

    def logged_times(self, text: str, times: int, timeout: float = 5.0) -> bool:
        """True once `text` is in the log at least `times` times (polled, bounded)."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < times:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


@contextmanager
def floodgate(upstream: str, workdir: Path, *extra: str) -> Iterator[Floodgate]:
    """Run `python -m proxy serve` on a free port in front of `upstream` until the block ends."""
    args = [
        "--upstream", upstream, "--port", "0", "--cache-dir", str(workdir / "floodgate-cache"),
        "--render-workers", "0", *extra,
    ]  # fmt: skip
    with serve(args, workdir / "floodgate.log") as running:
        yield running


@contextmanager
def serve(
    args: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    own_group: bool = False,
) -> Iterator[Floodgate]:
    """`floodgate serve ARGS` as a subprocess, waited for until it listens; stopped (SIGTERM,
    then SIGKILL after 10 s) when the block ends unless the test stopped it already. With
    `own_group` it leads its own process group, as a command in a terminal does (Ctrl-C
    signals the whole group, worker processes included)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    # The OSV feed's default source is on the internet; tests name a local one when they want it.
    env = {"FLOODGATE_OSV_FEED": "off", **env}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0 if own_group else None,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            text = log_path.read_text(errors="replace")
            match = LISTENING.search(text)
            if match and "Application startup complete" in text:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("floodgate did not start:\n" + text)
            time.sleep(0.05)
        yield Floodgate(process, match.group(1), log_path)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def npm(
    args: Sequence[str], cwd: Path, registry: str, cache: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run npm with an isolated cache and config, against `registry` only."""
    assert NPM is not None
    userconfig = cwd / ".test-npmrc"
    userconfig.touch()
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    env.update(
        {
            "npm_config_registry": registry + "/",
            "npm_config_cache": str(cache),
            "npm_config_userconfig": str(userconfig),
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
            "npm_config_fetch_retries": "0",
            "npm_config_progress": "false",
        }
    )
    done = subprocess.run(
        [NPM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"npm {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def write_project(path: Path, dependencies: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "fg-e2e-app", "version": "1.0.0", "private": True}
    (path / "package.json").write_text(json.dumps({**manifest, "dependencies": dependencies}))
    return path


def installed_version(project: Path, name: str) -> str:
    data = json.loads((project / "node_modules" / name / "package.json").read_text())
    return str(data["version"])
