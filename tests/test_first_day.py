"""A new user's first day: help with defaults, one flag per idea, `policy check` warnings,
`floodgate why`, an aligned decisions table, `/-/ready`, and a cache that fails while serving."""

from __future__ import annotations

import dataclasses
import shutil
import socket
from datetime import date, timedelta
from pathlib import Path

import pytest

from proxy.cli import build_parser, decision_table, main
from proxy.decisions import DecisionLog, DecisionRecord
from tests.conftest import ProxyFactory
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped


# -- help and flags ---------------------------------------------------------------------------


def test_serve_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "serve")
    for shown in (
        "--port PORT port to listen on (0 picks a free one) (default: 4873)",
        "--host ADDR address to listen on (default: 127.0.0.1)",
        "--packument-ttl TTL seconds a cached packument is served before it is revalidated "
        "upstream (default: 300)",
        "--scan-timeout TIMEOUT",
        "(default: 10)",
        "--forward-auth, --no-forward-auth",
        "(default: off)",
        "--enforce, --no-enforce run the detector and the policy (--no-enforce serves "
        "everything unchecked) (default: on)",
        "--osv-feed FEED",
        "(default: none)",
        "--upstream URL registry to proxy (default: the registry npm is configured with",
    ):
        assert shown in text


def test_other_commands_show_their_defaults_too(capsys: pytest.CaptureFixture[str]) -> None:
    audit = help_text(capsys, "audit")
    assert "--concurrency CONCURRENCY packages audited at once (default: 16)" in audit
    assert "output format (default: table)" in audit
    assert "--policy POLICY policy file, or a shipped policy: default, strict, audit " in audit
    decisions = help_text(capsys, "decisions")
    assert "at most this many, 0 for all (default: 100)" in decisions


def test_one_flag_per_idea_old_spellings_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    scan = help_text(capsys, "scan")
    assert "--osv-feed" in scan
    assert "--osv " not in scan
    assert "--osv," not in scan
    audit = help_text(capsys, "audit")
    assert "--upstream URL" in audit
    assert "--registry" not in audit
    parser = build_parser()
    assert parser.parse_args(["scan", "--osv", "feed.zip", "x"]).osv_feed == "feed.zip"
    old = parser.parse_args(["audit", "--registry", "http://127.0.0.1:4873/"])
    assert old.upstream == "http://127.0.0.1:4873/"


# -- policy check -----------------------------------------------------------------------------


def test_policy_check_warns_about_an_expired_waiver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expired = (date.today() - timedelta(days=1)).isoformat()
    path = tmp_path / "team.yaml"
    path.write_text(
        "rules:\n  - id: m\n    match: {labels: [malicious]}\n    action: block\n"
        "waivers:\n  - package: fg-old@1.0.0\n    reason: vetted\n"
        f"    owner: sec@example.invalid\n    expires: {expired}\n"
    )
    code, out, err = run(capsys, "policy", "check", str(path))
    assert code == 0  # valid, but probably not what is meant
    assert ": ok (" in out
    assert (
        f"warning: {path}: waiver for fg-old@1.0.0 (owner sec@example.invalid) expired on " in err
    )


def test_policy_check_refuses_a_rule_without_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("rules:\n  - id: oops\n    action: block\n")
    code, out, err = run(capsys, "policy", "check", str(path))
    assert code == 2
    assert out == ""
    assert f"{path}:2: rules[0]: a rule needs 'match'" in err


# -- floodgate why and the decisions table ----------------------------------------------------


def record(package: str, version: str, action: str, rule: str, *reasons: str) -> DecisionRecord:
    return DecisionRecord(
        time=1_780_000_000.0, package=package, version=version, action=action, intended=action,
        rule=rule, label="spam" if action != "allow" else "clean", score=80, reasons=reasons,
        waiver="", via="tarball", client="127.0.0.1", user_agent="pnpm/9.15.9", token="",
        request_id="1", policy="default", policy_digest="abc",
    )  # fmt: skip


FARM_REASON = "the package ships a tea.xyz registration file (tea.yaml)"


def write_log(folder: Path, *records: DecisionRecord) -> None:
    log = DecisionLog(folder / "decisions.sqlite3")
    for r in records:
        log.record(r)
    log.close()


