"""The dashboard over HTTP on a running Floodgate: admins only (401/403 with a clear message),
read-only, safe headers, and the pages answer with the log's data."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import ProxyFactory, RunningProxy
from tests.dashboard.identity import auth, make_tokens
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry

PAGES = [
    "/-/dashboard",
    "/-/dashboard/",
    "/-/dashboard/?days=30",
    "/-/dashboard/log",
    "/-/dashboard/log?action=block&package=fg-*",
    "/-/dashboard/package?name=fg-farm",
    "/-/dashboard/policies",
    "/-/dashboard/registry",
    "/-/dashboard/registry?package=fg-farm&event=refused",
]


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    return make_tokens(tmp_path / "cache")  # the folder make_proxy serves from


@pytest.fixture
def running(
    registry: FakeRegistry, make_proxy: ProxyFactory, tokens: dict[str, str]
) -> RunningProxy:
    registry.add("fg-farm", farm("1.0.0"))
    registry.add("fg-clean", clean("1.0.0"))
    proxy = make_proxy(prefetch_scans=0, anonymous="on")
    assert proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz").status_code == 302
    assert proxy.client.get("/fg-clean/-/fg-clean-1.0.0.tgz").status_code == 200
    return proxy


def rows(proxy: RunningProxy) -> int:
    conn = sqlite3.connect(Path(proxy.settings.cache_dir) / "decisions.sqlite3")
    try:
        return int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_callers_get_401_and_other_groups_403(
    running: RunningProxy, tokens: dict[str, str], path: str
) -> None:
    anonymous = running.client.get(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")  # the browser asks
    assert "send a Floodgate token of an admin group (admin)" in anonymous.text
    developer = running.client.get(path, headers=auth(tokens["developers/bob"]))
    assert developer.status_code == 403
    assert "developers/bob is in group &#x27;developers&#x27;, not in an admin group" in (
        developer.text
    )
    assert "fg-farm" not in developer.text + anonymous.text  # nothing of the log leaks


@pytest.mark.parametrize("path", PAGES)
def test_admins_get_the_pages_with_safe_headers(
    running: RunningProxy, tokens: dict[str, str], path: str
) -> None:
    r = running.client.get(path, headers=auth(tokens["admin/alice"]))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # no script is allowed at all
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text
    assert "alice (admin)" in r.text


def test_admin_groups_is_a_setting(make_proxy: ProxyFactory, tokens: dict[str, str]) -> None:
    proxy = make_proxy(admin_groups=("security",))
    assert proxy.client.get("/-/dashboard", headers=auth(tokens["admin/alice"])).status_code == 403
    headers = auth(tokens["security/carol"])
    assert proxy.client.get("/-/dashboard", headers=headers).status_code == 200


def test_a_browser_logs_in_with_the_token_as_password(
    make_proxy: ProxyFactory, tokens: dict[str, str]
) -> None:
    proxy = make_proxy()  # tokens exist: anonymous requests are refused before the dashboard
    refused = proxy.client.get("/-/dashboard")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="floodgate", charset="UTF-8"'
    assert proxy.client.get("/fg-farm").headers["www-authenticate"].startswith("Bearer")
    r = proxy.client.get("/-/dashboard", auth=("alice", tokens["admin/alice"]))
    assert r.status_code == 200
    assert "alice (admin)" in r.text
    wrong = proxy.client.get("/-/dashboard", auth=("alice", "fg_not-a-token"))
    assert wrong.status_code == 401


def settled_rows(proxy: RunningProxy, expected: int) -> int:
    """The row count once the log writer has written `expected` rows (allows are written in
    batches by a thread): polled, bounded."""
    deadline = time.monotonic() + 10
    while (count := rows(proxy)) < expected:
        assert time.monotonic() < deadline, f"{count} of {expected} decisions written"
        time.sleep(0.02)
    return count


def test_pages_show_the_log_and_change_nothing(
    running: RunningProxy, tokens: dict[str, str]
) -> None:
    headers = auth(tokens["admin/alice"])
    before = settled_rows(running, 2)  # the farm's block and the clean tarball's allow
    log = running.client.get("/-/dashboard/log?action=block", headers=headers).text
    assert "fg-farm" in log
    assert "fg-clean" not in log
    package = running.client.get("/-/dashboard/package?name=fg-farm", headers=headers).text
    assert 'data-version="1.0.0"' in package
    assert "tea.yaml" in package  # the finding behind the block
    for path in PAGES:
        running.client.get(path, headers=headers)
    assert rows(running) == before  # viewing writes nothing to the log
    for method in ("POST", "PUT", "DELETE"):
        r = running.client.request(method, "/-/dashboard/log", headers=headers)
        assert r.status_code == 405


def test_the_stylesheet_comes_from_the_package(running: RunningProxy) -> None:
    r = running.client.get("/-/dashboard/assets/dashboard.css")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/css")
    assert ".badge.block" in r.text
    assert running.client.get("/-/dashboard/assets/..%2fqueries.py").status_code == 404
    assert running.client.get("/-/dashboard/assets/other.css").status_code == 404


def test_without_enforcement_the_pages_say_so(
    make_proxy: ProxyFactory, tokens: dict[str, str]
) -> None:
    proxy = make_proxy(enforce=False)
    headers = auth(tokens["admin/alice"])
    assert "Enforcement is off" in proxy.client.get("/-/dashboard/policies", headers=headers).text
    overview = proxy.client.get("/-/dashboard", headers=headers)
    assert overview.status_code == 200
    assert "Nothing in this window." in overview.text


def test_with_a_shared_database_the_pages_say_they_cannot_show_it_yet(
    make_proxy: ProxyFactory, tmp_path: Path, pg_url: str
) -> None:
    tokens = make_tokens(tmp_path / "cache", database_url=pg_url)  # where the proxy reads them
    proxy = make_proxy(database_url=pg_url)
    r = proxy.client.get("/-/dashboard", headers=auth(tokens["admin/alice"]))
    assert r.status_code == 501
    assert "floodgate decisions" in r.text
    # Only admins learn even that.
    assert (
        proxy.client.get("/-/dashboard", headers=auth(tokens["developers/bob"])).status_code == 403
    )
