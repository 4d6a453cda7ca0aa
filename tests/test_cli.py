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
    assert "3. token-farming" in out
    assert "MATCH" in out
    assert "decision: BLOCK by rule 'token-farming'" in out
    code, out, _ = run(capsys, *base, "fg-mixed@1.0.0", "--json")
    assert code == 0
    explained = json.loads(out)
    assert explained["decision"]["action"] == "allow"
    assert [r["matched"] for r in explained["rules"]] == [False] * 6
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


def test_decisions_by_group_and_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = DecisionLog(tmp_path / "decisions.sqlite3")

    def rec(package: str, group: str, token: str) -> DecisionRecord:
        return DecisionRecord(
            time.time(), package, "1.0.0", "block", "block", "flagged", "spam", 69, ("spam",),
            "", "tarball", "10.0.0.7", "npm/11.19.1", token, "1f", "strict", "abc", group,
        )  # fmt: skip

    log.record(rec("fg-a", "ci", "runner-7"), rec("fg-b", "developers", "alice"))
    log.record(rec("fg-c", "", ""))
    log.close()
    base = ["decisions", "--cache-dir", str(tmp_path), "--json"]
    _, out, _ = run(capsys, *base, "--group", "ci")
    assert [json.loads(line)["package"] for line in out.splitlines()] == ["fg-a"]
    _, out, _ = run(capsys, *base, "--group", "anonymous")
    assert [json.loads(line)["package"] for line in out.splitlines()] == ["fg-c"]
    _, out, _ = run(capsys, *base, "--token", "alice")
    assert [json.loads(line)["package"] for line in out.splitlines()] == ["fg-b"]
    _, out, _ = run(capsys, "decisions", "--cache-dir", str(tmp_path))
    assert "ci/runner-7" in out
    assert "anonymous" in out


def test_token_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--cache-dir", str(tmp_path)]
    code, out, err = run(capsys, "token", "create", "--group", "ci", "--name", "runner-7", *base)
    assert code == 0
    token = out.strip()
    assert token.startswith("fg_")
    assert "shown once" in err
    code, out, _ = run(capsys, "token", "list", *base)
    assert code == 0
    assert "runner-7" in out
    assert "ci" in out
    assert "never" in out  # not used yet
    assert token not in out
    code, _, err = run(capsys, "token", "create", "--group", "ci", "--name", "runner-7", *base)
    assert code == 2
    assert "exists already" in err
    code, out, _ = run(capsys, "token", "revoke", "runner-7", *base)
    assert code == 0
    assert "revoked token 'runner-7'" in out
    code, _, err = run(capsys, "token", "revoke", "runner-7", *base)
    assert code == 2
    assert "no token named" in err
    code, out, _ = run(capsys, "token", "list", "--json", *base)
    assert out == ""
    assert token not in (tmp_path / "tokens.sqlite3").read_bytes().decode("latin-1")


def test_policy_explain_per_group_and_for_internal_names(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.add("fg-mixed", clean("1.0.0"), farm("1.1.0"))
    registry.add("acme_utils", clean("1.0.0"))
    base = [
        "policy", "explain", "--upstream", registry.url, "--cache-dir", str(tmp_path),
        "--group-policies", "auditors=audit", "--internal-names", "acme-utils", "--json",
    ]  # fmt: skip
    code, out, _ = run(capsys, *base, "fg-mixed@1.1.0")
    assert code == 1
    assert json.loads(out)["decision"]["action"] == "block"
    code, out, _ = run(capsys, *base, "fg-mixed@1.1.0", "--group", "auditors")
    assert code == 0
    assert json.loads(out)["decision"]["action"] == "warn"
    code, out, _ = run(capsys, *base, "acme_utils@1.0.0")
    assert code == 1
    decision = json.loads(out)["decision"]
    assert decision["rule"] == "dependency-confusion"
    assert "imitates the internal package acme-utils" in decision["reason"]
    code, _, err = run(capsys, *base, "acme-utils@1.0.0")
    assert code == 2
    assert "internal package" in err
    assert registry.requests_for("/acme-utils") == []


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
