"""Every client through a running `floodgate serve`: npm, pnpm 9, yarn 1, yarn 4 and bun.

One Floodgate and one fake upstream for the module; each test gets a fresh project, home and
client cache. Per client: a cold install and a lockfile install with a fresh cache; a blocked
package (direct, transitive, pinned by a lockfile) fails and the output carries the reason; a
hidden or blocked version makes a range fall back to the clean one; a warning is shown where the
client shows one (yarn 4 prints none at install: `yarn npm audit` shows it, as the README says).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import publish_basics
from tests.e2e.clients import CLIENTS, Client, Sandbox, heard, sandbox
from tests.e2e.npm import Floodgate, floodgate
from tests.fakes.packages import clean, farm, hello
from tests.fakes.registry import FakeRegistry, running_registry

pytestmark = pytest.mark.e2e

POLICY = """
version: 1
name: e2e
rules:
  - id: token-farming
    match: {labels: [spam], signals: [tea-yaml, tea-wallet-reuse]}
    action: block
  - id: shady-release
    match: {names: [fg-shady], versions: ">=1.1.0"}
    action: hide
  - id: weak-signals
    match: {labels: [suspicious]}
    action: warn
"""
WAIVER = """
waivers:
  - package: fg-locked@1.1.0
    reason: vetted while the lockfile was written
    owner: security@example.invalid
    expires: 2999-12-31
