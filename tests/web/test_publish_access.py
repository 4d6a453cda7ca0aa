"""`npm access` questions about hosted packages, as each npm asks them."""

from __future__ import annotations

import pytest

from tests.conftest import ProxyFactory


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/-/package/@fg-int%2fthing/visibility", {"public": False}),  # npm 10 and later
        ("/-/package/@fg-int%2fthing/access", {"access": "private"}),  # older npm
    ],
)
def test_access_status_of_a_hosted_package_is_private(
    make_proxy: ProxyFactory, path: str, answer: dict[str, object]
) -> None:
    proxy = make_proxy(internal_scopes="@fg-int", internal_anonymous_read=True)
    got = proxy.client.get(path)
    assert got.status_code == 200
    assert got.json() == answer


def test_access_status_of_a_proxied_package_says_whom_to_ask(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(internal_scopes="@fg-int", internal_anonymous_read=True)
    got = proxy.client.get("/-/package/left-pad/visibility")
    assert got.status_code == 405
    assert "left-pad is not hosted by Floodgate" in got.json()["error"]


def test_access_status_needs_read_access(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(internal_scopes="@fg-int")  # anonymous reads of hosted packages: off
    got = proxy.client.get("/-/package/@fg-int%2fthing/visibility")
    assert got.status_code == 401
    assert "floodgate token create" in got.json()["error"]
