"""The real npm client → a running `floodgate serve` → a fake upstream on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import publish_basics
from tests.e2e.npm import Floodgate, floodgate, installed_version, needs_npm, npm, write_project
from tests.fakes.registry import FakeRegistry, running_registry

pytestmark = [pytest.mark.e2e, needs_npm]

DEPENDENCIES = {"fg-alpha": "^1.0.0", "@fg-scope/gamma": "1.0.0"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        publish_basics(registry)
        yield registry


@pytest.fixture(scope="module")
def gate(upstream: FakeRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floodgate]:
    with floodgate(upstream.url, tmp_path_factory.mktemp("floodgate")) as running:
        yield running


def test_install_cold_then_warm_then_ci(
    upstream: FakeRegistry, gate: Floodgate, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "app", DEPENDENCIES)
    cache = tmp_path / "npm-cache"
    npm(["install"], project, gate.url, cache)
    assert installed_version(project, "fg-alpha") == "1.1.0"
    assert installed_version(project, "fg-beta") == "2.1.0"
    assert installed_version(project, "@fg-scope/gamma") == "1.0.0"
    lock = json.loads((project / "package-lock.json").read_text())
    resolved = {k: v["resolved"] for k, v in lock["packages"].items() if k}
    assert (
        resolved["node_modules/@fg-scope/gamma"] == f"{gate.url}/@fg-scope/gamma/-/gamma-1.0.0.tgz"
    )
    assert all(url.startswith(gate.url + "/") for url in resolved.values())
    # What npm installed, as the upstream saw it fetched (background prefetches of versions
    # npm does not install may come and go: they wait for a pause in client requests).
    installed = {url.removeprefix(gate.url) for url in resolved.values()}

    def fetched() -> Counter[str]:
        return Counter(s.path for s in upstream.seen if s.path in installed)

    after_cold = fetched()
    assert set(after_cold) == installed
    assert set(after_cold.values()) == {1}

    # Warm: a fresh npm cache and no node_modules; Floodgate serves everything from its cache.
    shutil.rmtree(project / "node_modules")
    (project / "package-lock.json").unlink()
    npm(["install"], project, gate.url, tmp_path / "npm-cache-2")
    assert installed_version(project, "fg-alpha") == "1.1.0"
    assert fetched() == after_cold
    assert gate.logged(" GET /fg-alpha 200 hit ")

    # npm ci from the lockfile it wrote (tarballs only, no packuments).
    shutil.rmtree(project / "node_modules")
    npm(["ci"], project, gate.url, tmp_path / "npm-cache-3")
    assert installed_version(project, "fg-beta") == "2.1.0"
    assert gate.logged("/fg-beta/-/fg-beta-2.1.0.tgz 200 hit")


def test_npm_view(gate: Floodgate, tmp_path: Path) -> None:
    done = npm(["view", "fg-alpha", "dist-tags", "--json"], tmp_path, gate.url, tmp_path / "c")
    assert json.loads(done.stdout) == {"latest": "1.1.0", "next": "2.0.0-beta.1"}
    done = npm(
        ["view", "@fg-scope/gamma", "versions", "--json"], tmp_path, gate.url, tmp_path / "c"
    )
    assert json.loads(done.stdout) == ["1.0.0", "1.0.1"]
    done = npm(
        ["view", "fg-alpha@1.0.0", "dependencies", "--json"], tmp_path, gate.url, tmp_path / "c"
    )
    assert json.loads(done.stdout) == {"fg-beta": "^2.0.0"}


def test_npm_ping(gate: Floodgate, tmp_path: Path) -> None:
    done = npm(["ping"], tmp_path, gate.url, tmp_path / "c")
    assert "PONG" in done.stdout + done.stderr


def test_npm_install_of_a_missing_package_fails_with_404(gate: Floodgate, tmp_path: Path) -> None:
    project = write_project(tmp_path / "app", {"fg-not-there": "^1.0.0"})
    done = npm(["install"], project, gate.url, tmp_path / "c", check=False)
    assert done.returncode != 0
    assert "E404" in done.stderr


def test_npm_publish_is_refused_as_read_only(gate: Floodgate, tmp_path: Path) -> None:
    project = write_project(tmp_path / "pub", {})
    (project / "package.json").write_text(json.dumps({"name": "fg-new", "version": "1.0.0"}))
    (project / ".test-npmrc").write_text(f"//{gate.url.removeprefix('http://')}/:_authToken=t\n")
    done = npm(["publish"], project, gate.url, tmp_path / "c", check=False)
    assert done.returncode != 0
    assert "read-only" in done.stderr


def test_warm_install_survives_an_upstream_outage(tmp_path: Path) -> None:
    with running_registry() as (registry, server):
        publish_basics(registry)
        # A TTL of a millisecond: every packument is expired by the time it is asked for
        # again (a separate process: its clock cannot be moved by the test).
        with floodgate(registry.url, tmp_path, "--packument-ttl", "0.001") as gate:
            project = write_project(tmp_path / "app", DEPENDENCIES)
            npm(["install"], project, gate.url, tmp_path / "npm-cache")
            server.stop()  # the upstream is gone
            shutil.rmtree(project / "node_modules")
            npm(["ci"], project, gate.url, tmp_path / "npm-cache-2")
            assert installed_version(project, "fg-alpha") == "1.1.0"
            (project / "package-lock.json").unlink()
            shutil.rmtree(project / "node_modules")
            npm(["install"], project, gate.url, tmp_path / "npm-cache-3")
            assert installed_version(project, "@fg-scope/gamma") == "1.0.0"
            assert gate.logged(" GET /fg-alpha 200 stale ")
            assert gate.logged("serving stale packument for 'fg-alpha'")
