"""A full disk: packages are served from the upstream uncached, refusals stay refusals (2)."""

from __future__ import annotations

import hashlib

from tests.conftest import ProxyFactory
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry
from tests.faults.conftest import LogWatch, SmallDisk


def test_full_disk_serves_uncached_and_still_refuses(
    small_disk: SmallDisk, registry: FakeRegistry, make_proxy: ProxyFactory, log_watch: LogWatch
) -> None:
    registry.add("fg-clean", clean("1.0.0"), clean("1.0.1"))
    registry.add("fg-other", clean("2.0.0"))
    registry.add("fg-farm", farm("1.0.0"))
    proxy = make_proxy(cache_dir=str(small_disk.path / "cache"), prefetch_scans=0)
    small_disk.fill()

    r = proxy.client.get("/fg-clean")
    assert r.status_code == 200, r.text
    tarball = proxy.client.get("/fg-clean/-/fg-clean-1.0.0.tgz")
    assert tarball.status_code == 200, tarball.text
    expected = registry.tarballs["/fg-clean/-/fg-clean-1.0.0.tgz"]
    assert hashlib.sha256(tarball.content).digest() == hashlib.sha256(expected).digest()

    assert proxy.client.get("/fg-farm").status_code == 200
    refused = proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz", follow_redirects=True)
    assert refused.status_code == 451, refused.text
    assert "token-farming" in refused.json()["error"]
    assert not log_watch.exceptions()

    small_disk.free()  # recovers by itself: the next tarball is cached again
    again = proxy.client.get("/fg-other/-/fg-other-2.0.0.tgz")
    assert again.status_code == 200
    stored = list((small_disk.path / "cache" / "tarballs").rglob("*"))
    assert any(p.is_file() and p.stat().st_size == len(again.content) for p in stored)
