"""`RenderPool`: runs CPU-heavy pure functions over packument bytes without stalling the server.

orjson holds the GIL while it parses, so a 30 MB packument parsed on the event loop's thread (or
in a thread beside it) would stall every other request for tens of milliseconds. Documents over
`process_threshold` bytes therefore go to worker processes; medium ones to a thread (zlib drops
the GIL while compressing); small ones run inline, where a thread hop would cost more than the
work.

`Trimmer`: a parsed multi-MB packument is hundreds of thousands of small objects, freed once it
is rendered; glibc keeps the freed heap pages, scattered between live objects, so resident
memory grows by the largest documents seen rather than by what is cached (measured on a cold
install of ~500 real packages: 277 MiB resident, 193 MiB after `malloc_trim(0)`, which took
16 ms). After big documents (and big tarball scans) the trimmer hands those pages back, in a
thread, off every request's path. At the same moments it settles the garbage collector
(`settle_gc`): what is alive then is mostly the cache, which lives long and holds no cycles,
and a full collection walks every object the collector tracks, so as the cache grew each one
stalled the server longer (measured on the replay of a real install's 547 packuments: 13
full collections of up to 213 ms, 1.4 s in all; with the cache frozen out of their way, none
over 60 ms).

`ClientsFirst`: clients' CPU work (parse, plan, render of the packument a client waits for)
before the look-ahead's, with the GIL handed back to the event loop quickly meanwhile. One
thread runs Python at a time, so a look-ahead document parsed beside a client's doubles the
time the client waits for its own (measured on the replay of a real install: the slowest
packument under 1 MB came 64 ms after the upstream's answer on its own, and up to 159 ms with
the look-ahead's work beside it). Background work marks its task (`background`); a client that
joins work started there (a `SingleFlight`) promotes it to a client's, so that it never waits
on work that waits for it.

`Activity`: client requests in flight, so that background work (prefetch scans) waits for a
pause in them: one thread runs Python at a time, so a background scan's CPU is time a client
waits for its next packument (measured: prefetching during a real 470-package install made it
8 s slower, and no tarball came sooner).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import ctypes
import functools
import gc
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import anyio

log = logging.getLogger(__name__)

T = TypeVar("T")

INLINE_MAX = 64 * 1024  # bytes
PROCESS_THRESHOLD = 1024 * 1024  # bytes
BIG_DOCUMENT = 1024 * 1024  # bytes: documents this large are parsed one at a time


def _warm() -> None:
    import proxy.npm.packument  # noqa: F401 (pays the import once, before the first request)


TRIM_AFTER = BIG_DOCUMENT  # bytes of big documents or tarballs handled before a trim
TRIM_IDLE = 2.0  # seconds without work after which the work since the last trim is trimmed
TRIM_DELAY = 0.5  # seconds a trim waits (so that the request that asked for it is done): at
# most two 10-20 ms trims a second, in a thread that holds no GIL, while big work goes on


def malloc_trim() -> bool:
    """Return the C heap's free pages to the OS (glibc's `malloc_trim(0)`, which drops the GIL
    while it runs); False where there is no such call (not glibc)."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


M_ARENA_MAX = -8  # mallopt(3) parameter: how many heaps glibc's malloc keeps for threads
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc heaps (`mallopt(M_ARENA_MAX)`); call before any thread starts. By
    default glibc gives threads their own heaps (up to 8 per core): packuments are parsed in
    worker threads, and each heap keeps its own freed pages between live objects. Measured on
    the replay of a real install's 547 packuments: 207 MB resident by default, 190 MB with two
    heaps, no slower. False where there is no such call (not glibc), or MALLOC_ARENA_MAX (or
    the glibc.malloc.arena_max tunable) is set: the operator's choice stands."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, arenas))


FULL_SETTLE_EVERY = 16  # settles: every so many, one also collects what was frozen before


