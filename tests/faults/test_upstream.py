"""A misbehaving upstream: busy answers, slow pools, hangs, drips, bombs, resets, redirects."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from proxy.errors import UpstreamBusy
from proxy.npm.names import PackageName
from proxy.settings import load_settings
from proxy.upstream.client import Fetched, UpstreamClient, retry_after_seconds
from tests.conftest import ProxyFactory
from tests.fakes.packages import FakeVersion
from tests.fakes.registry import FakeRegistry


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
    ],
)
def test_retry_after_parsing(header: str, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


def test_retry_after_http_date_in_the_future() -> None:
    got = retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0)
    assert got == pytest.approx(30.0)


@pytest.mark.parametrize("status", ["429", "503"])
def test_upstream_retry_after_is_honoured_and_passed_on(
    registry: FakeRegistry, make_proxy: ProxyFactory, status: str
) -> None:
    registry.add("fg-busy", FakeVersion("1.0.0"))
    registry.faults["fg-busy"] = status
    proxy = make_proxy()
    answers = [proxy.client.get("/fg-busy") for _ in range(21)]
    assert {r.status_code for r in answers} == {503}
    assert all(1 <= int(r.headers["retry-after"]) <= 30 for r in answers)
    assert "retry after" in answers[0].json()["error"]
    assert len(registry.requests_for("/fg-busy")) == 1  # not hammered


def test_stale_copy_served_while_upstream_is_busy(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-warm", FakeVersion("1.0.0"))
    proxy = make_proxy(packument_ttl=1e-6)
    assert proxy.client.get("/fg-warm").status_code == 200
    registry.faults["fg-warm"] = "429"
    for _ in range(5):
        r = proxy.client.get("/fg-warm")
        assert r.status_code == 200
        assert r.headers["x-floodgate-cache"] == "stale"
    assert len(registry.requests_for("/fg-warm")) <= 3


@pytest.mark.anyio
async def test_waiting_for_a_pooled_connection_is_not_a_read_timeout(
    registry: FakeRegistry,
) -> None:
    """Requests queued behind a busy pool wait for the deadline, not the read timeout."""
    names = [f"fg-pool-{i}" for i in range(4)]
    for name in names:
        registry.add(name, FakeVersion("1.0.0"))
        registry.faults[name] = "slow"
    registry.slow_seconds = 0.2
    settings = load_settings(
        {"upstream": registry.url, "read_timeout": 0.35, "upstream_deadline": 20}, env={}
    )
    client = UpstreamClient(settings, max_connections=1)
    got: list[object] = []
    try:

        async def one(name: str) -> None:
            got.append(await client.get_packument(PackageName.parse(name)))

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(one, name)
    finally:
        await client.aclose()
    assert len(got) == 4
    assert all(isinstance(g, Fetched) for g in got)


@pytest.mark.anyio
async def test_busy_client_refuses_without_asking(registry: FakeRegistry) -> None:
    registry.add("fg-busy", FakeVersion("1.0.0"))
    registry.faults["fg-busy"] = "503"
    registry.retry_after = "60"
    now = [1000.0]
    settings = load_settings({"upstream": registry.url}, env={})
    client = UpstreamClient(settings, clock=lambda: now[0])
    try:
        for _ in range(3):
            with pytest.raises(UpstreamBusy) as info:
                await client.get_packument(PackageName.parse("fg-busy"))
        assert info.value.retry_after == pytest.approx(60.0)
        assert len(registry.requests_for("/fg-busy")) == 1
        now[0] += 61  # the wait is over: asked again
        registry.faults.clear()
        assert isinstance(await client.get_packument(PackageName.parse("fg-busy")), Fetched)
    finally:
        await client.aclose()


def wait_for(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll `condition` until it holds; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_hung_revalidation_serves_stale_and_finishes_in_the_background(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-warm", FakeVersion("1.0.0"))
    registry.hold_limit = 60
    proxy = make_proxy(
        packument_ttl=1e-6, revalidate_wait=0.05, read_timeout=60, upstream_deadline=90
    )
    assert proxy.client.get("/fg-warm").headers["x-floodgate-cache"] == "miss"
    registry.faults["fg-warm"] = "hold"
    try:
        for _ in range(3):  # each answered while the upstream still holds the revalidation
            r = proxy.client.get("/fg-warm")
            assert r.status_code == 200
            assert r.headers["x-floodgate-cache"] == "stale"
            assert r.json()["name"] == "fg-warm"
        assert not registry.release.is_set()
        assert len(registry.requests_for("/fg-warm")) == 2  # one revalidation for all three
    finally:
        registry.faults.clear()
        registry.release.set()

    def fresh_again() -> bool:
        state = proxy.client.get("/fg-warm").headers["x-floodgate-cache"]
        return state in ("revalidated", "miss")

    wait_for(fresh_again, "the background revalidation to land")
