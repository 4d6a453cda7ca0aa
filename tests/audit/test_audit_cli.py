"""`floodgate audit` against a fake upstream on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.audit_bench import publish_and_lock
from proxy.cli import main
from tests.conftest import ProxyFactory
from tests.fakes.registry import FakeRegistry


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(registry: FakeRegistry, tmp_path: Path) -> Path:
    # aud-0000 .. aud-0014, a binary tree; the last one, four levels down, is token farming.
    publish_and_lock(registry, 15, tmp_path / "app")
    return tmp_path / "app"


def test_audit_finds_the_deep_package_and_shows_its_path(
    registry: FakeRegistry, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["audit", str(project), "--upstream", registry.url, "--cache-dir", str(tmp_path / "c")]
    code, out, err = run(capsys, *base)
    assert code == 1  # something is blocked
    assert "aud-0014" in out
    assert "audit-bench > aud-0000 > aud-0002 >" in out  # the path that brings it in (wrapped)
    assert "aud-0006 > aud-0014" in out
    assert "block" in out
    assert "tea.xyz" in out
    assert "audited 15/15" in err

    sbom = tmp_path / "bom.json"
    code, out, _ = run(capsys, *base, "--format", "json", "--sbom", str(sbom))
    assert code == 1
    report = json.loads(out)
    flagged = [p for p in report["packages"] if p["action"] == "block"]
    assert [(p["name"], p["rule"]) for p in flagged] == [("aud-0014", "token-farming")]
    assert flagged[0]["path"] == ["audit-bench", "aud-0000", "aud-0002", "aud-0006", "aud-0014"]
    assert len(report["packages"]) == 15
    components = json.loads(sbom.read_text())["components"]
    assert len(components) == 15

    code, out, _ = run(capsys, *base, "--format", "sarif")
    results = json.loads(out)["runs"][0]["results"]
    # (ancestors of aud-0014 may also be warned: depending on a spam package is a signal, and
    # whether it fires depends on which package the concurrent audit assessed first)
    blocked = [r for r in results if r["ruleId"] == "policy/token-farming"]
    assert len(blocked) == 1
    assert {r["ruleId"] for r in results} <= {"policy/token-farming", "policy/weak-signals"}
    location = blocked[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "package-lock.json"
    assert location["region"]["startLine"] > 1


def test_a_second_audit_reuses_the_stored_verdicts(
    registry: FakeRegistry, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["audit", str(project), "--upstream", registry.url, "--cache-dir", str(tmp_path / "c")]
    assert run(capsys, *base)[0] == 1
    tarballs = len([s for s in registry.seen if s.path.endswith(".tgz")])
    assert tarballs == 15
    assert run(capsys, *base)[0] == 1
    assert len([s for s in registry.seen if s.path.endswith(".tgz")]) == tarballs


def test_audit_with_a_policy_that_only_warns_passes(
    registry: FakeRegistry, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "audit", str(project), "--upstream", registry.url,
        "--cache-dir", str(tmp_path / "c"), "--policy", "audit",
    )  # fmt: skip
    assert code == 0
    assert "aud-0014" in out


def test_audit_cannot_reach_the_upstream(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "audit", str(project), "--upstream", "http://127.0.0.1:9",
        "--cache-dir", str(tmp_path / "c"), "--connect-timeout", "0.5",
    )  # fmt: skip
    assert code == 2
    assert "could not be reached" in err


def test_audit_of_a_malformed_lockfile_names_the_file_and_spot(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "package-lock.json").write_text('{\n  "lockfileVersion": 3,\n  "packages": {\n')
    code, _, err = run(capsys, "audit", str(tmp_path), "--upstream", registry.url)
    assert code == 2
    assert "package-lock.json:4" in err
    code, _, err = run(capsys, "audit", str(tmp_path / "nowhere"), "--upstream", registry.url)
    assert code == 2
    assert "nowhere: no such file or directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "audit", str(tmp_path / "empty"), "--upstream", registry.url)
    assert code == 2
    assert "package-lock.json" in err


def test_audit_through_a_running_floodgate_reports_its_blocks(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The local policy only warns: the block can only come from the Floodgate audited through,
    # which keeps the blocked version in its packument and lists it under policyRestrictions.
    proxy = make_proxy()
    base = ["audit", str(project), "--upstream", proxy.url, "--cache-dir", str(tmp_path / "c")]
    code, out, _ = run(capsys, *base, "--policy", "audit", "--format", "json")
    assert code == 1
    flagged = [p for p in json.loads(out)["packages"] if p["action"] == "block"]
    assert [(p["name"], p["rule"]) for p in flagged] == [("aud-0014", "registry")]


def test_audit_never_fetches_internal_names_and_flags_their_twins(
    registry: FakeRegistry, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["audit", str(project), "--upstream", registry.url, "--cache-dir", str(tmp_path / "c")]
    # aud-0003 is the organization's own; the public aud-0002 is a twin of the internal aud0002.
    internal = ["--internal-names", "aud-0003,aud0002", "--format", "json"]
    code, out, _ = run(capsys, *base, *internal)
    assert code == 1
    report = {p["name"]: p for p in json.loads(out)["packages"]}
    assert "internal package" in report["aud-0003"]["error"]
    assert registry.requests_for("/aud-0003") == []
    assert (report["aud-0002"]["action"], report["aud-0002"]["rule"]) == (
        "block",
        "dependency-confusion",
    )
    assert report["aud-0014"]["action"] == "block"
