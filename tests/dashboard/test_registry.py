"""The dashboard's Registry page: the hosted packages' events, newest first, filtered by
package and kind, admins only. Pure rendering and filters in tables; then over HTTP on a
running Floodgate after real publishes, a dist-tag, a deprecation and a refused publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.dashboard import render
from proxy.dashboard.queries import MAX_FILTER, RegistryFilter
from proxy.hosted.store import RegistryEvent
from tests.conftest import ProxyFactory, RunningProxy
from tests.dashboard.identity import auth, make_tokens
from tests.dashboard.test_render import ESCAPED, EVIL, assert_escaped
from tests.hosted.activity import NEWEST_FIRST, make_activity


@pytest.mark.parametrize(
    ("params", "package", "event", "kinds"),
    [
        ({}, "", "", ()),
        ({"package": " @acme/utils ", "event": "publish"}, "@acme/utils", "publish", ("publish",)),
        ({"event": "dist-tag"}, "", "dist-tag", ("dist-tag",)),
        ({"event": "drop table"}, "", "", ()),  # not a kind: no filter
        ({"package": "x" * 1000}, "x" * MAX_FILTER, "", ()),
    ],
)
def test_registry_filter(
    params: dict[str, str], package: str, event: str, kinds: tuple[str, ...]
) -> None:
    f = RegistryFilter.of(params)
    assert (f.package, f.event, f.kinds) == (package, event, kinds)


def event(**kw: object) -> RegistryEvent:
    values: dict[str, object] = {
        "time": 1_780_000_000.0,
        "event": "refused",
        "package": EVIL,
        "version": EVIL,
        "detail": EVIL,
        "group": EVIL,
        "token": EVIL,
        "client": EVIL,
    }
    values.update(kw)
    return RegistryEvent(**values)  # type: ignore[arg-type]


def test_the_registry_page_escapes_every_value_and_keeps_the_order() -> None:
    events = [
        event(time=1_780_000_200.0, event="publish", package="@acme/b"),
        event(time=1_780_000_100.0),
    ]
    html = render.registry_page(
        events, [EVIL, "@acme/b"], RegistryFilter(EVIL, "refused"), EVIL, True, 200
    )
    assert_escaped(html)
    assert ESCAPED in html
    assert html.index('data-package="@acme/b"') < html.index(f'data-package="{ESCAPED}"')
    assert "2026-05-28 20:30:00" in html  # times in UTC
    # Links carry the name as a query parameter, never as markup.
    assert 'href="/-/dashboard/registry?package=%40acme%2Fb"' in html
    assert f"<option selected>{ESCAPED}</option>" in html
    assert "<option selected>refused</option>" in html
    assert 'class="badge ev-publish"' in html
    assert '<a href="/-/dashboard/registry" class=current>Registry</a>' in html


def test_the_registry_page_says_when_nothing_is_hosted_or_matches() -> None:
    off = render.registry_page([], [], RegistryFilter(), "a (admin)", False, 200)
    assert "hosts no packages" in off
    none = render.registry_page([], ["@acme/a"], RegistryFilter(), "a (admin)", True, 200)
    assert "No event matches." in none
    full = render.registry_page([event()] * 3, [], RegistryFilter(), "a", True, 3)
    assert "3 events (the newest 3), newest first" in full


@pytest.fixture
def hosting(make_proxy: ProxyFactory, tmp_path: Path) -> tuple[RunningProxy, dict[str, str]]:
    tokens = make_tokens(tmp_path / "cache", ("admin/root", "developers/bob"))
    proxy = make_proxy(internal_scopes="@acme")
    make_activity(proxy.client, tokens["admin/root"], tokens["developers/bob"])
    return proxy, tokens


def rows(html: str) -> list[tuple[str, str]]:
    """(event, package) of each row, in page order."""
    out = []
    for part in html.split("<tr data-event=")[1:]:
        kind = part.split('"')[1]
        package = part.split('data-package="')[1].split('"')[0]
        out.append((kind, package))
    return out


def test_admins_see_the_events_newest_first_and_filter_them(
    hosting: tuple[RunningProxy, dict[str, str]],
) -> None:
    proxy, tokens = hosting
    admin = auth(tokens["admin/root"])
    r = proxy.client.get("/-/dashboard/registry", headers=admin)
    assert r.status_code == 200
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert rows(r.text) == NEWEST_FIRST
    html = r.text
    assert "may not publish @acme/utils" in html  # the refusal's reason
    assert "developers" in html
    assert ">bob<" in html  # the refused token's name
    assert "stable -&gt; 1.0.0" in html
    assert "use 1.1.0: &lt;b&gt;chunk&lt;/b&gt; was off by one" in html  # escaped
    assert "<b>chunk" not in html
    only = proxy.client.get("/-/dashboard/registry?package=@acme/vault", headers=admin).text
    assert rows(only) == [("publish", "@acme/vault")]
    kinds = proxy.client.get("/-/dashboard/registry?event=publish", headers=admin).text
    assert [k for k, _ in rows(kinds)] == ["publish"] * 3
    both = proxy.client.get(
        "/-/dashboard/registry?package=@acme/utils&event=dist-tag", headers=admin
    ).text
    assert rows(both) == [("dist-tag", "@acme/utils")]


def test_other_groups_never_see_the_registry_page(
    hosting: tuple[RunningProxy, dict[str, str]],
) -> None:
    proxy, tokens = hosting
    r = proxy.client.get("/-/dashboard/registry", headers=auth(tokens["developers/bob"]))
    assert r.status_code == 403
    assert "@acme" not in r.text
    assert proxy.client.get("/-/dashboard/registry").status_code == 401
