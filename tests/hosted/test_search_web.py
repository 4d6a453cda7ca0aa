"""`npm search` through a running Floodgate: hosted packages the caller may read, first, merged
with the upstream's results (a fake upstream with search on loopback), paged together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.conftest import ProxyFactory, RunningProxy
from tests.dashboard.identity import auth, make_tokens
from tests.fakes.packages import FakeVersion
from tests.fakes.publish import publish
from tests.fakes.registry import FakeRegistry
from tests.hosted.activity import UTILS_JS, VAULT_JS

WHO = ("admin/root", "developers/bob", "security/carol")


@dataclass
class Hosted:
    proxy: RunningProxy
    tokens: dict[str, str]
    upstream: FakeRegistry

    def search(self, who: str, **params: str | int) -> dict[str, object]:
        r = self.proxy.client.get("/-/v1/search", params=params, headers=auth(self.tokens[who]))
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body


def names(body: dict[str, object]) -> list[str]:
    objects = body["objects"]
    assert isinstance(objects, list)
    return [o["package"]["name"] for o in objects]


@pytest.fixture
def hosted(registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path) -> Hosted:
    registry.search = True
    registry.add("left-pad-utils", FakeVersion("1.0.0", extra={"description": "padding utils"}))
    registry.add("lodash-utils", FakeVersion("4.0.0", extra={"description": "more utils"}))
    # A public package on the internal scope: never offered (Floodgate never serves it).
    registry.add("@acme/squat-utils", FakeVersion("9.9.9", extra={"description": "utils"}))
    tokens = make_tokens(tmp_path / "cache", WHO)
    proxy = make_proxy(internal_scopes="@acme", internal_readers={"@acme/vault": "security"})
    root = tokens["admin/root"]
    for name, description, keywords, code in (
        ("@acme/utils", "Array utils for Acme services", ("arrays", "helpers"), UTILS_JS),
        ("@acme/vault", "Secret sealing utils", ("crypto",), VAULT_JS),
    ):
        r = publish(
            proxy.client,
            root,
            name,
            "1.0.0",
            description=description,
            keywords=keywords,
            code=code,
        )
        assert r.status_code == 201, r.text
    return Hosted(proxy, tokens, registry)


def test_hosted_matches_come_first_then_the_upstream_without_internal_names(
    hosted: Hosted,
) -> None:
    body = hosted.search("developers/bob", text="utils")
    assert names(body) == ["@acme/utils", "left-pad-utils", "lodash-utils"]
    assert body["total"] == 3
    first = body["objects"][0]  # type: ignore[index]
    assert first["package"]["version"] == "1.0.0"
    assert first["package"]["description"] == "Array utils for Acme services"
    assert first["package"]["keywords"] == ["arrays", "helpers"]
    assert first["package"]["publisher"]["username"] == "root"  # from the audit log
    assert first["package"]["maintainers"] == []  # npm's output reads it: always a list
    assert first["package"]["date"].endswith("Z")
    assert 0 < first["score"]["final"] <= 1


def test_a_package_the_caller_may_not_read_is_never_named(hosted: Hosted) -> None:
    assert "@acme/vault" not in names(hosted.search("developers/bob", text="utils"))
    assert names(hosted.search("developers/bob", text="sealing")) == []
    assert names(hosted.search("developers/bob", text="@acme/vault")) == []
    # Its readers (and admins) find it.
    assert names(hosted.search("security/carol", text="sealing")) == ["@acme/vault"]
    assert "@acme/vault" in names(hosted.search("admin/root", text="utils"))


def test_keywords_and_the_exact_name_are_found(hosted: Hosted) -> None:
    assert names(hosted.search("developers/bob", text="helpers")) == ["@acme/utils"]
    assert names(hosted.search("developers/bob", text="keywords:arrays")) == ["@acme/utils"]
    assert names(hosted.search("developers/bob", text="@acme/utils"))[0] == "@acme/utils"


def test_from_and_size_page_through_hosted_then_upstream(hosted: Hosted) -> None:
    upstream = hosted.upstream
    # (An internal name in the upstream's page is dropped from it, leaving the page short: the
    # squatter would sort first here.)
    del upstream.packuments["@acme/squat-utils"]
    upstream.seen.clear()
    page1 = hosted.search("developers/bob", text="utils", size=1, **{"from": 0})
    assert names(page1) == ["@acme/utils"]
    assert page1["total"] == 3
    page2 = hosted.search("developers/bob", text="utils", size=1, **{"from": 1})
    assert names(page2) == ["left-pad-utils"]
    page3 = hosted.search("developers/bob", text="utils", size=2, **{"from": 2})
    assert names(page3) == ["lodash-utils"]
    asked = [parse_qs(s.query) for s in upstream.requests_for("/-/v1/search")]
    # The upstream is asked for the rest of each page, at its own offset.
    assert [(q["from"], q["size"]) for q in asked] == [
        (["0"], ["1"]),
        (["0"], ["1"]),
        (["1"], ["2"]),
    ]
    assert all(q["text"] == ["utils"] for q in asked)


def test_an_upstream_without_search_leaves_the_hosted_results(hosted: Hosted) -> None:
    hosted.upstream.search = False
    r = hosted.proxy.client.get(
        "/-/v1/search", params={"text": "utils"}, headers=auth(hosted.tokens["developers/bob"])
    )
    assert r.status_code == 200
    assert names(r.json()) == ["@acme/utils"]
    assert "offers no search" in r.headers["npm-notice"]


def test_anonymous_callers_never_see_hosted_packages(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.search = True
    registry.add("left-pad-utils", FakeVersion("1.0.0", extra={"description": "padding utils"}))
    # No token exists: everyone is anonymous, and hosted packages are not for anonymous readers.
    proxy = make_proxy(internal_scopes="@acme")
    body = proxy.client.get("/-/v1/search", params={"text": "utils"}).json()
    assert names(body) == ["left-pad-utils"]


def test_bad_paging_parameters_are_a_clear_400(hosted: Hosted) -> None:
    r = hosted.proxy.client.get(
        "/-/v1/search",
        params={"text": "utils", "size": "lots"},
        headers=auth(hosted.tokens["developers/bob"]),
    )
    assert r.status_code == 400
    assert "size='lots' is not a whole number" in r.json()["error"]