def test_why_explains_the_latest_decision_with_every_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(
        tmp_path,
        record("fg-farm", "1.0.0", "block", "token-farming", FARM_REASON, "hello-world code"),
        record("fg-ok", "1.0.0", "allow", ""),
        record("fg-hello", "1.0.0", "warn", "weak-signals", "only prints a greeting"),
    )
    code, out, _ = run(capsys, "why", "fg-farm@1.0.0", "--cache-dir", str(tmp_path))
    assert code == 1
    assert "fg-farm@1.0.0: blocked by rule 'token-farming' of policy 'default'" in out
    assert f"  - {FARM_REASON}\n  - hello-world code" in out
    code, out, _ = run(capsys, "why", "fg-hello", "--cache-dir", str(tmp_path))
    assert code == 0
    assert "fg-hello@1.0.0: warned about by rule 'weak-signals'" in out


def test_why_for_one_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ci = dataclasses.replace(
        record("fg-farm", "1.0.0", "block", "flagged", FARM_REASON),
        group="ci",
        token="runner-7",
        policy="strict",
    )
    developers = dataclasses.replace(
        record("fg-farm", "1.0.0", "warn", "spam-is-a-warning", FARM_REASON),
        time=1_780_000_100.0,
        group="developers",
        token="alice",
    )
    write_log(tmp_path, ci, developers)
    code, out, _ = run(capsys, "why", "fg-farm@1.0.0", "--cache-dir", str(tmp_path))
    assert code == 0  # the latest decision: a warning for developers
    assert "token developers/alice" in out
    base = ["why", "fg-farm@1.0.0", "--cache-dir", str(tmp_path), "--group", "ci"]
    code, out, _ = run(capsys, *base)
    assert code == 1
    assert "blocked by rule 'flagged' of policy 'strict'" in out
    assert "token ci/runner-7" in out


def test_why_asks_the_policy_when_the_log_has_nothing(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.add("fg-mixed", clean("1.0.0"), farm("1.1.0"))
    base = ["why", "--upstream", registry.url, "--cache-dir", str(tmp_path)]
    code, out, err = run(capsys, *base, "fg-mixed@1.1.0")
    assert code == 1
    assert "no decision on fg-mixed@1.1.0 in the log" in err
    assert "decision: BLOCK by rule 'token-farming'" in out  # as `policy explain` says it


def test_decisions_table_columns_line_up() -> None:
    rows = [
        record("fg-a", "1.0.0", "block", "token-farming", FARM_REASON),
        record("@scope/a-much-longer-name", "10.20.30-beta.1", "warn", "weak", "greeting"),
    ]
    lines = decision_table(rows)
    header = lines[0]
    assert header.split() == [
        "TIME",
        "ACTION",
        "PACKAGE",
        "RULE",
        "LABEL",
        "VIA",
        "CLIENT",
        "WHO",
        "REASON",
    ]
    for column, values in (
        ("PACKAGE", ["fg-a@1.0.0", "@scope/a-much-longer-name@10.20.30-beta.1"]),
        ("RULE", ["token-farming", "weak"]),
        ("LABEL", ["spam/80", "spam/80"]),
        ("WHO", ["anonymous", "anonymous"]),
        ("REASON", [FARM_REASON, "greeting"]),
    ):
        start = header.index(column)
        assert [line[start:].split("  ")[0] for line in lines[1:]] == values


# -- the running proxy ------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ready_reflects_the_upstream_and_ping_stays_cheap(
    registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = make_proxy()
    ready = proxy.client.get("/-/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["upstream"]["url"] == registry.url
    assert body["upstream"]["reachable"] is True
    assert "error" not in body
    seen = len(registry.seen)
    assert proxy.client.get("/-/ping").json() == {}
    assert len(registry.seen) == seen  # ping never asks the upstream

    dead = f"http://127.0.0.1:{closed_port()}"
    down = make_proxy(upstream=dead, cache_dir=str(tmp_path / "other"))
    answer = down.client.get("/-/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["ready"] is False
    assert body["error"].startswith(f"the upstream {dead} is not usable: ")
    assert down.client.get("/-/ping").status_code == 200


def test_an_unwritable_cache_while_serving_serves_the_tarball_uncached(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-clean", clean("1.0.0"), clean("1.1.0"))
    proxy = make_proxy(enforce=False)
    assert proxy.client.get("/fg-clean").status_code == 200
    # The tarball folder goes away and a file takes its place: nothing can be written there.
    tarballs = proxy.settings.cache_dir / "tarballs"
    shutil.rmtree(tarballs, ignore_errors=True)
    tarballs.write_text("not a folder")
    r = proxy.client.get("/fg-clean/-/fg-clean-1.1.0.tgz")
    assert r.status_code == 200
    assert r.content == registry.tarballs["/fg-clean/-/fg-clean-1.1.0.tgz"]
    assert proxy.client.get("/fg-clean").status_code == 200  # packuments are still served
