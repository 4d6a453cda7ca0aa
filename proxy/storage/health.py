"""Whether a shared service (the database, the object store) answers, as last seen.

Stores report each call's outcome; the change is logged once (down, then back, with how long),
not on every request, and `/-/ready` shows the current state. While a service is down, callers
that would wait for it (a pooled connection, a connect timeout) can `fail_fast()` instead, for
`RETRY` seconds after each failure; the next call after that tries again, so a replica recovers
by itself when the service is back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

RETRY = 2.0  # seconds after a failure during which calls fail at once


class Health:
    def __init__(
        self,
        what: str,
        probe: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what = what
        self.probe = probe  # one cheap call that updates this state (blocking)
        self.error: str | None = None
        self.since = 0.0
        self._retry_at = 0.0
        self._clock = clock

    @property
    def ok(self) -> bool:
        return self.error is None

    def succeeded(self) -> None:
        if self.error is not None:
            down = self._clock() - self.since
            log.warning("%s answers again (it was down %.0fs)", self.what, down)
            self.error = None

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        if self.error is None:
            self.since = now
            log.error(
                "%s cannot be reached: %s; serving from memory, the local cache and the upstream",
                self.what,
                exc,
            )
        self.error = str(exc).strip() or type(exc).__name__
        self._retry_at = now + RETRY

    def fail_fast(self) -> bool:
        """True while a call would only wait for a service known to be down."""
        return self.error is not None and self._clock() < self._retry_at

    def recheck(self) -> None:
        """Probe a service that is down, unless it failed a moment ago (blocking)."""
        if self.error is not None and not self.fail_fast():
            with contextlib.suppress(Exception):  # the probe's own call records the outcome
                self.probe()

    def describe(self) -> str:
        if self.error is None:
            return "ok"
        return f"down for {self._clock() - self.since:.0f}s: {self.error}"
