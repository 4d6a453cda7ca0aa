"""Metrics at `/-/metrics` and readiness at `/-/ready`, on a running Floodgate in front of the
fake upstream: scrape, make requests, scrape again, compare."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.errors import (
    ForbiddenOrigin,
    NotFound,
    PolicyError,
    UpstreamBadResponse,
    UpstreamBusy,
    UpstreamUnavailable,
)
from proxy.health import (
    FAILURES_NOT_READY,
    FRESH,
    UpstreamHealth,
    feed_check,
    policy_check,
    readiness,
    storage_check,
    upstream_check,
)
from proxy.metrics import REGISTRY, RequestCounts, ServiceCollector, exposition, route_of
from proxy.policy.holder import PolicyHolder
from tests.conftest import ProxyFactory, RunningProxy
from tests.fakes.packages import clean, farm
from tests.fakes.registry import FakeRegistry

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, sorted labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(proxy: RunningProxy) -> Samples:
    r = proxy.client.get("/-/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/left-pad", "/{package}"),
        ("/@scope/name", "/{package}"),
        ("/left-pad/1.0.0", "/{package}/{version}"),
        ("/@scope/name/latest", "/{package}/{version}"),
        ("/left-pad/-/left-pad-1.0.0.tgz", "/{package}/-/{file}"),
        ("/@scope/name/-/name-1.0.0.tgz", "/{package}/-/{file}"),
        ("/", "/{package}"),
        ("/-/ping", "/-/ping"),
        ("/-/ready", "/-/ready"),
        ("/-/metrics", "/-/metrics"),
        ("/-/dashboard/", "/-/dashboard"),
        ("/-/dashboard/package/@evil/<script>", "/-/dashboard/package/{package}"),
        ("/-/blocked/Floodgate-x/a/-/a-1.0.0.tgz", "/-/blocked/{reason}/{package}/-/{file}"),
        ("/-/floodgate/verdict/x/1.0.0", "/-/floodgate/verdict/{package}/{version}"),
        ("/-/package/x/dist-tags", "/-/package/{package}/dist-tags"),
        ("/-/anything/else/at/all", "/-/{other}"),
    ],
)  # fmt: skip
def test_route_labels_are_templates_never_paths(path: str, route: str) -> None:
    assert route_of(path) == route


def test_request_counts_bound_methods_and_render_as_counters() -> None:
    counts = RequestCounts()
    counts.count("GET", "/a", 200, "miss")
    counts.count("GET", "/b", 200, "hit")
    counts.count("BREW", "/a", 405, None)
    samples = parse(exposition(ServiceCollector(counts)).decode())
    route = "/{package}"
    total = "floodgate_requests_total"
    assert value(samples, total, route=route, method="GET", status="200") == 2
    assert value(samples, total, route=route, method="other", status="405") == 1
    assert value(samples, "floodgate_cache_total", route=route, state="hit") == 1
    assert value(samples, "floodgate_cache_total", route=route, state="miss") == 1


def test_scrape_requests_scrape(registry: FakeRegistry, make_proxy: ProxyFactory) -> None:
    registry.add("fg-clean", clean("1.0.0"), clean("1.0.1"))
    registry.add("fg-farm", farm("1.0.0"))
    proxy = make_proxy(prefetch_scans=0)
    before = scrape(proxy)

    assert proxy.client.get("/fg-clean").status_code == 200  # miss: from the upstream
    assert proxy.client.get("/fg-clean").status_code == 200  # hit
    assert proxy.client.get("/fg-clean/-/fg-clean-1.0.1.tgz").status_code == 200
    assert proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz").status_code == 302  # blocked
    assert proxy.client.get("/fg-nope").status_code == 404
    after = scrape(proxy)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "floodgate_requests_total"
    assert delta(requests, route="/{package}", method="GET", status="200") == 2
    assert delta(requests, route="/{package}", method="GET", status="404") == 1
    assert delta(requests, route="/{package}/-/{file}", method="GET", status="200") == 1
    assert delta(requests, route="/{package}/-/{file}", method="GET", status="302") == 1
    # The first scrape is counted once it is answered: the second one sees it.
    assert delta(requests, route="/-/metrics", method="GET", status="200") == 1
    assert delta("floodgate_cache_total", route="/{package}", state="miss") >= 1
    assert delta("floodgate_cache_total", route="/{package}", state="hit") == 1
    # Upstream: packuments of fg-clean, fg-farm, fg-nope (404 is an answer, not an error) and
    # two tarballs.
    assert delta("floodgate_upstream_request_seconds_count", kind="packument") == 3
    assert delta("floodgate_upstream_request_seconds_count", kind="tarball") == 2
    assert delta("floodgate_upstream_errors_total", kind="packument", error="NotFound") == 0
    # Both tarballs were scanned; the farm's was blocked by the default policy's rule.
    assert delta("floodgate_scan_seconds_count") == 2
    blocks = {
        labels: v - before.get((name, labels), 0.0)
        for (name, labels), v in after.items()
        if name == "floodgate_decisions_total" and ("action", "block") in labels
    }
    assert sum(blocks.values()) >= 1
    assert all(("via", "tarball") in labels for labels, d in blocks.items() if d)
    assert value(after, "floodgate_upstream_up") == 1
    policy = [k for k in after if k[0] == "floodgate_policy_info"]
    assert len(policy) == 1
    assert ("name", "default") in policy[0][1]


def test_upstream_errors_are_counted_and_make_floodgate_unready(
    registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    proxy = make_proxy(upstream=dead)
    before = scrape(proxy)
    for _ in range(FAILURES_NOT_READY):
        assert proxy.client.get("/fg-anything").status_code == 502
    after = scrape(proxy)
    errors = "floodgate_upstream_errors_total"
    labels = {"kind": "packument", "error": "UpstreamUnavailable"}
    assert value(after, errors, **labels) - value(before, errors, **labels) == FAILURES_NOT_READY
    assert value(after, "floodgate_upstream_up") == 0
    assert value(after, "floodgate_upstream_consecutive_failures") == FAILURES_NOT_READY
    # Readiness reads the recent outcomes: no probe needed, 503 with why.
    r = proxy.client.get("/-/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False
    assert body["upstream"]["source"] == "recent requests"
    assert body["error"].startswith(f"the upstream {dead} is not usable: ")
    assert body["policy"]["ok"] is True


def test_readiness_uses_traffic_not_a_probe_per_check(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-clean", clean("1.0.0"))
    proxy = make_proxy(prefetch_scans=0)
    assert proxy.client.get("/fg-clean").status_code == 200
    seen = len(registry.seen)
    for _ in range(5):
        r = proxy.client.get("/-/ready")
        assert r.status_code == 200
        assert r.json()["upstream"]["source"] == "recent requests"
    assert len(registry.seen) == seen


# -- the pure parts -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_upstream_health_from_outcomes() -> None:
    clock = Clock()
    health = UpstreamHealth(clock)
    assert not health.fresh()
    assert health.reachable()
    health.failed("timed out")
    assert not health.reachable()  # never answered
    health.ok()
    health.failed("timed out")
    assert health.reachable()  # one failure among answers
    assert not upstream_check("u", health, probed=True).ok  # a probe speaks alone
    for _ in range(FAILURES_NOT_READY - 1):
        health.failed("timed out")
    check = upstream_check("u", health, probed=False)
    assert not check.ok
    assert check.problem == "the upstream u is not usable: timed out"
    assert health.fresh()
    clock.now += FRESH + 1
    assert not health.fresh()


@pytest.mark.parametrize(
    ("source", "loaded", "age", "error", "ok", "problem"),
    [
        (None, False, None, None, True, ""),
        ("feed.zip", True, 60.0, None, True, ""),
        ("feed.zip", False, None, None, False, "the OSV feed feed.zip is not loaded yet"),
        ("feed.zip", True, None, "404", False, "the OSV feed feed.zip could not be loaded: 404"),
        ("feed.zip", True, 7200.0, None, False, "last updated 7200s ago (stale after 3600s)"),
        ("feed.zip", True, 7200.0, "timed out", False, "(stale after 3600s): timed out"),
    ],
)
def test_feed_check(
    source: str | None, loaded: bool, age: float | None, error: str | None, ok: bool, problem: str
) -> None:
    check = feed_check(source, loaded, age, 240.0, 10, error)
    assert check.ok is ok
    assert problem in check.problem
    assert bool(check.problem) is not ok
    assert readiness([check])[0], "a feed problem is a warning, never unreadiness"


def test_readiness_body_says_every_part_and_why() -> None:
    health = UpstreamHealth(Clock())
    health.ok()
    checks = (
        upstream_check("u", health, probed=False),
        policy_check("strict", "abc", 2, "line 3: bad"),
        feed_check("f.zip", False, None, 240.0, 0, None),
    )
    ready, body = readiness(checks)
    assert ready  # the feed's problem is reported, and installs go on
    assert body["warnings"] == ["the OSV feed f.zip is not loaded yet"]
    assert "error" not in body
    health.failed("timed out")
    health.failed("timed out")
    health.failed("timed out")
    down, down_body = readiness((upstream_check("u", health, probed=False), *checks[1:]))
    assert not down
    assert down_body["error"] == "the upstream u is not usable: timed out"
    assert down_body["warnings"] == ["the OSV feed f.zip is not loaded yet"]
    assert body["policy"] == {
        "ok": True,
        "enforced": True,
        "name": "strict",
        "digest": "abc",
        "reloads": 2,
        "last_reload_error": "line 3: bad",
    }
    upstream = body["upstream"]
    assert isinstance(upstream, dict)
    assert upstream["ok"] is True


def test_policy_reloads_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nname: one\nrules: []\n")
    holder = PolicyHolder(path)

    def count(outcome: str) -> float:
        found = REGISTRY.get_sample_value("floodgate_policy_reloads_total", {"outcome": outcome})
        return found or 0.0

    applied, failed = count("applied"), count("failed")
    path.write_text("version: 1\nname: two\nrules: []\n")
    assert holder.reload()
    path.write_text("version: [broken\n")
    assert not holder.reload()
    assert (count("applied") - applied, count("failed") - failed) == (1, 1)
    assert (holder.reloads, holder.failures) == (1, 1)
    assert holder.error
    assert holder.policy.name == "two"
    with pytest.raises(PolicyError):
        PolicyHolder(path)


def test_a_quiet_proxy_probes_once_for_repeated_checks(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(prefetch_scans=0)
    first = proxy.client.get("/-/ready")
    assert first.status_code == 200
    assert first.json()["upstream"]["source"] == "probe"
    again = proxy.client.get("/-/ready")  # the probe's outcome is fresh: no second probe
    assert again.json()["upstream"]["source"] == "recent requests"
    assert len(registry.requests_for("/-/ping")) == 1


@pytest.mark.parametrize(
    ("error", "reachable", "counted"),
    [
        (None, True, None),
        (NotFound("gone"), True, None),  # an answer
        (UpstreamBadResponse("bad gzip"), True, "UpstreamBadResponse"),
        (UpstreamBusy("429", 5.0), None, "UpstreamBusy"),  # asked to wait: says nothing
        (ForbiddenOrigin("not ours"), None, "ForbiddenOrigin"),  # never asked
        (UpstreamUnavailable("timed out"), False, "UpstreamUnavailable"),
    ],
)
def test_upstream_outcomes_for_health_and_errors(
    error: Exception | None, reachable: bool | None, counted: str | None
) -> None:
    from proxy.upstream.client import _Observed

    health = UpstreamHealth(Clock())
    labels = {"kind": "tarball", "error": counted or "-"}
    before = REGISTRY.get_sample_value("floodgate_upstream_errors_total", labels) or 0.0
    with contextlib.suppress(Exception), _Observed(health, "tarball", False):
        if error is not None:
            raise error
    after = REGISTRY.get_sample_value("floodgate_upstream_errors_total", labels) or 0.0
    assert after - before == (1 if counted else 0)
    if reachable is None:
        assert (health.last_ok, health.last_failure) == (None, None)
    else:
        assert (health.failures == 0) is reachable
        assert (health.last_ok is not None) is reachable


def test_forwarded_server_errors_are_failures() -> None:
    from proxy.upstream.client import _Observed

    health = UpstreamHealth(Clock())
    with _Observed(health, "forward", True) as observed:
        observed.status = 503
    assert health.failures == 1
    assert health.error == "it answered 503"


@pytest.mark.parametrize(
    ("states", "ok", "problem"),
    [
        ([("the shared database", True, "ok")], True, ""),
        (
            [
                ("the shared database", False, "down for 3s: refused"),
                ("the object store", True, "ok"),
            ],
            False,
            "the shared database cannot be reached: serving from memory",
        ),
        (
            [("the shared database", False, "x"), ("the object store", False, "y")],
            False,
            "the shared database and the object store cannot be reached",
        ),
    ],
)
def test_storage_check_warns_and_stays_ready(
    states: list[tuple[str, bool, str]], ok: bool, problem: str
) -> None:
    check = storage_check(states)
    assert check.ok is ok
    assert problem in check.problem
    ready, body = readiness([check])
    assert ready  # shared by every replica: a 503 would take them all out at once
    assert body["storage"] == {"ok": ok, **{what: d for what, _, d in states}}
