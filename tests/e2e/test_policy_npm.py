"""Policy enforcement as the real npm client sees it, through `floodgate serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.e2e.npm import floodgate, installed_version, needs_npm, npm, write_project
from tests.fakes.packages import clean, farm, hello
from tests.fakes.registry import FakeRegistry, running_registry

pytestmark = [pytest.mark.e2e, needs_npm]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = (ROOT / "policies" / "default.yaml").read_text()
AUDIT = (ROOT / "policies" / "audit.yaml").read_text()
HIDE_SPAM = """
version: 1
name: hide-spam
rules:
  - id: spam
    match: {labels: [spam]}
    action: hide
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        registry.add("fg-farm", farm("1.0.0"))
        registry.add("fg-mixed", clean("1.0.0"), farm("1.1.0"))
        registry.add("fg-hello", hello("1.0.0"))
        registry.add("fg-clean", clean("1.0.0"))
        yield registry


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_blocked_package_fails_the_install_with_our_reason(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    with floodgate(upstream.url, tmp_path) as gate:
        # Cold, only the tarball shows the farm: its download is refused with the reason (451);
        # then the packument restricts the version (npm's own E403 "policy violations").
        for attempt, code in (("c1", "E451"), ("c2", "E403")):
            project = write_project(tmp_path / attempt / "app", {"fg-farm": "^1.0.0"})
            done = npm(["install"], project, gate.url, tmp_path / attempt, check=False)
            assert done.returncode != 0
            assert code in done.stderr
            assert "Floodgate blocked fg-farm" in done.stderr
            assert "token-farming" in done.stderr
            assert "tea.xyz registration file" in done.stderr


def test_pinned_blocked_version_gets_npms_policy_violation_error(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    with floodgate(upstream.url, tmp_path) as gate:
        project = write_project(tmp_path / "app", {"fg-mixed": "1.1.0"})
        # Cold: the tarball is refused with the reason (nothing in the metadata told).
        done = npm(["install"], project, gate.url, tmp_path / "c1", check=False)
        assert done.returncode != 0
        assert "Floodgate blocked fg-mixed@1.1.0" in done.stderr
        assert "token-farming" in done.stderr
        # Since then the packument restricts the version: npm's own policy-violation error.
        done = npm(["install"], project, gate.url, tmp_path / "c1b", check=False)
        assert done.returncode != 0
        assert "due to policy violations" in done.stderr
        assert "token-farming" in done.stderr
        # A range falls back to the last clean version.
        project = write_project(tmp_path / "app2", {"fg-mixed": "^1.0.0"})
        npm(["install"], project, gate.url, tmp_path / "c2")
        assert installed_version(project, "fg-mixed") == "1.0.0"


def test_warned_package_installs_and_npm_prints_our_message(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    with floodgate(upstream.url, tmp_path) as gate:
        # Cold, only the tarball shows the warning: npm prints it as the tarball's notice.
        first = write_project(tmp_path / "first", {"fg-hello": "^1.0.0", "fg-clean": "^1.0.0"})
        cold = npm(["install"], first, gate.url, tmp_path / "c0")
        assert "npm notice fg-hello@1.0.0: Floodgate warning (rule 'weak-signals')" in (
            cold.stdout + cold.stderr
        )
        # From then on the packument carries it as `deprecated`, which npm prints too.
        project = write_project(tmp_path / "app", {"fg-hello": "^1.0.0", "fg-clean": "^1.0.0"})
        done = npm(["install"], project, gate.url, tmp_path / "c1")
        assert installed_version(project, "fg-hello") == "1.0.0"
        output = done.stdout + done.stderr
        assert (
            "npm warn deprecated fg-hello@1.0.0: Floodgate warning (rule 'weak-signals')" in output
        )
        assert "greeting" in output
        assert "fg-clean" not in output


def test_hidden_version_makes_the_range_resolve_to_the_last_clean_version(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path, HIDE_SPAM)
    with floodgate(upstream.url, tmp_path, "--policy", str(policy)) as gate:
        # Cold, npm resolves ^1.0.0 to 1.1.0 from a packument that still lists it; only its
        # tarball shows the spam, so that download is refused with the reason ...
        first = write_project(tmp_path / "first", {"fg-mixed": "^1.0.0"})
        done = npm(["install"], first, gate.url, tmp_path / "c0", check=False)
        assert done.returncode != 0
        assert "Floodgate hid fg-mixed@1.1.0" in done.stderr
        assert "install again" in done.stderr
        # ... and the next resolution falls back to the last clean version.
        project = write_project(tmp_path / "app", {"fg-mixed": "^1.0.0"})
        npm(["install"], project, gate.url, tmp_path / "c1")
        assert installed_version(project, "fg-mixed") == "1.0.0"
        done = npm(["view", "fg-mixed", "versions", "--json"], project, gate.url, tmp_path / "c2")
        assert json.loads(done.stdout) in ("1.0.0", ["1.0.0"])


def test_npm_ci_with_a_lockfile_pinning_a_blocked_version_fails_with_the_reason(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path, AUDIT)  # nothing blocked yet: the lockfile pins 1.1.0
    with floodgate(upstream.url, tmp_path, "--policy", str(policy)) as gate:
        project = write_project(tmp_path / "app", {"fg-mixed": "1.1.0"})
        npm(["install"], project, gate.url, tmp_path / "c1")
        assert installed_version(project, "fg-mixed") == "1.1.0"
        policy.write_text(DEFAULT)  # picked up without a restart
        assert gate.logged("policy default reloaded", timeout=10)
        shutil.rmtree(project / "node_modules")
        done = npm(["ci"], project, gate.url, tmp_path / "c2", check=False)
        assert done.returncode != 0
        # 451 (was 403): npm prints the reason either way, and no longer adds its "forbidden
        # by your security policy, or on a server you do not have access to" guess.
        assert "E451" in done.stderr
        assert "/-/blocked/Floodgate-blocked-fg-mixed@1.1.0" in done.stderr  # the redirect
        assert "Floodgate blocked fg-mixed@1.1.0" in done.stderr
        assert "token-farming" in done.stderr


def test_dry_run_installs_everything_and_logs_would_block(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path, DEFAULT.replace("mode: enforce", "mode: dry-run"))
    with floodgate(upstream.url, tmp_path, "--policy", str(policy)) as gate:
        project = write_project(tmp_path / "app", {"fg-farm": "^1.0.0", "fg-mixed": "1.1.0"})
        npm(["install"], project, gate.url, tmp_path / "c1")
        assert installed_version(project, "fg-farm") == "1.0.0"
        assert installed_version(project, "fg-mixed") == "1.1.0"
    cache = tmp_path / "floodgate-cache"
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "decisions", "--cache-dir", str(cache), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    would_block = {(r["package"], r["version"]) for r in rows if r["intended"] == "block"}
    assert would_block == {("fg-farm", "1.0.0"), ("fg-mixed", "1.1.0")}
    assert all(r["action"] == "monitor" for r in rows if r["intended"] == "block")
    assert "tarball" in {r["via"] for r in rows}
    assert any(r["user_agent"].startswith("npm/") for r in rows)


@pytest.mark.parametrize(("days", "installs"), [(1, True), (-1, False)])
def test_a_waiver_lets_a_blocked_version_through_until_it_expires(
    upstream: FakeRegistry, tmp_path: Path, days: int, installs: bool
) -> None:
    expires = (date.today() + timedelta(days=days)).isoformat()
    waiver = (
        "waivers:\n  - package: fg-farm@1.0.0\n    reason: vetted by the security team\n"
        f"    owner: security@example.com\n    expires: {expires}\n"
    )
    policy = policy_file(tmp_path, DEFAULT.replace("waivers: []", waiver))
    with floodgate(upstream.url, tmp_path, "--policy", str(policy)) as gate:
        project = write_project(tmp_path / "app", {"fg-farm": "1.0.0"})
        done = npm(["install"], project, gate.url, tmp_path / "c1", check=False)
        assert (done.returncode == 0) is installs, done.stderr
        if not installs:
            assert "token-farming" in done.stderr


def test_npm_audit_through_floodgate_lists_our_finding_and_fails(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    # The audit policy serves flagged packages with a warning, so the install succeeds and
    # the lockfile holds fg-farm; `npm audit` then gets Floodgate's finding.
    policy = policy_file(tmp_path, AUDIT)
    with floodgate(upstream.url, tmp_path, "--policy", str(policy)) as gate:
        project = write_project(tmp_path / "app", {"fg-farm": "^1.0.0", "fg-clean": "^1.0.0"})
        npm(["install"], project, gate.url, tmp_path / "c1")
        done = npm(["audit"], project, gate.url, tmp_path / "c2", check=False)
        assert done.returncode != 0
        assert "fg-farm" in done.stdout
        assert "Floodgate: spam package (rule flagged)" in done.stdout
        assert "tea.xyz registration file" in done.stdout
        assert "fg-clean" not in done.stdout
        assert f"{gate.url}/-/floodgate/verdict/fg-farm/1.0.0" in done.stdout


def test_sighup_reloads_the_policy(upstream: FakeRegistry, tmp_path: Path) -> None:
    import os
    import signal

    # Same size and mtime after the edit, so the file watch cannot notice: only SIGHUP can.
    policy = policy_file(tmp_path, AUDIT)
    stat = policy.stat()
    edited = AUDIT.replace("action: warn", "action: hide")
    assert len(edited) == len(AUDIT)
    with floodgate(upstream.url, tmp_path, "--policy", str(policy)) as gate:
        before = write_project(tmp_path / "before", {"fg-mixed": "^1.0.0"})
        npm(["install"], before, gate.url, tmp_path / "c0")
        assert installed_version(before, "fg-mixed") == "1.1.0"  # warned, not hidden
        policy.write_text(edited)
        os.utime(policy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        gate.process.send_signal(signal.SIGHUP)
        assert gate.logged("policy audit reloaded", timeout=10)
        project = write_project(tmp_path / "app", {"fg-mixed": "^1.0.0"})
        npm(["install"], project, gate.url, tmp_path / "c1")
        assert installed_version(project, "fg-mixed") == "1.0.0"  # 1.1.0 is hidden now
