"""Shared fixtures: a fake upstream registry and Floodgate proxies, real servers on loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.app import create_app
from proxy.settings import Settings, load_settings, resolve_upstream
from tests.fakes.packages import FakeVersion
from tests.fakes.registry import FakeRegistry, UvicornThread, running_registry
from tests.servers import Postgres, S3Server, running_postgres, running_s3

# The OSV feed is on by default and its default source is on the internet: every command a test
# starts (in this process or a child, which inherits the environment) runs without it unless the
# test names a local feed.
os.environ["FLOODGATE_OSV_FEED"] = "off"


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like stay on this machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name: it would need a lookup outside


@pytest.fixture(autouse=True)
def loopback_only(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Fail any test that tries to connect anywhere but loopback (the refused connection looks
    like an unreachable host to the code under test, and the test fails when it ends). Tests
    marked `live` (opt-in by environment variable) are the exception."""
    outside: list[str] = []
    if request.node.get_closest_marker("live") is not None:
        yield outside
        return
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address: object) -> None:
        if not _is_loopback(address):
            outside.append(repr(address))
            raise ConnectionRefusedError(f"test guard: no connections outside loopback ({address})")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield outside
    assert not outside, f"the test tried to connect outside loopback: {outside}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with running_registry() as (reg, _server):
        yield reg


@dataclass
class RunningProxy:
    settings: Settings
    server: UvicornThread
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        if self.server.thread.is_alive():
            self.client.close()
            self.server.stop()


ProxyFactory = Callable[..., RunningProxy]


@pytest.fixture
def make_proxy(registry: FakeRegistry, tmp_path: Path) -> Iterator[ProxyFactory]:
    """Start a Floodgate in front of `registry`; keyword arguments override settings (`clock`:
    the monotonic clock its packument cache reads, a `ManualClock` to expire entries)."""
    running: list[RunningProxy] = []

    def start(clock: Callable[[], float] = time.monotonic, **overrides: Any) -> RunningProxy:
        values: dict[str, Any] = {
            "upstream": registry.url,
            "cache_dir": str(tmp_path / "cache"),
            "render_workers": 0,
            "read_timeout": 2.0,
            "connect_timeout": 2.0,
            "upstream_deadline": 5.0,
            "port": 0,
            "osv_feed": "off",  # on by default, and its default source is not on loopback
            "prefetch_pause": 0,  # tests that poll would be the clients prefetches wait for
        }
        values.update(overrides)
        settings = resolve_upstream(load_settings(values, env={}), discover=lambda: None)
        app = create_app(settings, clock=clock)
        server = UvicornThread(app)
        server.start()
        proxy = RunningProxy(settings, server, httpx.Client(base_url=server.url, timeout=30))
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        proxy.stop()


@pytest.fixture
def proxy(make_proxy: ProxyFactory) -> RunningProxy:
    return make_proxy()


def publish_basics(registry: FakeRegistry) -> None:
    """A small registry: a dependency chain, a scoped package, dist-tags and a prerelease."""
    registry.add(
        "fg-alpha",
        FakeVersion("1.0.0", {"fg-beta": "^2.0.0"}),
        FakeVersion("1.1.0", {"fg-beta": "^2.0.0"}),
        FakeVersion("2.0.0-beta.1", {"fg-beta": "^2.0.0"}),
        tags={"latest": "1.1.0", "next": "2.0.0-beta.1"},
    )
    registry.add(
        "fg-beta",
        FakeVersion("2.0.0", {"@fg-scope/gamma": "~1.0.0"}),
        FakeVersion("2.1.0", {"@fg-scope/gamma": "~1.0.0"}),
    )
    registry.add("@fg-scope/gamma", FakeVersion("1.0.0"), FakeVersion("1.0.1"))


# -- shared storage: real PostgreSQL and S3 servers (see tests/servers.py) --------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_s3() as server:
        yield server


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """A fresh, empty PostgreSQL database for this test."""
    return postgres.create_database()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://bucket/prefix`, a prefix of this test's own in the session's bucket (each bucket
    costs SeaweedFS volumes of its own), with the endpoint and credentials in the environment
    as an operator would set them."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return f"s3://{s3_server.bucket}/{uuid.uuid4().hex[:12]}"