def settle_gc(full: bool) -> None:
    """Freeze the objects alive now (`gc.freeze`: the cyclic collector no longer walks them;
    they are still freed when no longer referenced), after collecting the young ones' cycles.
    `full`: first thaw and collect everything, so that a cycle frozen before it became garbage
    is not kept for good (a full collection: at idle, or once in a while)."""
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


class Trimmer:
    """Trims the heap (`trim`, in a thread) once `threshold` bytes of big documents were
    handled since the last trim, `delay` seconds after the one that crossed it; and once more
    when work of any size was noted since the last trim and none for `idle` seconds (the end
    of an install leaves the buffers of its last documents and tarballs; None: never). Before
    each trim it settles the garbage collector (`settle`, full at idle and every
    `FULL_SETTLE_EVERY` trims). Run `run` for the server's lifetime."""

    def __init__(
        self,
        trim: Callable[[], object] = malloc_trim,
        threshold: int = TRIM_AFTER,
        delay: float = TRIM_DELAY,
        idle: float | None = TRIM_IDLE,
        settle: Callable[[bool], object] = settle_gc,
    ):
        self.trim = trim
        self.threshold = threshold
        self.delay = delay
        self.idle = idle
        self.settle = settle
        self.trims = 0
        self._handled = 0
        self._dirty = False  # work noted since the last trim
        self._recent = False  # work noted since `run` last looked
        self._wanted = asyncio.Event()

    def note(self, size: int) -> None:
        """A document or tarball of `size` bytes was parsed, rendered or scanned (and its
        buffers are about to be freed)."""
        self._dirty = self._recent = True
        if size < BIG_DOCUMENT:
            return
        self._handled += size
        if self._handled >= self.threshold:
            self._wanted.set()

    async def run(self) -> None:
        while True:
            self._recent = False
            with anyio.move_on_after(math.inf if self.idle is None else self.idle):
                await self._wanted.wait()
            idle = not self._wanted.is_set()
            if not idle:
                await anyio.sleep(self.delay)
                self._wanted.clear()
                self._handled = 0
            elif not self._dirty or self._recent:
                continue  # nothing to hand back, or work goes on
            self._dirty = False
            self.settle(idle or self.trims % FULL_SETTLE_EVERY == FULL_SETTLE_EVERY - 1)
            await anyio.to_thread.run_sync(self.trim)
            self.trims += 1


class RenderPool:
    """Dispatch `fn(raw, *args)` inline, to a thread, or to a worker process by input size."""

    def __init__(
        self,
        processes: int,
        process_threshold: int = PROCESS_THRESHOLD,
        trimmer: Trimmer | None = None,
    ):
        self.processes = processes
        self.process_threshold = process_threshold
        self.trimmer = trimmer if trimmer is not None else Trimmer()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._big = anyio.CapacityLimiter(1)
        self._clients_big = 0  # clients' big documents waiting for or holding `_big`
        self._no_client_big: anyio.Event | None = None  # set when the last one is done

    def start(self) -> None:
        if self.processes > 0 and self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["proxy.npm.packument"])
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.processes,
                mp_context=context,
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            for _ in range(self.processes):
                self._pool.submit(_warm)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def in_process(self, size: int) -> bool:
        """Whether `run` sends an input of `size` bytes to a worker process."""
        return self._pool is not None and size >= self.process_threshold

    async def run(
        self,
        fn: Callable[..., T],
        raw: bytes,
        *args: Any,
        size: int = -1,
    ) -> T:
        """`fn(raw, *args)`, off the event loop when the work is large: `size` bytes of
        document (default: `len(raw)`; give it when `raw` is compressed). Big documents are
        handled one at a time: orjson holds the GIL, so more at once is no faster, only a
        higher peak of memory; background work (the look-ahead: `current_background`) takes
        its turn only while no client's big document waits for one. `fn` must be picklable."""
        size = len(raw) if size < 0 else size
        job = functools.partial(fn, raw, *args)
        if size <= INLINE_MAX:
            return job()
        try:
            if size >= BIG_DOCUMENT:
                turn = current_background()
                async with self._big_turn(turn is not None and not turn.promoted):
                    return await self._dispatch(job, size)
            return await self._dispatch(job, size)
        finally:
            self.trimmer.note(size)  # its buffers are garbage once the caller is done

    @contextlib.asynccontextmanager
    async def _big_turn(self, background: bool) -> AsyncIterator[None]:
        if background:
            while self._clients_big and self._no_client_big is not None:  # clients first
                await self._no_client_big.wait()
            async with self._big:
                yield
            return
        if not self._clients_big:
            self._no_client_big = anyio.Event()
        self._clients_big += 1
        try:
            async with self._big:
                yield
        finally:
            self._clients_big -= 1
            if not self._clients_big and self._no_client_big is not None:
                self._no_client_big.set()

    async def _dispatch(self, job: Callable[[], T], size: int) -> T:
        if not self.in_process(size):
            return await anyio.to_thread.run_sync(job)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, job)
        except BrokenProcessPool:
            log.error("a render worker process died; restarting the pool and using a thread")
            self.shutdown()
            self.start()
            return await anyio.to_thread.run_sync(job)


