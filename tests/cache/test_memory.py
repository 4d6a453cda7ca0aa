"""`PackumentEntry`, `PackumentCache` (LRU by bytes) and `SingleFlight` (one run per key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import anyio
import pytest

from proxy.cache.memory import (
    ENTRY_OVERHEAD,
    MAX_RENDERS_PER_ENTRY,
    VERSION_OVERHEAD,
    PackumentCache,
    PackumentEntry,
    SingleFlight,
)
from proxy.npm import packument as pk
from proxy.npm.names import PackageName
from tests.npm.packuments import PROXY, packument, raw

KB = 1024


def entry(name: str = "left-pad", *, pad: int = 0, confirmed_at: float = 100.0) -> PackumentEntry:
    """An entry for a real packument; `pad` extra packed bytes make sizes predictable."""
    doc = packument(name, ["1.0.0", "1.1.0"])
    summary = pk.summarize(doc, PackageName.parse(name))
    e = PackumentEntry.of(raw(doc), summary, '"etag-1"', confirmed_at)
    return dataclasses.replace(e, packed=e.packed + b"\0" * pad)


def sized(total: int, name: str = "left-pad") -> PackumentEntry:
    """An entry whose `size` is exactly `total` bytes."""
    base = entry(name)
    return entry(name, pad=total - base.size)


def key(i: int) -> pk.RenderKeyT:
    return ("full", PROXY, f"edits-{i}", "")


def rendered(i: int) -> pk.Rendered:
    doc = raw(packument("left-pad", ["1.0.0"]))
    return pk.render(doc, PackageName.parse("left-pad"), pk.Variant.FULL, PROXY, salt=str(i))


# -- PackumentEntry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confirmed_at", "now", "ttl", "fresh"),
    [
        (100.0, 100.0, 300.0, True),
        (100.0, 399.9, 300.0, True),
        (100.0, 400.0, 300.0, False),  # exactly ttl old: revalidate
        (100.0, 10_000.0, 300.0, False),
        (100.0, 100.5, 0.5, False),
    ],
)
def test_is_fresh(confirmed_at: float, now: float, ttl: float, fresh: bool) -> None:
    assert entry(confirmed_at=confirmed_at).is_fresh(now, ttl) is fresh


def test_size_counts_packed_bytes_overhead_and_renders() -> None:
    e = entry()
    held = len(e.packed) + ENTRY_OVERHEAD + VERSION_OVERHEAD * 2  # two versions' facts
    assert e.size == held
    r = rendered(1)
    e.remember(key(1), r)
    assert e.size == held + len(r.gzip_plain) + len(r.gzip)
    e.remember(key(2), r.gzip_only())
    assert e.size == held + len(r.gzip_plain) + 2 * len(r.gzip)


def test_the_upstream_bytes_are_kept_packed_and_come_back_whole() -> None:
    doc = packument("left-pad", [f"1.{i}.0" for i in range(300)])
    body = raw(doc)
    e = PackumentEntry.of(body, pk.summarize(doc, PackageName.parse("left-pad")), None, 0.0)
    assert e.raw() == body
    assert e.size_raw == len(body)
    assert len(e.packed) * 4 < len(body)  # what the memory cache holds


def test_remember_is_bounded_and_drops_the_oldest() -> None:
    e = entry()
    for i in range(MAX_RENDERS_PER_ENTRY + 5):
        e.remember(key(i), rendered(i))
    assert len(e.renders) == MAX_RENDERS_PER_ENTRY
    assert list(e.renders) == [key(i) for i in range(5, MAX_RENDERS_PER_ENTRY + 5)]
    assert e.renders[key(MAX_RENDERS_PER_ENTRY + 4)] == rendered(MAX_RENDERS_PER_ENTRY + 4)


@pytest.mark.parametrize(
    ("new_etag", "kept_etag"),
    [('"etag-2"', '"etag-2"'), (None, '"etag-1"')],  # a 304 without ETag keeps ours
)
def test_confirmed_refreshes_and_keeps_renders(new_etag: str | None, kept_etag: str) -> None:
    old = entry(confirmed_at=100.0).failed(until=500.0, reason="timed out")
    old.remember(key(1), rendered(1))
    new = old.confirmed(now=450.0, etag=new_etag)
    assert (new.confirmed_at, new.upstream_etag, new.stale_until) == (450.0, kept_etag, 0.0)
    assert new.renders == {key(1): rendered(1)}
    assert (new.packed, new.summary) == (old.packed, old.summary)
    assert (old.confirmed_at, old.upstream_etag, old.stale_until) == (100.0, '"etag-1"', 500.0)


def test_failed_marks_stale_without_touching_the_original() -> None:
    old = entry(confirmed_at=100.0)
    new = old.failed(until=160.0, reason="upstream answered 503")
    assert (new.stale_until, new.stale_reason, new.confirmed_at) == (
        160.0,
        "upstream answered 503",
        100.0,
    )
    assert (old.stale_until, old.stale_reason) == (0.0, "")


def test_entries_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry().packed = b"{}"  # type: ignore[misc]


# -- PackumentCache ----------------------------------------------------------------------------


def test_cache_evicts_least_recently_used_past_the_byte_cap() -> None:
    cache = PackumentCache(max_bytes=100 * KB)
    cache.put("a", sized(30 * KB, "a"))
    cache.put("b", sized(30 * KB, "b"))
    cache.put("c", sized(30 * KB, "c"))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", sized(30 * KB, "d"))
    assert cache.get("b") is None
    assert all(cache.get(n) is not None for n in "acd")
    assert len(cache) == 3
    assert cache.current_bytes == 90 * KB


@pytest.mark.parametrize(
    ("sizes", "survivors"),
    [
        ([40, 40, 20], "abc"),  # exactly at the cap
        ([40, 40, 21], "bc"),
        ([90, 20], "b"),
        ([10, 10, 10, 80], "bcd"),
        ([10, 10, 10, 81], "cd"),
    ],
)
def test_cache_byte_accounting(sizes: list[int], survivors: str) -> None:
    cache = PackumentCache(max_bytes=100 * KB)
    names = "abcd"[: len(sizes)]
    for name, size in zip(names, sizes, strict=True):
        cache.put(name, sized(size * KB, name))
    assert "".join(n for n in names if cache.get(n) is not None) == survivors
    assert (
        cache.current_bytes
        == sum(s for n, s in zip(names, sizes, strict=True) if n in survivors) * KB
    )
    assert cache.current_bytes <= 100 * KB


def test_oversize_entry_is_not_kept_and_drops_the_old_one() -> None:
    cache = PackumentCache(max_bytes=100 * KB)
    cache.put("left-pad", sized(10 * KB))
    cache.put("other", sized(10 * KB, "other"))
    cache.put("left-pad", sized(101 * KB))
    assert cache.get("left-pad") is None
    assert cache.get("other") is not None
    assert cache.current_bytes == 10 * KB


def test_restoring_a_grown_entry_accounts_for_it_without_needless_eviction() -> None:
    cache = PackumentCache(max_bytes=100 * KB)
    a, b = sized(40 * KB, "a"), sized(40 * KB, "b")
    cache.put("a", a)
    cache.put("b", b)
    b.remember(key(1), rendered(1))
    grown = b.size
    cache.put("b", b)
    assert cache.current_bytes == 40 * KB + grown
    assert cache.get("a") is a  # both still fit: nothing needed to go


def test_drop() -> None:
    cache = PackumentCache(max_bytes=100 * KB)
    cache.put("a", sized(10 * KB, "a"))
    cache.drop("a")
    cache.drop("never-there")
    assert cache.get("a") is None
    assert (len(cache), cache.current_bytes) == (0, 0)


# -- SingleFlight ------------------------------------------------------------------------------
#
# Each shared fetch sets `started` when it runs: by then every caller started before it has
# joined (tasks run in the order they were started), so no test polls or sleeps.


@pytest.mark.anyio
async def test_concurrent_callers_share_one_run() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    calls = 0
    started, release = anyio.Event(), anyio.Event()
    results: list[object] = []

    async def fetch() -> object:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return object()

    async def caller() -> None:
        results.append(await flights.run("left-pad", fetch))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
        await started.wait()
        assert flights.in_flight("left-pad")
        release.set()
    assert calls == 1
    assert len(results) == 10
    assert all(r is results[0] for r in results)
    assert not flights.in_flight("left-pad")


@pytest.mark.anyio
async def test_different_keys_run_separately() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    started: list[str] = []
    all_started, release = anyio.Event(), anyio.Event()
    results: list[tuple[str, str]] = []

    def fetcher(name: str) -> Callable[[], Awaitable[str]]:
        async def fetch() -> str:
            started.append(name)
            if len(started) == 3:
                all_started.set()
            await release.wait()
            return name.upper()

        return fetch

    async def caller(name: str) -> None:
        results.append((name, await flights.run(name, fetcher(name))))

    async with anyio.create_task_group() as tg:
        for name in ("a", "b", "a", "b", "c"):
            tg.start_soon(caller, name)
        await all_started.wait()
        release.set()
    assert sorted(started) == ["a", "b", "c"]
    assert sorted(results) == [("a", "A"), ("a", "A"), ("b", "B"), ("b", "B"), ("c", "C")]


@pytest.mark.anyio
async def test_every_waiter_gets_the_same_exception_and_the_next_call_runs_again() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    started, release = anyio.Event(), anyio.Event()
    calls = 0
    errors: list[BaseException] = []

    async def failing() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        raise LookupError("upstream said no")

    async def caller() -> None:
        try:
            await flights.run("left-pad", failing)
        except LookupError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(caller)
        await started.wait()
        release.set()
    assert calls == 1
    assert len(errors) == 5
    assert all(e is errors[0] for e in errors)
    assert not flights.in_flight("left-pad")

    async def ok() -> str:
        return "fresh"

    assert await flights.run("left-pad", ok) == "fresh"


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_cancel_the_shared_work() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    started, release, first_gone = anyio.Event(), anyio.Event(), anyio.Event()
    calls = 0
    outcome: list[str] = []
    first_scope = anyio.CancelScope()

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return "packument"

    async def first() -> None:
        with first_scope:
            outcome.append(await flights.run("left-pad", fetch))
        first_gone.set()

    async def second() -> None:
        outcome.append(await flights.run("left-pad", fetch))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
        await started.wait()
        first_scope.cancel()  # the first client disconnects
        await first_gone.wait()
        assert first_scope.cancelled_caught
        assert flights.in_flight("left-pad")
        release.set()
    assert outcome == ["packument"]  # only the second caller got an answer...
    assert calls == 1  # ...from the one run, which was never cancelled or restarted


@pytest.mark.anyio
async def test_work_finishes_even_when_every_waiter_left() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    release, finished = anyio.Event(), anyio.Event()

    async def fetch() -> str:
        await release.wait()
        finished.set()
        return "packument"

    with anyio.move_on_after(0) as scope:
        await flights.run("left-pad", fetch)
    assert scope.cancelled_caught
    assert flights.in_flight("left-pad")
    release.set()
    with anyio.fail_after(5):
        await finished.wait()
