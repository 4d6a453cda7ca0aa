"""Readiness from what the proxy already knows: recent upstream outcomes, the policy in force
and the OSV feed's age.

`UpstreamHealth` is fed by the upstream client with the outcome of every request it makes, so
a readiness check costs no upstream request while traffic flows; only when the last outcome is
older than `FRESH` does a check ask the upstream once (concurrent checks share that probe).
`readiness` turns the three states into an answer (pure); the handler makes it JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FRESH = 30.0  # seconds an upstream outcome speaks for the upstream's state
FAILURES_NOT_READY = 3  # consecutive failed upstream requests that make Floodgate not ready
FEED_STALE_FACTOR = 6  # a feed older than this many refresh intervals (at least...)
FEED_STALE_MIN = 3600.0  # ...and at least this many seconds is stale


@dataclass
class UpstreamHealth:
    """Outcomes of upstream requests: reachable (any answer), or not (timeouts, connection
    errors, 5xx). Written on the event loop's thread by the upstream client."""

    clock: Callable[[], float] = time.monotonic
    last_ok: float | None = None
    last_failure: float | None = None
    failures: int = 0  # consecutive
    error: str = ""

    def ok(self) -> None:
        self.last_ok = self.clock()
        self.failures = 0

    def failed(self, error: str) -> None:
        self.last_failure = self.clock()
        self.failures += 1
        self.error = error

    def last_outcome_age(self) -> float | None:
        """Seconds since the last outcome, or None when there was none."""
        latest = max((t for t in (self.last_ok, self.last_failure) if t is not None), default=None)
        return None if latest is None else self.clock() - latest

    def fresh(self) -> bool:
        age = self.last_outcome_age()
        return age is not None and age <= FRESH

    def reachable(self) -> bool:
        """Whether recent outcomes say the upstream answers: not after FAILURES_NOT_READY
        failures in a row, nor after a failure when it never answered at all."""
        if self.failures >= FAILURES_NOT_READY:
            return False
        return not (self.failures and self.last_ok is None)


@dataclass(frozen=True, slots=True)
class Check:
    """One part of readiness: whether it is fine, and what it says."""

    name: str
    ok: bool
    detail: dict[str, object]
    problem: str = ""
    blocking: bool = True  # False: a problem is reported as a warning, still ready


def upstream_check(url: str, health: UpstreamHealth, probed: bool) -> Check:
    """The upstream's part (pure over `health`); `probed`: its state comes from a probe made
    for this check rather than from traffic."""
    # A probe speaks alone: one failed probe after a quiet hour means unreachable now.
    ok = health.failures == 0 if probed else health.reachable()
    age = health.last_outcome_age()
    detail: dict[str, object] = {
        "url": url,
        "reachable": ok,
        "source": "probe" if probed else "recent requests",
        "last_outcome_seconds_ago": round(age, 3) if age is not None else None,
        "consecutive_failures": health.failures,
    }
    problem = ""
    if not ok:
        detail["error"] = health.error
        problem = f"the upstream {url} is not usable: {health.error}"
    return Check("upstream", ok, detail, problem)


def policy_check(
    name: str | None,
    digest: str = "",
    reloads: int = 0,
    reload_error: str = "",
) -> Check:
    """The policy's part: one is in force (a failed reload keeps the previous one, which is
    reported but does not make Floodgate unready). `name` None: enforcement is off."""
    if name is None:
        return Check("policy", True, {"enforced": False})
    detail: dict[str, object] = {
        "enforced": True,
        "name": name,
        "digest": digest,
        "reloads": reloads,
    }
    if reload_error:
        detail["last_reload_error"] = reload_error
    return Check("policy", True, detail)


def feed_check(
    source: str | None,
    loaded: bool,
    age: float | None,
    interval: float,
    records: int,
    error: str | None,
) -> Check:
    """The OSV feed's part: off, or loaded and updated within its stale limit (pure). A feed
    that is missing or stale is a warning, not unreadiness: Floodgate still enforces its
    detector and policy, and taking every replica out of a load balancer because the feed's
    host is unreachable would stop installs altogether."""
    if source is None:
        return Check("osv_feed", True, {"enabled": False})
    limit = max(FEED_STALE_FACTOR * interval, FEED_STALE_MIN)
    detail: dict[str, object] = {
        "enabled": True,
        "source": source,
        "records": records,
        "age_seconds": round(age, 1) if age is not None else None,
        "stale_after_seconds": limit,
    }
    if error:
        detail["error"] = error
    if not loaded:
        return Check(
            "osv_feed", False, detail, f"the OSV feed {source} is not loaded yet", blocking=False
        )
    if age is None:
        why = f": {error}" if error else ""
        return Check(
            "osv_feed",
            False,
            detail,
            f"the OSV feed {source} could not be loaded{why}",
            blocking=False,
        )
    if age > limit:
        return Check(
            "osv_feed",
            False,
            detail,
            f"the OSV feed {source} was last updated {age:.0f}s ago (stale after {limit:.0f}s)"
            + (f": {error}" if error else ""),
            blocking=False,
        )
    return Check("osv_feed", True, detail)


def storage_check(states: Iterable[tuple[str, bool, str]]) -> Check:
    """The shared storage's part, from (what, ok, description) of each service (pure). A
    service down is a warning, not unreadiness: every replica shares it, so a 503 would take
    them all out of the load balancer while each still serves from memory, its local cache and
    the upstream."""
    states = list(states)
    detail: dict[str, object] = {what: description for what, _, description in states}
    down = [what for what, ok, _ in states if not ok]
    if not down:
        return Check("storage", True, detail)
    problem = (
        f"{' and '.join(down)} cannot be reached: serving from memory, the local cache and "
        "the upstream"
    )
    return Check("storage", False, detail, problem, blocking=False)


def readiness(checks: Iterable[Check]) -> tuple[bool, dict[str, object]]:
    """Ready when every blocking check is; the JSON body says each part, when not ready why,
    and the non-blocking problems (a stale feed) as warnings."""
    checks = list(checks)
    ready = all(c.ok for c in checks if c.blocking)
    body: dict[str, object] = {"ready": ready}
    body.update({c.name: {"ok": c.ok, **c.detail} for c in checks})
    if not ready:
        body["error"] = "; ".join(c.problem for c in checks if not c.ok and c.blocking)
    warnings = [c.problem for c in checks if not c.ok and not c.blocking]
    if warnings:
        body["warnings"] = warnings
    return ready, body
