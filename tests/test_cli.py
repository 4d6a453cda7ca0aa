"""The command line: policy check, policy explain, decisions, serve's refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.decisions import DecisionLog, DecisionRecord
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_policy_check_accepts_shipped_and_refuses_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "policy", "check", "default", "strict", "audit")
    assert code == 0
    assert out.count(": ok (") == 3
    bad = tmp_path / "team.yaml"
    bad.write_text("rules:\n  - id: a\n    action: block\n    match:\n      labels: [bad]\n")
    code, out, err = run(capsys, "policy", "check", "default", str(bad))
    assert code == 2
    assert "default" in out
    assert f"{bad}:5: rules[0].match.labels[0]: 'bad' is not one of" in err


def test_policy_explain_walks_the_rules_with_evidence(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.add("fg-mixed", clean("1.0.0"), farm("1.1.0"))
    base = ["policy", "explain", "--upstream", registry.url, "--cache-dir", str(tmp_path)]
    code, out, _ = run(capsys, *base, "fg-mixed@1.1.0")
    assert code == 1  # blocked
    assert "verdict: spam" in out
    assert "tea-yaml (high/high)" in out
    assert "wallets: ['0x723332a6f259f8457e71a346566466036a5eb3c8']" in out
    assert "2. token-farming" in out
    assert "MATCH" in out
    assert "decision: BLOCK by rule 'token-farming'" in out
    code, out, _ = run(capsys, *base, "fg-mixed@1.0.0", "--json")
    assert code == 0
    explained = json.loads(out)
    assert explained["decision"]["action"] == "allow"
    assert [r["matched"] for r in explained["rules"]] == [False] * 5
    code, out, _ = run(capsys, *base, "fg-mixed@1.1.0", "--policy", "audit", "--json")
    assert code == 0  # the audit policy only warns
    assert json.loads(out)["decision"]["action"] == "warn"


def test_decisions_filters_and_exports_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = DecisionLog(tmp_path / "decisions.sqlite3")
    now = time.time()

    def rec(package: str, action: str, intended: str, age: float) -> DecisionRecord:
        return DecisionRecord(
            now - age, package, "1.0.0", action, intended, "token-farming", "spam", 69,
            ("a tea.yaml names a wallet",), "", "tarball", "10.0.0.7", "npm/11.19.1", "",
            "1f", "default", "abc",
        )  # fmt: skip

    log.record(rec("fg-farm", "block", "block", 10))
    log.record(rec("fg-old", "block", "block", 3 * 86400))
    log.record(rec("fg-dry", "monitor", "block", 20))
    log.record(rec("fg-ok", "allow", "allow", 5))
    log.close()
    base = ["decisions", "--cache-dir", str(tmp_path)]
    code, out, _ = run(capsys, *base, "--action", "block", "--since", "1d", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["package"] for r in rows] == ["fg-farm", "fg-dry"]  # newest first; intended too
    assert rows[0]["reasons"] == ["a tea.yaml names a wallet"]
    code, out, _ = run(capsys, *base, "--package", "fg-o*")
    assert "fg-old@1.0.0" in out
    assert "fg-ok@1.0.0" in out
    assert "fg-farm" not in out
    code, _, err = run(capsys, "decisions", "--cache-dir", str(tmp_path / "empty"))
    assert code == 2
    assert "no decision log" in err


def test_serve_refuses_a_malformed_policy_with_file_and_line(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("rules:\n  - id: a\n    action: explode\n")
    code, _, err = run(
        capsys, "serve", "--upstream", registry.url, "--port", "0", "--policy", str(bad),
        "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert code == 2
    assert f"{bad}:3: rules[0].action: 'explode' is not one of" in err


def test_serve_refuses_to_proxy_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve", "--upstream", "http://localhost:4873/", "--port", "4873")
    assert code == 2
    assert "is this Floodgate itself" in err
