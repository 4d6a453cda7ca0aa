"""Shared fixtures: a fake upstream registry and Floodgate proxies, real servers on loopback."""

from __future__ import annotations

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
    """Start a Floodgate in front of `registry`; keyword arguments override settings."""
    running: list[RunningProxy] = []

    def start(**overrides: Any) -> RunningProxy:
        values: dict[str, Any] = {
            "upstream": registry.url,
            "cache_dir": str(tmp_path / "cache"),
            "render_workers": 0,
            "read_timeout": 2.0,
            "connect_timeout": 2.0,
            "upstream_deadline": 5.0,
            "port": 0,
        }
        values.update(overrides)
        settings = resolve_upstream(load_settings(values, env={}), discover=lambda: None)
        server = UvicornThread(create_app(settings))
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
