"""The heap trimmer: big documents (and only those) make the server hand freed heap pages back
to the OS, off every request's path, and settle the garbage collector (the cache frozen out of
its full collections' way)."""

from __future__ import annotations

import gc
import platform
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from proxy.app import build_service
from proxy.gate import Caller
from proxy.npm.names import PackageName
from proxy.npm.packument import Variant
from proxy.settings import Settings
from proxy.workers import (
    BIG_DOCUMENT,
    FULL_SETTLE_EVERY,
    ClientsFirst,
    RenderPool,
    Trimmer,
    limit_malloc_arenas,
    malloc_trim,
    settle_gc,
)
from tests.fakes.packages import FakeVersion
from tests.fakes.registry import FakeRegistry


async def in_background(fn: Callable[..., Awaitable[object]], *args: object) -> None:
    with ClientsFirst().background():
        await fn(*args)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(0.01)
    return True


def test_malloc_trim_is_called_where_glibc_has_it() -> None:
    assert malloc_trim() is (platform.libc_ver()[0] == "glibc")


def test_malloc_heaps_are_capped_unless_the_operator_set_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


class Node:
    """An object the cyclic collector tracks, to make cycles of."""

    def __init__(self) -> None:
        self.other: Node | None = None


def test_settling_freezes_what_lives_and_a_full_settle_collects_frozen_cycles() -> None:
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
        gone = weakref.ref(a)
        settle_gc(False)
        assert gc.get_freeze_count() > 0
        del a, b  # garbage now, but frozen while it was alive: collections pass it by
        gc.collect()
        assert gone() is not None
        settle_gc(True)
        assert gone() is None
        lone = Node()  # no cycle: freed when let go of, frozen or not
        settle_gc(False)
        lone_ref = weakref.ref(lone)
        del lone
        assert lone_ref() is None
    finally:
        gc.unfreeze()


@pytest.mark.anyio
async def test_the_collector_is_settled_before_each_trim_fully_when_idle() -> None:
    settles: list[bool] = []
    trimmer = Trimmer(lambda: None, threshold=1, delay=0, idle=None, settle=settles.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(trimmer.run)
        for n in range(1, FULL_SETTLE_EVERY + 2):
            trimmer.note(BIG_DOCUMENT)
            assert await until(lambda n=n: trimmer.trims == n)  # type: ignore[misc]
        tg.cancel_scope.cancel()
    # After big work: the young collected, the rest frozen; now and then, everything.
    assert settles == [False] * (FULL_SETTLE_EVERY - 1) + [True, False]
    settles.clear()
    idle = Trimmer(lambda: None, delay=0, idle=0.05, settle=settles.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(idle.run)
        idle.note(100)
        assert await until(lambda: idle.trims == 1)
        tg.cancel_scope.cancel()
    assert settles == [True]


@pytest.mark.anyio
async def test_the_heap_is_trimmed_after_big_documents_only() -> None:
    trims: list[int] = []
    trimmer = Trimmer(lambda: trims.append(1), threshold=2 * BIG_DOCUMENT, delay=0, idle=None)
    pool = RenderPool(0, trimmer=trimmer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(trimmer.run)
        for _ in range(50):  # small documents never add up to a trim
            assert await pool.run(len, b"x" * 100_000) == 100_000
        await pool.run(len, b"x" * BIG_DOCUMENT)  # one big document: under the threshold
        await anyio.wait_all_tasks_blocked()
        assert trims == []
        await pool.run(len, b"x" * BIG_DOCUMENT)  # the second crosses it
        assert await until(lambda: trimmer.trims == 1)
        await anyio.wait_all_tasks_blocked()
        assert trims == [1]  # once, not once per document
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_work_of_any_size_is_trimmed_once_it_stops() -> None:
    trims: list[int] = []
    trimmer = Trimmer(lambda: trims.append(1), delay=0, idle=0.5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(trimmer.run)
        for _ in range(20):  # medium documents, one every 10 ms: work goes on, no trim
            trimmer.note(100_000)
            await anyio.sleep(0.01)
            assert trims == []
        assert await until(lambda: trimmer.trims == 1)  # the work stopped: once
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_the_service_trims_after_a_big_packument(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    readme = "A long readme, as big packages have. " * 150
    registry.add(
        "fg-big",
        *(FakeVersion(f"1.{i}.0", extra={"readme": readme}) for i in range(300)),
    )
    settings = Settings(upstream=registry.url, cache_dir=tmp_path, render_workers=0)
    service = build_service(settings)
    trims: list[int] = []
    service.pool.trimmer = Trimmer(lambda: trims.append(1), threshold=1, delay=0, idle=None)
    async with service:
        served = await service.packument(
            PackageName.parse("fg-big"), Variant.ABBREVIATED, "http://fg.invalid", Caller()
        )
        assert served.rendered.gzip
        assert await until(lambda: len(trims) >= 1)


@pytest.mark.anyio
async def test_the_service_trims_after_a_big_tarball_scan(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    code = "".join(f"export const value{i} = {i} * 2;\n" for i in range(40_000)).encode()
    assert len(code) > BIG_DOCUMENT
    registry.add("fg-bigtar", FakeVersion("1.0.0", files={"index.js": code}))
    settings = Settings(
        upstream=registry.url, cache_dir=tmp_path, render_workers=0, prefetch_scans=0
    )
    service = build_service(settings)
    trims: list[int] = []
    service.pool.trimmer = Trimmer(lambda: trims.append(1), threshold=1, delay=0, idle=None)
    async with service:
        package = PackageName.parse("fg-bigtar")
        await service.packument(package, Variant.ABBREVIATED, "http://fg.invalid", Caller())
        await anyio.wait_all_tasks_blocked()
        assert trims == []  # a small packument is no reason
        async with service.tarball(package, "fg-bigtar-1.0.0.tgz", Caller()) as served:
            assert served.cache.value == "miss"
        assert await until(lambda: len(trims) == 1)
        async with service.tarball(package, "fg-bigtar-1.0.0.tgz", Caller()):  # a hit: no work
            pass
        await anyio.wait_all_tasks_blocked()
        assert trims == [1]


@pytest.mark.anyio
async def test_clients_take_the_big_documents_turn_before_background_work() -> None:
    """One big document at a time; a client's goes before the look-ahead's, even one that
    asked later."""
    pool = RenderPool(0, trimmer=Trimmer(lambda: None, idle=None))
    big = b"x" * BIG_DOCUMENT
    order: list[str] = []
    release = threading.Event()

    def holding(raw: bytes) -> int:
        release.wait(10)
        order.append("holding")
        return len(raw)

    def marking(name: str) -> Callable[[bytes], int]:
        def job(raw: bytes) -> int:
            order.append(name)
            return len(raw)

        return job

    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, holding, big)  # a client's big document has the turn
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(in_background, pool.run, marking("background"), big)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(pool.run, marking("client"), big)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert order == ["holding", "client", "background"]
