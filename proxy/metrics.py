"""Prometheus metrics, with the standard client library (`prometheus_client`).

Two kinds, kept apart on purpose:

- Process-wide instruments in `REGISTRY` for work off the warm path: upstream requests (a
  latency histogram by kind, errors by kind and error class), tarball scans, policy reloads and
  policy decisions (by action, rule and where they were made). Their labels are bounded: kinds
  and error classes are fixed sets, rule ids come from the policy file.
- Per-app state read at scrape time (`ServiceCollector`): requests by route template, method
  and status, and cache states, counted by the access middleware in a plain dictionary (a dict
  increment costs ~50 ns; a client-library `labels().inc()` with its lock costs ~20 times
  that, on every warm request); upstream reachability, the policy in force and the OSV feed's
  age, read from the objects that know them.

`exposition(...)` renders both in the text format Prometheus scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)

UPSTREAM_SECONDS = Histogram(
    "floodgate_upstream_request_seconds",
    "Time of upstream requests, until the answer is read (packument, tarball, forward)",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
UPSTREAM_ERRORS = Counter(
    "floodgate_upstream_errors",
    "Upstream requests that failed, by kind and Floodgate's error class",
    ["kind", "error"],
    registry=REGISTRY,
)
SCAN_SECONDS = Histogram(
    "floodgate_scan_seconds",
    "Time of tarball scans by the detector",
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HOSTED_CHANGES = Counter(
    "floodgate_hosted_changes",
    "Changes to hosted packages by kind (publish, unpublish, deprecate, dist-tag) and refused "
    "attempts (refused)",
    ["event"],
    registry=REGISTRY,
)
SCAN_TIMEOUTS = Counter(
    "floodgate_scan_timeouts",
    "Tarball requests decided without their scan (it did not finish within scan_timeout)",
    registry=REGISTRY,
)
POLICY_RELOADS = Counter(
    "floodgate_policy_reloads",
    "Policy reloads: applied (a new policy in force), unchanged (same digest), failed (the "
    "previous policy stays in force)",
    ["outcome"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "floodgate_decisions",
    "Policy decisions written to the decision log, by action, rule and where they were made",
    ["action", "rule", "via"],
    registry=REGISTRY,
)

# Every error class an upstream request can end in is a label value: a fixed set.
for _kind in ("packument", "tarball", "forward"):
    UPSTREAM_SECONDS.labels(_kind)
for _outcome in ("applied", "unchanged", "failed"):
    POLICY_RELOADS.labels(_outcome)


# -- routes -----------------------------------------------------------------------------------

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
SYSTEM_ROUTES = frozenset(
    {
        "/-/ping",
        "/-/ready",
        "/-/metrics",
        "/-/whoami",
        "/-/v1/search",
        "/-/npm/v1/keys",
        "/-/npm/v1/security/advisories/bulk",
        "/-/npm/v1/security/audits",
        "/-/npm/v1/security/audits/quick",
        "/-/dashboard",
        "/-/dashboard/log",
        "/-/dashboard/package",
        "/-/dashboard/policies",
    }
)
SYSTEM_PREFIXES = (
    ("/-/blocked/", "/-/blocked/{reason}/{package}/-/{file}"),
    ("/-/floodgate/verdict/", "/-/floodgate/verdict/{package}/{version}"),
    ("/-/npm/v1/attestations/", "/-/npm/v1/attestations/{spec}"),
    ("/-/package/", "/-/package/{package}/dist-tags"),
    ("/-/dashboard/package/", "/-/dashboard/package/{package}"),
    ("/-/dashboard/assets/", "/-/dashboard/assets/{file}"),
)


def route_of(path: str) -> str:
    """The route template of a request path: a bounded label, never the path itself (pure).

    Package paths are `/{package}`, `/{package}/{version}` and `/{package}/-/{file}`; a scoped
    name (`/@scope/name`, as the server decodes `%2f`) is one package. Unknown system paths are
    all `/-/{other}`.
    """
    if not path.startswith("/-/"):
        if "/-/" in path:
            return "/{package}/-/{file}"
        slashes = path.count("/") - (1 if path.startswith("/@") else 0)
        return "/{package}" if slashes <= 1 else "/{package}/{version}"
    if path in SYSTEM_ROUTES:
        return path
    trimmed = path.rstrip("/")
    if trimmed in SYSTEM_ROUTES:
        return trimmed
    for prefix, template in SYSTEM_PREFIXES:
        if path.startswith(prefix):
            return template
    return "/-/{other}"


def method_of(method: str) -> str:
    """The method as a label: the known ones, else `other` (clients send any token)."""
    return method if method in METHODS else "other"


# -- per-app state ------------------------------------------------------------------------------


@dataclass
class RequestCounts:
    """Requests by (route, method, status) and cache states by (route, state): plain dicts
    the access middleware increments on the event loop's thread."""

    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    cache: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, method: str, path: str, status: int, cache: str | None) -> None:
        route = route_of(path)
        key = (route, method_of(method), str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        if cache is not None:
            ckey = (route, cache)
            self.cache[ckey] = self.cache.get(ckey, 0) + 1


class HealthSource(Protocol):
    """What the scrape reads of the running service (see `proxy.health`)."""

    def gauges(self) -> Iterable[tuple[str, str, dict[str, str], float]]:
        """(name, help, labels, value) for each gauge sample."""
        ...


class ServiceCollector(Collector):
    """Requests, cache states and the service's health gauges, read at scrape time."""

    def __init__(self, counts: RequestCounts, health: HealthSource | None = None):
        self.counts = counts
        self.health = health

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "floodgate_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), n in list(self.counts.requests.items()):
            requests.add_metric([route, method, status], n)
        yield requests
        cache = CounterMetricFamily(
            "floodgate_cache",
            "Cache state of answered requests (hit, miss, revalidated, stale), by route template",
            labels=["route", "state"],
        )
        for (route, state), n in list(self.counts.cache.items()):
            cache.add_metric([route, state], n)
        yield cache
        if self.health is None:
            return
        families: dict[str, GaugeMetricFamily] = {}
        for name, text, labels, value in self.health.gauges():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, text, labels=list(labels))
            family.add_metric(list(labels.values()), value)
        yield from families.values()


def exposition(collector: Collector) -> bytes:
    """The text Prometheus scrapes: the process-wide instruments, then this app's state."""
    own = CollectorRegistry(auto_describe=False)
    own.register(collector)
    return generate_latest(REGISTRY) + generate_latest(own)


class Timer:
    """`with Timer(histogram.observe):` observes the block's duration in seconds."""

    __slots__ = ("_observe", "_started")

    def __init__(self, observe: Callable[[float], object]):
        self._observe = observe
        self._started = 0.0

    def __enter__(self) -> Timer:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observe(time.perf_counter() - self._started)
