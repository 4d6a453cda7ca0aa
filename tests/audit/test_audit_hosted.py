"""`floodgate audit` over a lockfile that locks a package Floodgate hosts: it is audited like
every other (its packument and tarball read through the same pipeline), never skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.cli import main
from tests.conftest import ProxyFactory, RunningProxy
from tests.dashboard.identity import make_tokens
from tests.fakes.packages import clean
from tests.fakes.publish import path_of, publish
from tests.fakes.registry import FakeRegistry
from tests.hosted.activity import UTILS_JS, bearer


def lock_project(project: Path, locked: dict[str, dict[str, str]]) -> Path:
    deps = {name: f"^{entry['version']}" for name, entry in locked.items()}
    lock = {
        "name": "app",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {
            "": {"name": "app", "version": "1.0.0", "dependencies": deps},
            **{f"node_modules/{name}": entry for name, entry in locked.items()},
        },
    }
    project.mkdir(parents=True, exist_ok=True)
    (project / "package.json").write_text(json.dumps({"name": "app", "dependencies": deps}))
    (project / "package-lock.json").write_text(json.dumps(lock, indent=2))
    return project


@pytest.fixture
def hosting(
    registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> tuple[RunningProxy, str, Path]:
    """A Floodgate hosting @acme/utils@1.0.0, and a project locking it beside a public package."""
    registry.add("fg-clean", clean("1.0.0"))
    root = make_tokens(tmp_path / "cache", ("admin/root",))["admin/root"]
    proxy = make_proxy(internal_scopes="@acme", prefetch_scans=0)
    assert publish(proxy.client, root, "@acme/utils", "1.0.0", code=UTILS_JS).status_code == 201
    doc = proxy.client.get(path_of("@acme/utils"), headers=bearer(root)).json()
    dist = doc["versions"]["1.0.0"]["dist"]
    public = registry.packuments["fg-clean"]["versions"]["1.0.0"]["dist"]
    project = lock_project(
        tmp_path / "app",
        {
            "@acme/utils": {
                "version": "1.0.0",
                "resolved": dist["tarball"],
                "integrity": dist["integrity"],
            },
            "fg-clean": {
                "version": "1.0.0",
                "resolved": public["tarball"],
                "integrity": public["integrity"],
            },
        },
    )
    return proxy, root, project


def audited(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, object]]:
    code = main(["audit", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return {p["name"]: p for p in json.loads(out)["packages"]}


def test_audit_through_floodgate_reads_the_hosted_package(
    hosting: tuple[RunningProxy, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, root, project = hosting
    found = audited(
        capsys,
        str(project),
        "--upstream",
        proxy.url,
        "--upstream-token",
        root,
        "--cache-dir",
        str(tmp_path / "auditor"),
    )
    utils = found["@acme/utils"]
    assert utils["error"] is None
    assert utils["action"] == "allow"
    assert utils["label"] == "clean"
    assert found["fg-clean"]["action"] == "allow"


def test_audit_beside_floodgate_reads_the_hosted_store(
    registry: FakeRegistry,
    hosting: tuple[RunningProxy, str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With Floodgate's settings (its cache folder, its internal scopes): the internal name is
    never asked of the upstream, and is read from the packages Floodgate hosts instead."""
    _proxy, _root, project = hosting
    registry.seen.clear()
    found = audited(
        capsys,
        str(project),
        "--upstream",
        registry.url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--internal-scopes",
        "@acme",
    )
    utils = found["@acme/utils"]
    assert utils["error"] is None, utils
    assert utils["action"] == "allow"
    assert utils["label"] == "clean"
    assert found["fg-clean"]["action"] == "allow"
    assert [s.path for s in registry.seen if "acme" in s.path] == []
