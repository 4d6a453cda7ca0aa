"""Hostile or careless clients at the HTTP edge: encodings, credentials, log injection."""

from __future__ import annotations

import pytest

from proxy.web.responses import accepts_coding
from tests.conftest import ProxyFactory, publish_basics
from tests.fakes.registry import FakeRegistry


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=0.5", True),
        ("GZIP;Q=0.001", True),
        ("deflate", False),
        ("", False),
        ("*", True),
        ("*;q=0", False),
        ("*;q=1, gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("identity, *;q=0", False),
        ("x-gzip", False),
        ("gzip;q=bogus", False),
    ],
)
def test_accept_encoding_q_values(header: str, expected: bool) -> None:
    assert accepts_coding(header, "gzip") is expected


def test_gzip_refused_with_q0_gets_identity(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    publish_basics(registry)
    proxy = make_proxy()
    r = proxy.client.get("/fg-alpha", headers={"accept-encoding": "gzip;q=0"})
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert r.json()["name"] == "fg-alpha"


def test_anonymous_whoami_never_carries_floodgates_token(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(forward_auth=True, upstream_token="service-secret")
    r = proxy.client.get("/-/whoami")
    assert r.status_code == 401
    assert "not logged in" in r.json()["error"]
    sent = [s.headers.get("authorization", "") for s in registry.seen]
    assert not any("service-secret" in a for a in sent)
    # A client's own credentials are still passed on.
    proxy.client.get("/-/whoami", headers={"authorization": "Bearer client-token"})
    seen = registry.requests_for("/-/whoami")
    assert [s.headers.get("authorization") for s in seen] == ["Bearer client-token"]
