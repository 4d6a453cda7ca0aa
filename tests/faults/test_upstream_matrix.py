"""Every upstream fault on a cold request: a clear 502/503/403 naming the package, never a 500,
nothing half-written in the cache, nothing fetched from another host."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import ProxyFactory, RunningProxy
from tests.fakes.packages import clean
from tests.fakes.registry import FakeRegistry, running_registry
from tests.faults.conftest import LogWatch

LIMITS = {
    "max_packument_mb": 8,
    "read_timeout": 1.0,
    "upstream_deadline": 3.0,
    "prefetch_scans": 0,
}

PACKUMENT_FAULTS = [
    ("500", 502, "upstream answered 500"),
    ("malformed", 502, ""),
    ("drop", 502, "dropped"),
    ("gzip-cut", 502, ""),
    ("bomb", 502, "over the"),
    ("big", 502, "over the"),
    ("drip", 502, "timed out"),
    ("hold", 502, "timed out"),
    ("503", 503, "retry after"),
    ("429", 503, "retry after"),
]


def assert_cache_clean(proxy: RunningProxy, wait: float = 10.0) -> None:
    """No temporary (half-written) file left anywhere in the cache. The disk copy of a
    packument is written in the background (temporary file, then rename), so one may be in
    flight for a moment on a loaded machine: polled, bounded, never left over."""
    cache = Path(proxy.settings.cache_dir)
    deadline = time.monotonic() + wait
    while True:
        leftovers = [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert leftovers == []


@pytest.mark.parametrize(("fault", "status", "words"), PACKUMENT_FAULTS)
def test_packument_faults(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    log_watch: LogWatch,
    fault: str,
    status: int,
    words: str,
) -> None:
    registry.add("fg-faulty", clean("1.0.0"))
    registry.faults["fg-faulty"] = fault
    registry.bomb_bytes = 16 * 1024 * 1024
    registry.big_bytes = 16 * 1024 * 1024
    registry.drip_interval = 0.2
    registry.hold_limit = 10
    proxy = make_proxy(**LIMITS)
    try:
        r = proxy.client.get("/fg-faulty")
    finally:
        registry.release.set()
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert "fg-faulty" in error
    assert words in error
    assert not log_watch.exceptions()
    # Other packages are unaffected, unless the upstream asked for a pause (then it gets one).
    registry.add("fg-fine", clean("1.0.0"))
    assert proxy.client.get("/fg-fine").status_code == (503 if status == 503 else 200)
    assert_cache_clean(proxy)


@pytest.mark.parametrize(
    ("fault", "status"), [("integrity", 502), ("drop", 502), ("500", 502), ("503", 503)]
)
def test_tarball_faults(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    log_watch: LogWatch,
    fault: str,
    status: int,
) -> None:
    registry.add("fg-faulty", clean("1.0.0"))
    path = registry.tarball_path("fg-faulty", "1.0.0")
    proxy = make_proxy(**LIMITS)
    assert proxy.client.get("/fg-faulty").status_code == 200
    registry.faults[path] = fault
    r = proxy.client.get(path)
    assert r.status_code == status, r.text
    assert "fg-faulty" in r.json()["error"]
    assert not log_watch.exceptions()
    assert_cache_clean(proxy)
    stored = [p for p in (Path(proxy.settings.cache_dir) / "tarballs").rglob("*") if p.is_file()]
    assert stored == []  # nothing unverified kept


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:{canary}/stolen",
        "http://[::ffff:127.0.0.1]:{canary}/stolen",
        "http://user@127.0.0.1:{canary}@evil.invalid/",
        "file:///etc/passwd",
        "//169.254.169.254/x",
    ],
)
def test_redirects_never_leave_the_upstream(
    registry: FakeRegistry, make_proxy: ProxyFactory, log_watch: LogWatch, target: str
) -> None:
    with running_registry() as (canary, _server):
        registry.add("fg-redirected", clean("1.0.0"))
        registry.faults["fg-redirected"] = "redirect"
        registry.redirect_to = target.format(canary=canary.url.rsplit(":", 1)[1])
        proxy = make_proxy(**LIMITS)
        r = proxy.client.get("/fg-redirected")
        assert r.status_code in (403, 502), r.text
        assert "fg-redirected" in r.json()["error"] or "refusing" in r.json()["error"]
        assert canary.seen == []
    assert not log_watch.exceptions()
