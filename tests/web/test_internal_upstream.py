"""Internal names served by the organization's own registry (`internal_upstream`): asked of it
alone, inspected like everything else, and never of the public upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ProxyFactory
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry, running_registry


@pytest.fixture
def internal() -> Iterator[FakeRegistry]:
    with running_registry() as (reg, _server):
        yield reg


def test_internal_names_come_from_the_internal_registry_only(
    registry: FakeRegistry, internal: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("@acme/utils", clean("9.9.9"))  # a public squatter on the internal scope
    registry.add("acme-cli", clean("9.9.9"))
    registry.add("left-pad", clean("1.3.0"))
    internal.add("@acme/utils", clean("1.2.0"))
    internal.add("acme-cli", clean("2.0.0"))
    proxy = make_proxy(
        internal_scopes="@acme",
        internal_names="acme-cli",
        internal_upstream=internal.url,
        internal_upstream_token="internal-secret",
    )
    doc = proxy.client.get("/@acme%2futils").json()
    assert list(doc["versions"]) == ["1.2.0"]  # the internal one, not the squatter's 9.9.9
    tarball = doc["versions"]["1.2.0"]["dist"]["tarball"]
    assert tarball.startswith(proxy.url)  # served through Floodgate like any other
    got = proxy.client.get(tarball.removeprefix(proxy.url))
    assert got.status_code == 200
    assert got.content == internal.tarballs["/@acme/utils/-/utils-1.2.0.tgz"]
    assert list(proxy.client.get("/acme-cli").json()["versions"]) == ["2.0.0"]
    # Public names still come from the upstream, and never from the internal registry.
    assert list(proxy.client.get("/left-pad").json()["versions"]) == ["1.3.0"]
    assert [s.path for s in registry.seen if "acme" in s.path] == []
    assert [s.path for s in internal.seen if "left-pad" in s.path] == []
    # The internal registry's token goes to it alone.
    assert all(s.headers.get("authorization") == "Bearer internal-secret" for s in internal.seen)
    assert all("authorization" not in s.headers for s in registry.seen)


def test_internal_packages_are_inspected_too(
    registry: FakeRegistry, internal: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    internal.add("@acme/farm", farm("1.0.0"))
    proxy = make_proxy(internal_scopes="@acme", internal_upstream=internal.url, prefetch_scans=0)
    refused = proxy.client.get("/@acme/farm/-/farm-1.0.0.tgz", follow_redirects=True)
    assert refused.status_code in (403, 451)
    assert "tea.yaml" in refused.json()["error"]
    assert registry.seen == []


def test_without_an_internal_registry_internal_names_are_hosted_and_never_asked_upstream(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("@acme/utils", clean("9.9.9"))
    proxy = make_proxy(internal_scopes="@acme", internal_anonymous_read=True)
    r = proxy.client.get("/@acme%2futils")
    assert r.status_code == 404
    assert "internal package and has not been published here" in r.json()["error"]
    anonymous = make_proxy(internal_scopes="@acme").client.get("/@acme%2futils")
    assert anonymous.status_code == 401  # hosted packages are not for anonymous readers
    assert "needs a Floodgate token" in anonymous.json()["error"]
    assert registry.seen == []
