"""One client cannot make Floodgate flood the upstream or re-render for every Host (5, 6)."""

from __future__ import annotations

import gzip
import threading
import time

import httpx
import orjson

from proxy.web.routes import MAX_AUDIT_NAMES, MAX_BASES
from tests.conftest import ProxyFactory
from tests.fakes.packages import clean
from tests.fakes.registry import FakeRegistry

AUDIT = "/-/npm/v1/security/advisories/bulk"


def test_an_oversized_audit_is_refused_before_any_upstream_work(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy()
    wanted = {f"fg-n{i}": ["1.0.0"] for i in range(MAX_AUDIT_NAMES + 1)}
    body = gzip.compress(orjson.dumps(wanted))  # ~100 KB, as npm sends it
    r = proxy.client.post(AUDIT, content=body, headers={"content-encoding": "gzip"})
    assert r.status_code == 413
    assert f"at most {MAX_AUDIT_NAMES} packages" in r.json()["error"]
    assert registry.seen == []


def test_one_audit_at_a_time_per_client(registry: FakeRegistry, make_proxy: ProxyFactory) -> None:
    registry.add("fg-slow", clean("1.0.0"))
    registry.faults["fg-slow"] = "hold"
    proxy = make_proxy(read_timeout=30, upstream_deadline=30)
    first: list[httpx.Response] = []

    def audit() -> None:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            first.append(client.post(AUDIT, json={"fg-slow": ["1.0.0"]}))

    worker = threading.Thread(target=audit)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not registry.requests_for("/fg-slow"):  # the first audit is at the upstream
            assert time.monotonic() < deadline, "the first audit never reached the upstream"
            time.sleep(0.02)
        second = proxy.client.post(AUDIT, json={"fg-slow": ["1.0.0"]})
        assert second.status_code == 429
        assert second.headers["retry-after"] == "5"
        assert "still running" in second.json()["error"]
    finally:
        registry.release.set()
        worker.join(30)
    assert first[0].status_code == 200
    assert proxy.client.post(AUDIT, json={"fg-slow": ["1.0.0"]}).status_code == 200


def test_distinct_host_headers_share_a_few_renders(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-hosted", clean("1.0.0"))
    proxy = make_proxy()
    listen = f"http://127.0.0.1:{proxy.settings.port}"  # the listen address as configured
    links = []
    for i in range(12):
        r = proxy.client.get("/fg-hosted", headers={"host": f"h{i}.invalid"})
        assert r.status_code == 200
        links.append(r.json()["versions"]["1.0.0"]["dist"]["tarball"])
    own = [f"http://h{i}.invalid/fg-hosted/-/fg-hosted-1.0.0.tgz" for i in range(MAX_BASES)]
    assert links[:MAX_BASES] == own
    assert set(links[MAX_BASES:]) == {f"{listen}/fg-hosted/-/fg-hosted-1.0.0.tgz"}
    # Hosts seen first keep their own links.
    again = proxy.client.get("/fg-hosted", headers={"host": "h0.invalid"})
    assert again.json()["versions"]["1.0.0"]["dist"]["tarball"] == own[0]


def test_public_url_is_the_one_base(registry: FakeRegistry, make_proxy: ProxyFactory) -> None:
    registry.add("fg-hosted", clean("1.0.0"))
    proxy = make_proxy(public_url="https://npm.example.invalid/")
    for i in range(3):
        doc = proxy.client.get("/fg-hosted", headers={"host": f"h{i}.invalid"}).json()
        tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
        assert tarball == "https://npm.example.invalid/fg-hosted/-/fg-hosted-1.0.0.tgz"
