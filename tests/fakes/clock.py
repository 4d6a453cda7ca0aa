"""A monotonic clock that moves only when a test moves it: waiting for a TTL without sleeping."""

from __future__ import annotations

import time


class ManualClock:
    """Starts at the real monotonic time (so it is comparable to it) and then stands still."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