WATCH_INTERVAL = 1.0  # seconds between a worker's checks that the server is still alive
PR_SET_PDEATHSIG = 1  # prctl(2) option: a signal for this process when its parent dies


def _init_worker(server_pid: int) -> None:
    """Workers leave Ctrl-C to the server, which shuts them down (no traceback from them), and
    die with the server even when it is killed outright (kill -9 runs no shutdown): on Linux
    the kernel sends SIGKILL when the worker's parent (the forkserver) exits, and everywhere
    a watchdog thread exits once the server process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    threading.Thread(
        target=_watch_server, args=(server_pid,), name="server-watchdog", daemon=True
    ).start()


def _watch_server(server_pid: int, interval: float = WATCH_INTERVAL) -> None:
    while process_alive(server_pid):
        time.sleep(interval)
    os._exit(0)


def process_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal check is all there is
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class Activity:
    """Client requests in flight, and when the last one ended (`busy` around each)."""

    def __init__(
        self,
        pause: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.pause = pause  # seconds without a client request before background work runs
        self.clock = clock
        self.sleep = sleep
        self.in_flight = 0
        self._last_end = float("-inf")

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._last_end = self.clock()

    def idle_for(self) -> float:
        """Seconds since the last client request ended (0 while one is in flight)."""
        return 0.0 if self.in_flight else self.clock() - self._last_end

    async def pause_in_requests(self, at_most: float) -> None:
        """Return once no client request has been in flight for `pause` seconds, or after
        `at_most` seconds (a proxy that is never idle still gets its background work done)."""
        deadline = self.clock() + at_most
        while True:
            now = self.clock()
            left = self.pause - self.idle_for()
            if left <= 0 or now >= deadline:
                return
            await self.sleep(min(left, deadline - now))


class BackgroundTurn:
    """Marks a task, and the tasks and flights it starts, as background work (see
    `ClientsFirst`); `promoted` once a client waits for that work."""

    __slots__ = ("_wake", "promoted")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.promoted = False
        self._wake = wake

    def promote(self) -> None:
        if not self.promoted:
            self.promoted = True
            self._wake()


_BACKGROUND: contextvars.ContextVar[BackgroundTurn | None] = contextvars.ContextVar(
    "floodgate_background", default=None
)


def current_background() -> BackgroundTurn | None:
    """The background turn the current task runs under; None for a client's request."""
    return _BACKGROUND.get()


def lend_priority(turn: BackgroundTurn | None) -> None:
    """The current task waits for work started under `turn`: if it is a client's, that work
    is a client's now (SingleFlight calls this when a caller joins a flight)."""
    if turn is not None and _BACKGROUND.get() is None:
        turn.promote()


