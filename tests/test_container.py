"""The container image, built from the Dockerfile and run with podman, as a user would.

Opt-in (FLOODGATE_CONTAINER_TEST=1): building the image takes minutes and needs podman and a
base image, so neither the normal run nor CI does it. Extra `podman build` arguments come from
FLOODGATE_CONTAINER_BUILD_ARGS (shell words), e.g. `--pull=never --network host --build-arg
PIP_INDEX_URL=...` where the base image is local and pip needs another index; nothing here names
an index. The containers use the host's network, so they reach the fake upstream on 127.0.0.1.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import proxy
from tests.conftest import publish_basics
from tests.e2e.npm import NPM, installed_version, npm, write_project
from tests.fakes.registry import FakeRegistry, running_registry

if os.environ.get("FLOODGATE_CONTAINER_TEST") != "1":
    pytest.skip(
        "container image test is opt-in (set FLOODGATE_CONTAINER_TEST=1): it builds the image "
        "with podman, which takes minutes",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent
PODMAN = shutil.which("podman")
CACHE = "/var/cache/floodgate"
IMAGE_UID = "10001"


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run podman; with `check`, a non-zero exit fails the test showing podman's output."""
    assert PODMAN is not None
    done = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    assert PODMAN is not None, "FLOODGATE_CONTAINER_TEST=1 but podman is not on PATH"
    tag = f"localhost/floodgate-test:{uuid.uuid4().hex[:12]}"
    extra = shlex.split(os.environ.get("FLOODGATE_CONTAINER_BUILD_ARGS", ""))
    # --format docker: the OCI format has no HEALTHCHECK, podman would drop it.
    podman("build", "--format", "docker", *extra, "-t", tag, str(ROOT), timeout=1800)
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@dataclass
class Container:
    name: str
    url: str

    def logs(self) -> str:
        done = podman("logs", self.name)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout.strip()


@contextmanager
def running(image: str, upstream: str, volume: str) -> Iterator[Container]:
    """`podman run -d` the image in front of `upstream`, waited for until /-/ping answers;
    removed when the block ends."""
    name = f"floodgate-test-{uuid.uuid4().hex[:12]}"
    try:
        yield start(image, upstream, volume, name)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def start(image: str, upstream: str, volume: str, name: str) -> Container:
    port = free_port()
    podman(
        "run", "-d", "--name", name, "--network", "host",
        "-e", f"FLOODGATE_UPSTREAM={upstream}", "-e", f"FLOODGATE_PORT={port}",
        "-e", "FLOODGATE_OSV_FEED=off",  # the feed's default source is on the internet
        "-v", f"{volume}:{CACHE}", image,
    )  # fmt: skip
    container = Container(name, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(container.url + "/-/ping", timeout=5).status_code == 200:
                return container
        except httpx.TransportError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running" or time.monotonic() > deadline:
            raise AssertionError(f"container {state}, not answering:\n{container.logs()}")
        time.sleep(0.1)


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"floodgate-test-{uuid.uuid4().hex[:12]}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "--force", name, check=False)


@pytest.fixture
def run(image: str, volume: str) -> Iterator[tuple[Container, FakeRegistry]]:
    """The image running in front of a fake upstream with a few packages."""
    with running_registry() as (registry, _server):
        publish_basics(registry)
        with running(image, registry.url, volume) as container:
            yield container, registry


def test_it_serves_ping_ready_and_a_healthy_healthcheck(
    run: tuple[Container, FakeRegistry],
) -> None:
    container, registry = run
    assert httpx.get(container.url + "/-/ping", timeout=10).json() == {}
    ready = httpx.get(container.url + "/-/ready", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "upstream": registry.url}
    # The port is not the default 4873: the healthcheck follows FLOODGATE_PORT.
    health = podman("healthcheck", "run", container.name, check=False)
    assert health.returncode == 0, container.logs()


def test_the_healthcheck_fails_while_the_upstream_is_unreachable(image: str, volume: str) -> None:
    with running(image, f"http://127.0.0.1:{free_port()}", volume) as container:
        assert httpx.get(container.url + "/-/ready", timeout=10).status_code == 503
        assert podman("healthcheck", "run", container.name, check=False).returncode == 1


def test_it_runs_as_the_non_root_user_with_the_shipped_policy(
    run: tuple[Container, FakeRegistry],
) -> None:
    container, _registry = run
    assert container.exec("stat", "-c", "%u", "/proc/1") == IMAGE_UID  # the server, PID 1
    assert container.exec("id", "-u") == IMAGE_UID
    assert "/proxy/_policies/default.yaml" in container.logs()


@pytest.mark.skipif(NPM is None, reason="npm is not installed on this machine")
def test_npm_installs_through_the_container_into_a_writable_cache_volume(
    run: tuple[Container, FakeRegistry], tmp_path: Path
) -> None:
    container, registry = run
    project = write_project(tmp_path / "app", {"fg-alpha": "^1.0.0"})
    npm(["install"], project, container.url, tmp_path / "npm-cache")
    assert installed_version(project, "fg-alpha") == "1.1.0"
    assert installed_version(project, "@fg-scope/gamma") == "1.0.1"
    assert registry.requests_for("/fg-alpha")  # the container reached the host's loopback
    assert (
        container.url + "/fg-alpha/-/fg-alpha-1.1.0.tgz"
        in (project / "package-lock.json").read_text()
    )
    tarballs = container.exec("find", CACHE + "/tarballs", "-type", "f").splitlines()
    assert len(tarballs) >= 3
    assert container.exec("stat", "-c", "%u", CACHE, *tarballs) == "\n".join(
        [IMAGE_UID] * (1 + len(tarballs))
    )


def test_sigterm_stops_it_cleanly_with_exit_0(run: tuple[Container, FakeRegistry]) -> None:
    container, _registry = run
    podman("kill", "--signal", "TERM", container.name)
    assert podman("wait", container.name, timeout=60).stdout.strip() == "0"
    logs = container.logs()
    assert "Floodgate stopped" in logs
    assert "Traceback" not in logs


def test_words_after_the_image_name_are_floodgate_arguments(image: str) -> None:
    help_text = podman("run", "--rm", image, "--help").stdout
    assert help_text.startswith("usage: floodgate ")
    assert "serve" in help_text
    version = podman("run", "--rm", image, "--version").stdout.strip()
    assert version == f"floodgate {proxy.__version__}"


def test_the_image_ships_the_three_policies(image: str) -> None:
    done = podman("run", "--rm", image, "policy", "check", "default", "strict", "audit")
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    for name, line in zip(("default", "strict", "audit"), lines, strict=True):
        assert f"/proxy/_policies/{name}.yaml: ok ({name}," in line


def test_the_cache_volume_is_writable_for_another_uid_in_group_0(image: str, volume: str) -> None:
    """As OpenShift runs images: an arbitrary UID with GID 0 (the cache folder is g=u)."""
    done = podman(
        "run", "--rm", "--user", "12345:0", "--network", "none", "-v", f"{volume}:{CACHE}",
        "-e", f"FLOODGATE_UPSTREAM=http://127.0.0.1:{free_port()}", "-e", "FLOODGATE_OSV_FEED=off",
        image, "doctor",
        check=False,
    )  # fmt: skip
    assert f"ok       cache     {CACHE} writable" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 1  # the upstream does not answer: the one problem