"""
# The detector's one-sentence reason for a tea.xyz farming package (the start of it).
TEA_REASON = "the package ships a tea.xyz registration file"
WARN_REASON = "the entry point index.js only prints a greeting"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        publish_basics(registry)
        registry.add("fg-farm", farm("1.0.0"))
        registry.add("@fg-scope/farm", farm("1.0.0"))
        registry.add("fg-parent", clean("1.0.0", dependencies={"fg-farm": "^1.0.0"}))
        registry.add("fg-locked", clean("1.0.0"), farm("1.1.0"))
        registry.add("fg-shady", clean("1.0.0"), clean("1.1.0"))
        registry.add("fg-hello", hello("1.0.0"))
        yield registry


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "e2e.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture(scope="module")
def gate(
    upstream: FakeRegistry, policy: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Floodgate]:
    folder = tmp_path_factory.mktemp("floodgate")
    with floodgate(upstream.url, folder, "--policy", str(policy)) as running:
        # A Floodgate that has seen these packages: their tarballs are scanned, so every
        # client, whichever runs first, gets packuments that already carry the verdicts. (What a
        # cold first client sees is in test_policy_npm.py and tests/web/test_enforcement.py:
        # the tarball's refusal, which every client here also gets for a lockfile install.)
        with httpx.Client(base_url=running.url, timeout=30) as client:
            for path in upstream.tarballs:
                client.get(path)
        yield running


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> Client:
    found = CLIENTS[str(request.param)]
    found.require()
    return found


def project(client: Client, gate: Floodgate, tmp_path: Path, deps: dict[str, str]) -> Sandbox:
    return sandbox(client, tmp_path, gate.url, deps)


def set_policy(gate: Floodgate, policy: Path, text: str) -> None:
    """Write the policy and make Floodgate load it now (SIGHUP), waiting for its log line."""
    before = gate.log().count("policy e2e reloaded")
    policy.write_text(text)
    gate.process.send_signal(signal.SIGHUP)
    assert gate.logged_times("policy e2e reloaded", before + 1, timeout=15), gate.log()[-3000:]


def assert_reason(output: str, package: str, version: str) -> None:
    """The user was told what was blocked, by which rule and why."""
    assert heard(output, f"{package}@{version}"), output
    assert heard(output, "token-farming"), output
    assert heard(output, TEA_REASON), output
    # A policy block is not an authentication problem (pnpm prints this for 401/403).
    assert "pnpm login" not in output
    assert "No authorization header" not in output


def test_cold_install_then_lockfile_install_with_a_fresh_cache(
    client: Client, gate: Floodgate, tmp_path: Path
) -> None:
    box = project(client, gate, tmp_path, {"fg-alpha": "^1.0.0", "@fg-scope/gamma": "1.0.0"})
    box.install()
    assert box.installed("fg-alpha") == "1.1.0"  # latest, not the prerelease
    assert box.installed("@fg-scope/gamma") == "1.0.0"
    lockfile = box.project / client.lockfile
    assert lockfile.stat().st_size > 0
    written = lockfile.read_text()
    box.frozen_install()
    assert box.installed("fg-alpha") == "1.1.0"
    assert box.installed("@fg-scope/gamma") == "1.0.0"
    assert lockfile.read_text() == written  # the lockfile was used as it was


@pytest.mark.parametrize(
    ("dependency", "blocked"),
    [("fg-farm", "fg-farm"), ("fg-parent", "fg-farm"), ("@fg-scope/farm", "@fg-scope/farm")],
    ids=["direct", "transitive", "scoped"],  # fg-parent depends on fg-farm
)
def test_a_blocked_package_fails_with_the_reason(
    client: Client, gate: Floodgate, tmp_path: Path, dependency: str, blocked: str
) -> None:
    box = project(client, gate, tmp_path, {dependency: "^1.0.0"})
    run = box.install(check=False)
    assert run.returncode != 0, run.output
    assert_reason(run.output, blocked, "1.0.0")
    assert box.installed(blocked) is None


def test_a_lockfile_pinning_a_blocked_version_fails_with_the_reason(
    client: Client, gate: Floodgate, policy: Path, tmp_path: Path
) -> None:
    box = project(client, gate, tmp_path, {"fg-locked": "1.1.0"})
    set_policy(gate, policy, POLICY + WAIVER)  # allowed while the lockfile is written
    try:
        box.install()
        assert box.installed("fg-locked") == "1.1.0"
    finally:
        set_policy(gate, policy, POLICY)
    run = box.frozen_install(check=False)
    assert run.returncode != 0, run.output
    if client.name in ("pnpm", "yarn1"):
        # Both print only the status of a failed lockfile download (pnpm its URL, which a
        # lockfile pins to the plain one): 451, which says "refused on purpose", never 403.
        assert "451" in run.output, run.output
        assert "pnpm login" not in run.output
        assert "No authorization header" not in run.output
    else:
        assert_reason(run.output, "fg-locked", "1.1.0")
    assert box.installed("fg-locked") is None


@pytest.mark.parametrize("package", ["fg-shady", "fg-locked"], ids=["hidden", "blocked"])
def test_a_range_falls_back_to_the_clean_version(
    client: Client, gate: Floodgate, tmp_path: Path, package: str
) -> None:
    # fg-shady 1.1.0 is hidden (gone from the packument); fg-locked 1.1.0 is blocked (kept,
    # so that an exact pin hears why, but no tag points at it).
    box = project(client, gate, tmp_path, {package: "^1.0.0"})
    box.install()
    assert box.installed(package) == "1.0.0"


def test_a_warning_installs_and_is_shown(client: Client, gate: Floodgate, tmp_path: Path) -> None:
    box = project(client, gate, tmp_path, {"fg-hello": "^1.0.0"})
    run = box.install()
    assert box.installed("fg-hello") == "1.0.0"
    if client.name == "yarn4":
        # Yarn 4 prints no deprecation at install (berry #5982): `yarn npm audit` shows it.
        assert not heard(run.output, WARN_REASON)
        audit = box.run(["npm", "audit", "--no-deprecations"], check=False)
        assert heard(audit.output, "weak-signals"), audit.output
        # yarn 4 cuts the title at its width: the reason's start is what it shows.
        assert heard(audit.output, "its entry point index.js exports nothing"), audit.output
        return
    assert heard(run.output, "fg-hello@1.0.0") or heard(run.output, "fg-hello"), run.output
    assert heard(run.output, "Floodgate warning (rule 'weak-signals')"), run.output
    assert heard(run.output, WARN_REASON), run.output
