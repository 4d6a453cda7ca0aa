"""A monotonic clock that moves only when a test moves it: waiting for a TTL without sleeping."""

from __future__ import annotations

import time


class ManualClock:
    """Starts at the real monotonic time (so it is comparable to it) and then stands still;
    `sleep` is an async sleep that moves it instead of waiting (and lists what it was asked)."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds
