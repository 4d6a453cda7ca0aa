"""Failures must not keep their data alive (defect 1: ~100 MB per failed oversized fetch)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from proxy.cache.memory import SingleFlight


class Chunks:
    """Stands for the chunks of a body being read when the fetch failed."""

    def __init__(self) -> None:
        self.data = bytearray(1024)


class Boom(Exception):
    pass


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """Only reference counting frees memory here: what survives is held, not merely late."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.anyio
@pytest.mark.usefixtures("no_cyclic_gc")
@pytest.mark.parametrize("waiters", [1, 3])
async def test_a_failed_flight_releases_what_it_held(waiters: int) -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    refs: list[weakref.ref[Chunks]] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def fetch() -> bytes:
        chunks = Chunks()
        refs.append(weakref.ref(chunks))
        started.set()
        await release.wait()
        raise Boom(f"over the limit after {len(chunks.data)} bytes")

    async def waiter() -> str:
        try:
            await flights.run("pkg", fetch)
        except Boom as exc:
            return str(exc)
        return "no error"

    tasks = [asyncio.ensure_future(waiter()) for _ in range(waiters)]
    await started.wait()
    release.set()
    results = await asyncio.gather(*tasks)
    assert results == ["over the limit after 1024 bytes"] * waiters
    del tasks
    await asyncio.sleep(0)  # let the done callbacks run
    assert not flights.in_flight("pkg")
    assert refs[0]() is None, "the failed fetch's data is still referenced"
