"""Client tokens, per-group policies and internal names as real clients see them, through
`floodgate serve` (tokens made with `floodgate token create`, as an administrator would)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.clients import CLIENTS, Client, Run, Sandbox, sandbox
from tests.e2e.npm import Floodgate, floodgate
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry, running_registry

pytestmark = [pytest.mark.e2e]

DEVELOPERS = (
    Path(__file__).resolve().parents[1] / "fixtures" / "policies" / "valid" / "developers.yaml"
)
TOKEN_CLIENTS = [CLIENTS["npm"], CLIENTS["pnpm"], CLIENTS["yarn4"]]
# What each client prints of a 401 (client-channels.md): npm our npm-notice, pnpm the status
# and its log-in hint, yarn 4 only "Invalid authentication".
REFUSED = {"npm": "401", "pnpm": "401", "yarn4": "Invalid authentication"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        registry.add("fg-clean", clean("1.0.0"))
        registry.add("fg-farm", farm("1.0.0"))
        registry.add("acme-utils", clean("9.9.9"))  # squats the organization's internal name
        registry.add("acme_utils", clean("1.0.0"))  # and a twin of it
        yield registry


def floodgate_cli(cache: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", *args, "--cache-dir", str(cache)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def with_token(box: Sandbox, token: str | None) -> Sandbox:
    """Configure the client's token the way its users do."""
    if token is None:
        return box
    host = urlsplit(box.registry)
    line = f"//{host.netloc}/:_authToken={token}\n"
    with (box.home / ".npmrc").open("a") as npmrc:
        npmrc.write(line)
    if box.client.name == "yarn4":
        with (box.project / ".yarnrc.yml").open("a") as yarnrc:
            # yarn 4 sends a token to install only with npmAlwaysAuth.
            yarnrc.write(f'npmAuthToken: "{token}"\nnpmAlwaysAuth: true\n')
    return box


def install(
    client: Client, folder: Path, gate: Floodgate, token: str | None, deps: dict[str, str]
) -> Run:
    box = with_token(sandbox(client, folder, gate.url, deps), token)
    return box.install(check=False)


@pytest.mark.parametrize("client", TOKEN_CLIENTS, ids=lambda c: c.name)
def test_tokens_valid_wrong_revoked_and_anonymous(
    client: Client, upstream: FakeRegistry, tmp_path: Path
) -> None:
    cache = tmp_path / "floodgate-cache"
    token = floodgate_cli(cache, "token", "create", "--group", "developers", "--name", "alice")
    doomed = floodgate_cli(cache, "token", "create", "--group", "developers", "--name", "bob")
    deps = {"fg-clean": "^1.0.0"}
    with floodgate(upstream.url, tmp_path) as gate:
        ok = install(client, tmp_path / "valid", gate, token, deps)
        assert ok.returncode == 0, ok.output
        assert (tmp_path / "valid" / "app" / "node_modules" / "fg-clean").is_dir()

        wrong = install(client, tmp_path / "wrong", gate, "fg_not-a-real-token", deps)
        assert wrong.returncode != 0
        assert REFUSED[client.name] in wrong.output
        if client.name == "npm":  # npm prints the npm-notice; pnpm only its log-in hint
            assert "does not know this token" in wrong.output
            assert "floodgate token create" in wrong.output

        anonymous = install(client, tmp_path / "anonymous", gate, None, deps)
        assert anonymous.returncode != 0  # tokens exist, so anonymous access is off (auto)
        assert REFUSED[client.name] in anonymous.output
        if client.name == "npm":
            assert "requires a token" in anonymous.output

        floodgate_cli(cache, "token", "revoke", "bob")
        revoked = install(client, tmp_path / "revoked", gate, doomed, deps)
        assert revoked.returncode != 0, revoked.output  # the token was never cached as valid
        assert gate.logged("auth=refused")
        log = gate.log()
        for secret in (token, doomed, "fg_not-a-real-token"):
            assert secret not in log
        assert "who=developers/alice" in log
    with floodgate(upstream.url, tmp_path, "--anonymous", "on") as gate:
        done = install(client, tmp_path / "open-anonymous", gate, None, deps)
        assert done.returncode == 0, done.output


def test_whoami_names_the_token_and_login_says_how_to_get_one(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    client = CLIENTS["npm"]
    cache = tmp_path / "floodgate-cache"
    token = floodgate_cli(cache, "token", "create", "--group", "ci", "--name", "runner-7")
    with floodgate(upstream.url, tmp_path) as gate:
        box = with_token(sandbox(client, tmp_path / "who", gate.url, {}), token)
        who = box.run(["whoami"], check=False)
        assert who.returncode == 0, who.output
        assert who.output.strip() == "runner-7"
        # npm tries web login, falls back to the legacy prompts, then PUTs the user document.
        login = subprocess.run(
            [*client.argv, "login"],
            cwd=box.project,
            env=box.env(),
            input="alice\nnot-a-password\nalice@example.invalid\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert login.returncode != 0
        assert "does not log users in" in login.stdout + login.stderr
        assert "floodgate token create" in login.stdout + login.stderr


@pytest.mark.parametrize("client", TOKEN_CLIENTS, ids=lambda c: c.name)
def test_same_package_blocked_for_ci_and_warned_for_developers(
    client: Client, upstream: FakeRegistry, tmp_path: Path
) -> None:
    cache = tmp_path / "floodgate-cache"
    policy = DEVELOPERS
    ci = floodgate_cli(cache, "token", "create", "--group", "ci", "--name", "runner-7")
    dev = floodgate_cli(cache, "token", "create", "--group", "developers", "--name", "alice")
    groups = f"ci=strict,developers={policy}"
    deps = {"fg-farm": "^1.0.0"}
    with floodgate(upstream.url, tmp_path, "--group-policies", groups) as gate:
        blocked = install(client, tmp_path / "ci", gate, ci, deps)
        assert blocked.returncode != 0
        assert "451" in blocked.output, blocked.output
        if client.name == "npm":
            assert "Floodgate blocked fg-farm@1.0.0 (policy 'strict'" in blocked.output
        warned = install(client, tmp_path / "dev", gate, dev, deps)
        assert warned.returncode == 0, warned.output
        if client.name != "yarn4":  # yarn 4 prints no deprecations at install
            assert "spam-is-a-warning" in warned.output
        assert (tmp_path / "dev" / "app" / "node_modules" / "fg-farm").is_dir()
    why = floodgate_cli(cache, "decisions", "--group", "ci", "--json")
    assert '"token":"runner-7"' in why
    assert '"action":"block"' in why
    assert "alice" not in why
    assert ci not in why


def test_dependency_confusion_is_refused_and_never_asked_upstream(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    client = CLIENTS["npm"]
    before = len(upstream.requests_for("/acme-utils"))
    args = ("--internal-names", "acme-utils", "--internal-scopes", "@acme")
    with floodgate(upstream.url, tmp_path, *args, "--internal-anonymous-read") as gate:
        internal = install(client, tmp_path / "internal", gate, None, {"acme-utils": "^9.0.0"})
        assert internal.returncode != 0
        assert "404" in internal.output
        assert "internal package and has not been published here" in internal.output
        twin = install(client, tmp_path / "twin", gate, None, {"acme_utils": "^1.0.0"})
        assert twin.returncode != 0
        assert "dependency-confusion" in twin.output
        assert "imitates the internal package acme-utils" in twin.output
    assert len(upstream.requests_for("/acme-utils")) == before == 0
    assert all("acme-utils" not in seen.path for seen in upstream.seen)
