"""In-memory caches: packument entries bounded by bytes, and single-flight coalescing.

A `PackumentEntry` holds the upstream bytes of one packument (so it can be re-rendered when a
policy or verdict changes), its summary, the upstream's validator and when it was last confirmed,
plus a small memo of rendered representations. "Fresh" means confirmed by the upstream less than
`ttl` seconds ago; an entry past that is revalidated with `If-None-Match`, and served "stale"
when the upstream cannot be reached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import traceback
import zlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from cachetools import LRUCache

from proxy.npm.packument import Rendered, RenderKeyT, Summary
from proxy.workers import BackgroundTurn, current_background, lend_priority

if TYPE_CHECKING:
    from proxy.detect.facts import PackageFacts

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_RENDERS_PER_ENTRY = 8  # representations x public base URLs x policy digests kept per package
ENTRY_OVERHEAD = 4096  # bytes charged per entry for its bookkeeping
VERSION_OVERHEAD = 1536  # bytes of summary and detector facts per version (measured: ~1.5 KB)


class CacheState(StrEnum):
    """How a response was produced, for the access log and the X-Floodgate-Cache header."""

    HIT = "hit"
    MISS = "miss"
    REVALIDATED = "revalidated"
    STALE = "stale"


PACK_LEVEL = 1  # zlib level for packuments kept in memory: JSON packs ~8x even at the fastest


@dataclass(frozen=True, slots=True)
class PackumentEntry:
    """One cached packument. Immutable but for `renders`, a memo of derived bytes.

    The upstream bytes are kept zlib-packed (`packed`; `size_raw` is their unpacked length):
    they are needed only to render a representation not in `renders` yet, and a packument
    kept whole would cost ~8x the memory for that rare use.
    """

    packed: bytes
    size_raw: int
    summary: Summary
    upstream_etag: str | None
    confirmed_at: float  # time.monotonic() of the last upstream confirmation
    stale_until: float = 0.0  # after an upstream failure: serve stale without retrying until then
    stale_reason: str = ""
    facts: PackageFacts | None = None  # what the detector needs from the document
    renders: dict[RenderKeyT, Rendered] = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls,
        raw: bytes,
        summary: Summary,
        upstream_etag: str | None,
        confirmed_at: float,
        facts: PackageFacts | None = None,
    ) -> PackumentEntry:
        """An entry for upstream bytes `raw` (packed here: call from a thread when large)."""
        packed = zlib.compress(raw, PACK_LEVEL)
        return cls(packed, len(raw), summary, upstream_etag, confirmed_at, facts=facts)

    def raw(self) -> bytes:
        """The upstream bytes (unpacked on each call: call from a thread when large)."""
        return zlib.decompress(self.packed)

    @property
    def size(self) -> int:
        held = len(self.packed) + ENTRY_OVERHEAD + VERSION_OVERHEAD * len(self.summary.versions)
        return held + sum(r.size for r in self.renders.values())

    def is_fresh(self, now: float, ttl: float) -> bool:
        return now - self.confirmed_at < ttl

    def remember(self, key: RenderKeyT, rendered: Rendered) -> None:
        while len(self.renders) >= MAX_RENDERS_PER_ENTRY:
            self.renders.pop(next(iter(self.renders)))
        self.renders[key] = rendered

    def confirmed(self, now: float, etag: str | None) -> PackumentEntry:
        """This entry re-confirmed by the upstream (a 304), renders kept."""
        return dataclasses.replace(
            self, confirmed_at=now, upstream_etag=etag or self.upstream_etag, stale_until=0.0
        )

    def failed(self, until: float, reason: str) -> PackumentEntry:
        """This entry after a failed revalidation: stale, not retried before `until`."""
        return dataclasses.replace(self, stale_until=until, stale_reason=reason)


def _entry_size(entry: PackumentEntry) -> int:
    return entry.size


class PackumentCache:
    """Packument entries keyed by package name, least recently used evicted past `max_bytes`."""

    def __init__(self, max_bytes: int):
        self._lru: LRUCache[str, PackumentEntry] = LRUCache(
            maxsize=max_bytes, getsizeof=_entry_size
        )

    def get(self, name: str) -> PackumentEntry | None:
        return self._lru.get(name)

    def put(self, name: str, entry: PackumentEntry) -> None:
        """Store (or re-store, to account for new renders); too-large entries are not kept."""
        if entry.size > self._lru.maxsize:
            self._lru.pop(name, None)
            return
        self._lru[name] = entry

    def drop(self, name: str) -> None:
        self._lru.pop(name, None)

    def __contains__(self, name: str) -> bool:
        """Whether `name` is cached (fresh or not), without making it recently used."""
        return name in self._lru

    def names(self) -> list[str]:
        return list(self._lru.keys())

    @property
    def current_bytes(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)


class SingleFlight(Generic[K, V]):
    """Run at most one `fn` per key at a time; concurrent callers share its result.

    The work runs in its own task, so a caller that goes away (a client disconnect cancels its
    handler) does not cancel the fetch the others are waiting for. A failure holds nothing
    once its callers have it: no reference cycle through the traceback, no frame locals.
    A client that joins work the background started promotes it (`lend_priority`).
    """

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}
        self._turns: dict[K, BackgroundTurn] = {}  # flights started by background work

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(fn())
            self._flights[key] = flight
            turn = current_background()
            if turn is not None:
                self._turns[key] = turn
            flight.add_done_callback(lambda f: self._done(key, f))
        else:
            lend_priority(self._turns.get(key))
        try:
            return await asyncio.shield(flight)
        except BaseException:
            # The exception's traceback will hold this frame, and this frame the flight that
            # holds the exception: a cycle only the cyclic GC frees, with everything the failed
            # work held (the chunks of a 200 MB body). Break it.
            del flight
            raise

    def _done(self, key: K, flight: asyncio.Future[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
            self._turns.pop(key, None)
        if not flight.cancelled():
            exc = flight.exception()  # mark retrieved: every waiter may have gone away
            if exc is not None:
                # The work is over: its frames need not keep their locals (the traceback
                # still says where it failed).
                traceback.clear_frames(exc.__traceback__)