CLIENT_GRACE = 0.005  # seconds after a client's CPU section before background work may start
SWITCH_INTERVAL = 0.001  # seconds a thread that wants the GIL waits at most, during sections


class ClientsFirst:
    """CPU sections (`turn`) of clients run as they come; background ones run one at a time,
    only while no client's is running, and `grace` seconds after the last one ended: a
    client's request runs several sections (parse, plan, render) with a few event-loop turns
    between them, and a background section that slipped in between would hold it up (one
    thread runs Python at a time, and a thread that wants it back waits up to
    `sys.getswitchinterval()` each time). A background section already running when a
    client's starts goes on (they share the GIL meanwhile): sections are short (one parse,
    one plan or one render of a document under `BIG_DOCUMENT`).

    While any section runs, the GIL's switch interval is `switch_interval` (Python's default
    is 5 ms): a section hands its work to a thread and back, and the event loop's thread gets
    the GIL back from a thread that parses only when that thread is made to drop it, up to an
    interval later, at each of the few loop turns a request takes (measured on the replay of
    a real install, five runs each: the slowest packument under 1 MB came at direct +
    100-174 ms with 5 ms, + 94-126 ms with 1 ms). Only during sections: more switches are
    no use to warm requests, which hand nothing to threads."""

    def __init__(
        self,
        grace: float = CLIENT_GRACE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        switch_interval: float | None = SWITCH_INTERVAL,
    ) -> None:
        self.grace = grace
        self.switch_interval = switch_interval  # None: leave the interpreter's alone
        self._usual_interval = sys.getswitchinterval()
        self.clock = clock
        self.sleep = sleep
        self.clients = 0  # client sections running
        self._client_end = float("-inf")  # when the last one ended
        self._busy = False  # a background section is running
        self._changed: anyio.Event | None = None

    @contextlib.contextmanager
    def background(self) -> Iterator[BackgroundTurn]:
        """Run the rest of the current task (and what it starts) as background work."""
        turn = BackgroundTurn(self._wake)
        token = _BACKGROUND.set(turn)
        try:
            yield turn
        finally:
            _BACKGROUND.reset(token)

    def turn(self) -> _Section:
        """A CPU section of the current task (`async with`): a client's, or background work's
        (see class). A class, not a generator: 1.6 us instead of 3.8 per section."""
        return _Section(self)

    async def _background_turn(self, turn: BackgroundTurn) -> bool:
        """Wait for background work's turn; False: promoted meanwhile (a client's now)."""
        while not turn.promoted:
            if self.clients or self._busy:
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
                continue
            left = self.grace - (self.clock() - self._client_end)
            if left > 0:
                ended = self._client_end
                await self.sleep(left)
                if self._client_end != ended or self.clients or self._busy:
                    continue  # a client's section since (the grace starts again), or another
            return True
        return False

    def _enters(self, background: bool) -> None:
        first = not (self.clients or self._busy)
        if background:
            self._busy = True
        else:
            self.clients += 1
        if first and self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)

    def _leaves(self, background: bool) -> None:
        if background:
            self._busy = False
        else:
            self.clients -= 1
            if not self.clients:
                self._client_end = self.clock()
        if not (self.clients or self._busy) and self.switch_interval is not None:
            sys.setswitchinterval(self._usual_interval)
        if background or not self.clients:
            self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class _Section:
    """One `ClientsFirst.turn()`."""

    __slots__ = ("_background", "_lanes")

    def __init__(self, lanes: ClientsFirst) -> None:
        self._lanes = lanes
        self._background = False

    async def __aenter__(self) -> None:
        turn = _BACKGROUND.get()
        if turn is not None and not turn.promoted:
            self._background = await self._lanes._background_turn(turn)
        self._lanes._enters(self._background)

    async def __aexit__(self, *exc: object) -> None:
        self._lanes._leaves(self._background)
