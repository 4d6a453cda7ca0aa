"""Client tokens, groups and internal names through a running proxy (real HTTP, fake upstream)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.decisions import query
from proxy.tokens import TokenStore
from tests.conftest import ProxyFactory, RunningProxy, publish_basics
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry
from tests.web.test_cold_path import wait_until

WARN_SPAM = (
    Path(__file__).resolve().parents[1] / "fixtures" / "policies" / "valid" / "developers.yaml"
)


def make_token(cache: Path, group: str, name: str) -> str:
    store = TokenStore.in_cache(cache)
    try:
        return store.create(group, name)
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


def test_without_tokens_everyone_is_anonymous_as_before(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    publish_basics(registry)
    proxy = make_proxy()
    assert proxy.client.get("/fg-alpha").status_code == 200
    # Credentials meant for someone else are not ours to judge while no token exists.
    assert proxy.client.get("/fg-alpha", headers=bearer("npm_somebody")).status_code == 200


def test_once_a_token_exists_anonymous_requests_get_401_saying_how(
    registry: FakeRegistry, make_proxy: ProxyFactory, cache: Path
) -> None:
    publish_basics(registry)
    make_token(cache, "ci", "runner-7")
    proxy = make_proxy()
    r = proxy.client.get("/fg-alpha")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "requires a token" in r.json()["error"]
    assert "floodgate token create" in r.headers["npm-notice"]
    assert registry.requests_for("/fg-alpha") == []
    # Liveness stays open.
    assert proxy.client.get("/-/ping").status_code == 200


def test_a_valid_token_is_served_and_whoami_names_it(
    registry: FakeRegistry, make_proxy: ProxyFactory, cache: Path
) -> None:
    publish_basics(registry)
    token = make_token(cache, "ci", "runner-7")
    proxy = make_proxy()
    assert proxy.client.get("/fg-alpha", headers=bearer(token)).status_code == 200
    tarball = proxy.client.get("/fg-alpha/-/fg-alpha-1.0.0.tgz", headers=bearer(token))
    assert tarball.status_code == 200
    assert proxy.client.get("/-/whoami", headers=bearer(token)).json() == {"username": "runner-7"}
    # The token never reaches the upstream.
    assert all("authorization" not in seen.headers for seen in registry.seen)


def test_a_wrong_token_is_401_and_never_logged(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish_basics(registry)
    make_token(cache, "ci", "runner-7")
    proxy = make_proxy(anonymous="on")  # even with anonymous access on, a bad token is refused
    wrong = "fg_this-is-not-a-token-floodgate-made"
    r = proxy.client.get("/fg-alpha", headers=bearer(wrong))
    assert r.status_code == 401
    assert "does not know this token" in r.json()["error"]
    assert wrong not in r.text
    assert proxy.client.get("/fg-alpha").status_code == 200  # anonymous: on
    proxy.stop()
    captured = capsys.readouterr()
    assert wrong not in captured.out + captured.err


def test_a_revoked_token_is_refused_within_seconds(
    registry: FakeRegistry, make_proxy: ProxyFactory, cache: Path
) -> None:
    publish_basics(registry)
    token = make_token(cache, "ci", "runner-7")
    make_token(cache, "ci", "runner-8")
    proxy = make_proxy()
    assert proxy.client.get("/fg-alpha", headers=bearer(token)).status_code == 200
    store = TokenStore.in_cache(cache)
    store.revoke("runner-7")
    store.close()
    assert wait_until(
        lambda: proxy.client.get("/fg-alpha", headers=bearer(token)).status_code == 401, 15
    )


def test_repeated_failures_from_one_address_are_slowed_down(
    registry: FakeRegistry, make_proxy: ProxyFactory, cache: Path
) -> None:
    publish_basics(registry)
    good = make_token(cache, "ci", "runner-7")
    proxy = make_proxy()
    codes = [
        proxy.client.get("/fg-alpha", headers=bearer(f"fg_wrong-{i}")).status_code for i in range(8)
    ]
    assert codes[:6] == [401] * 6
    assert codes[6:] == [429, 429]
    r = proxy.client.get("/fg-alpha", headers=bearer("fg_wrong-again"))
    assert int(r.headers["retry-after"]) >= 1
    # A valid token from the same address is still served.
    assert proxy.client.get("/fg-alpha", headers=bearer(good)).status_code == 200


def test_each_group_gets_its_policy_in_one_proxy_and_the_log_says_who(
    registry: FakeRegistry, make_proxy: ProxyFactory, cache: Path, tmp_path: Path
) -> None:
    registry.add("fg-farm", farm("1.0.0"))
    registry.add("fg-clean", clean("1.0.0"))
    lenient = WARN_SPAM
    ci = make_token(cache, "ci", "runner-7")
    dev = make_token(cache, "developers", "alice")
    proxy = make_proxy(group_policies=f"ci=strict,developers={lenient}")
    path = "/fg-farm/-/fg-farm-1.0.0.tgz"
    for_ci = proxy.client.get(path, headers=bearer(ci), follow_redirects=True)
    assert for_ci.status_code == 451
    assert "policy 'strict'" in for_ci.json()["error"]
    for_dev = proxy.client.get(path, headers=bearer(dev))
    assert for_dev.status_code == 200
    assert "spam-is-a-warning" in for_dev.headers["npm-notice"]
    # The packuments differ too: each group's plan and rendering are its own.
    doc_ci = proxy.client.get("/fg-farm", headers=bearer(ci)).json()
    doc_dev = proxy.client.get("/fg-farm", headers=bearer(dev)).json()
    assert "/-/blocked/" in doc_ci["versions"]["1.0.0"]["dist"]["tarball"]
    assert "/-/blocked/" not in doc_dev["versions"]["1.0.0"]["dist"]["tarball"]
    assert "spam-is-a-warning" in doc_dev["versions"]["1.0.0"]["deprecated"]
    proxy.stop()  # flushes the decision log
    rows = list(query(cache / "decisions.sqlite3", package="fg-farm"))
    seen = {(r.group, r.token, r.policy, r.action) for r in rows if r.via == "tarball"}
    assert ("ci", "runner-7", "strict", "block") in seen
    assert ("developers", "alice", "developers", "warn") in seen
    assert all(ci not in r.token and dev not in r.token for r in rows)
    assert {r.token for r in query(cache / "decisions.sqlite3", group="ci")} == {"runner-7"}


def test_internal_names_are_never_asked_upstream_and_their_twins_are_blocked(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("acme-utils", clean("9.9.9"))  # a public package squatting the internal name
    registry.add("acme_utils", clean("1.0.0"))  # and a twin of it
    registry.add("@acme/secret", clean("1.0.0"))
    proxy = make_proxy(
        internal_names="acme-utils", internal_scopes="@acme", internal_anonymous_read=True
    )
    for name in ("acme-utils", "@acme/secret", "@acme%2fsecret"):
        r = proxy.client.get(f"/{name}")
        assert r.status_code == 404  # hosted by Floodgate, and never published to it
        assert "internal package" in r.json()["error"]
    r = proxy.client.get("/acme-utils/-/acme-utils-9.9.9.tgz")
    assert r.status_code == 404
    assert registry.requests_for("/acme-utils") == []
    assert [s for s in registry.seen if "acme" in s.path and "acme_utils" not in s.path] == []
    twin = proxy.client.get("/acme_utils").json()
    assert "/-/blocked/" in twin["versions"]["1.0.0"]["dist"]["tarball"]
    refused = proxy.client.get("/acme_utils/-/acme_utils-1.0.0.tgz", follow_redirects=True)
    assert refused.status_code == 451
    assert "dependency-confusion" in refused.json()["error"]
    assert "imitates the internal package acme-utils" in refused.json()["error"]


def test_admin_and_token_settings_reach_the_running_proxy(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy: RunningProxy = make_proxy(admin_groups="security,admin", anonymous="off")
    assert proxy.settings.admin_groups == ("security", "admin")
    assert proxy.client.get("/fg-alpha").status_code == 401  # off: even without any token
