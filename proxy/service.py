"""The proxy's pipeline, with no HTTP framework in it:

    request → cache → upstream → inspect → decide (the gate) → render

`Service` answers what the HTTP layer asks: a packument in one representation, one version's
manifest, dist-tags, a tarball, npm audit findings, or a passthrough call. It owns the caches'
freshness rules: fresh entries are served as they are, expired ones revalidated with the
upstream's ETag (served stale when that takes over `revalidate_wait` seconds, while it goes on
in the background), and when the upstream fails a cached copy is served "stale" (the failure is
remembered for `STALE_RETRY` seconds so that every request does not wait for the same timeout
again). An upstream 404 is remembered for `not_found_ttl` seconds.

The cold path never waits for work a client does not need: a packument is answered from its
metadata and the tarball verdicts already known; a tarball is scanned when a client fetches it;
the versions a client is likely to fetch next are downloaded and scanned in the background
(bounded, see `prefetch_candidates`), and their verdicts shape the packuments served after.

`async with Service(...)` opens what it needs (disk indexes, render workers, the gate's
maintenance task) and closes everything it holds on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import anyio
import orjson
from anyio.abc import TaskGroup
from cachetools import LRUCache, TTLCache

from proxy.audit.advisories import advisory
from proxy.cache.memory import (
    PACK_LEVEL,
    CacheState,
    PackumentCache,
    PackumentEntry,
    SingleFlight,
)
from proxy.cache.store import CachedTarball, PackumentSaver, TarballCache
from proxy.detect.facts import PackageFacts, inspect, inspect_keeping
from proxy.detect.model import Verdict
from proxy.errors import (
    BadRequest,
    ClientBusy,
    FloodgateError,
    Forbidden,
    NotFound,
    PolicyBlocked,
    ReadOnly,
    RequestTooLarge,
    Unauthenticated,
    UpstreamError,
)
from proxy.gate import Caller, Fetch, Gate, Plan
from proxy.hosted import document as hosted_doc, search as hosted_search
from proxy.hosted.document import Change
from proxy.hosted.registry import HostedRegistry, NewTarball, Outcome, iso_now, tarball_key
from proxy.hosted.store import doc_json
from proxy.identity import ANONYMOUS, Identity
from proxy.internal import InternalNames
from proxy.npm import packument as pk
from proxy.npm.names import PackageName
from proxy.npm.semver import Version
from proxy.npm.tarball import TarballFacts, read_tarball
from proxy.policy.model import Decision
from proxy.settings import Settings
from proxy.storage.cluster import RESYNC, PgNotifier
from proxy.storage.health import Health
from proxy.upstream.client import Fetched, Forwarded, Source, UpstreamClient
from proxy.workers import BIG_DOCUMENT, INLINE_MAX, Activity, ClientsFirst, RenderPool

log = logging.getLogger(__name__)

MB = 1024 * 1024
STALE_RETRY = 30.0  # seconds between upstream retries while serving a stale packument
PREFETCH_CONCURRENCY = 2  # background tarball downloads and scans at once
PREFETCH_QUEUE = 64  # background scans waiting at most; more are dropped, not queued
PREFETCH_MAX_WAIT = 60.0  # seconds a background scan waits for a pause in client requests
PREFETCH_MAX_UNPACKED = 4 * MB  # a version other than `latest` larger than this is not prefetched
AHEAD_QUEUE = 256  # dependency packuments waiting at most to be fetched ahead of clients
# What a refused write to a hosted package can raise: each goes to the audit log.
REFUSALS = (Unauthenticated, Forbidden, PolicyBlocked, BadRequest, RequestTooLarge)
ADVISORY_CONCURRENCY = 8  # packages assessed at once for all npm audit requests together
NOT_FOUND_MEMO = 10_000  # upstream 404s remembered


@dataclass(frozen=True, slots=True)
class ServedPackument:
    rendered: pk.Rendered
    variant: pk.Variant
    cache: CacheState
    stale_reason: str = ""
    hosted: bool = False  # one of the packages Floodgate hosts (never kept by shared caches)


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What a write to a hosted package did, and a policy warning for the client."""

    changes: Sequence[Change]
    notice: str = ""


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    """`/-/v1/search`: the merged page (`body`), or the upstream's answer to pass on as it is
    (`passthrough`: it refused the query and there is nothing of ours to show)."""

    body: dict[str, Any] | None
    passthrough: Forwarded | None = None
    notice: str = ""


NO_SEARCH = (404, 405, 501)  # an upstream answering these has no search endpoint


@dataclass(frozen=True, slots=True)
class ServedTarball:
    tarball: CachedTarball
    cache: CacheState
    key: str  # content digest key, also the tarball's ETag
    notice: str = ""  # a policy warning for the client (sent as npm-notice)
    hosted: bool = False  # one of the packages Floodgate hosts (never kept by shared caches)


def _placeholder(v: Version) -> bool:
    return v.major == 0 and v.minor == 0


def prefetch_candidates(summary: pk.Summary, limit: int) -> list[pk.VersionRef]:
    """The versions an install is most likely to fetch next, worth downloading ahead of it: the
    `latest` target, then the newest release of each of the newest majors. Never a version that
    declares `os`/`cpu`/`libc` (a platform build most machines skip), never a `0.0.x`
    placeholder, and, other than `latest`, nothing over `PREFETCH_MAX_UNPACKED`."""
    chosen: dict[str, pk.VersionRef] = {}

    def worth(ref: pk.VersionRef, v: Version | None) -> bool:
        return not ref.platform and (v is None or not _placeholder(v))

    latest = summary.versions.get(summary.dist_tags.get("latest", ""))
    if latest is not None and worth(latest, Version.try_parse(latest.version)):
        chosen[latest.version] = latest
    newest: dict[int, tuple[Version, str]] = {}  # major -> its newest release
    for text in summary.versions:
        v = Version.try_parse(text)
        if v is not None and not v.prerelease:
            best = newest.get(v.major)
            if best is None or (best[0].release, best[1]) < (v.release, text):
                newest[v.major] = (v, text)
    for _, (v, text) in sorted(newest.items(), reverse=True):
        ref = summary.versions[text]
        size = ref.unpacked_size
        if worth(ref, v) and (size is None or size <= PREFETCH_MAX_UNPACKED):
            chosen.setdefault(text, ref)
    return list(chosen.values())[:limit]


def dependency_names(facts: PackageFacts | None) -> list[str]:
    """The packuments a client resolving this package asks for next, as far as they can be
    known before it says which version it picked: the dependencies and optional dependencies
    (whose packuments a client reads even where it skips their install) of `latest`."""
    if facts is None:
        return []
    latest = facts.versions.get(facts.dist_tags.get("latest", ""))
    if latest is None:
        return []
    return list(dict.fromkeys([*latest.dependencies, *latest.optional_dependencies]))


def _packing(raw: bytes) -> Awaitable[bytes]:
    """`raw` zlib-packed for the cache: in a thread when large, started now (not when awaited),
    so that it runs beside the document's parse."""
    if len(raw) <= INLINE_MAX:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        done.set_result(zlib.compress(raw, PACK_LEVEL))
        return done
    return asyncio.ensure_future(anyio.to_thread.run_sync(zlib.compress, raw, PACK_LEVEL))


def render_packed(packed: bytes, *args: Any) -> pk.Rendered:
    """`pk.render` of a packed cache entry's bytes (picklable, for the render workers)."""
    return pk.render(zlib.decompress(packed), *args)


def version_packed(packed: bytes, *args: Any) -> bytes | None:
    """`pk.render_version` of a packed cache entry's bytes (picklable)."""
    return pk.render_version(zlib.decompress(packed), *args)


class Service:
    """Everything the proxy serves, fetched once, cached, decided and rendered."""

    def __init__(
        self,
        settings: Settings,
        upstream: UpstreamClient,
        *,
        packuments: PackumentCache,
        saved: PackumentSaver,
        tarballs: TarballCache,
        pool: RenderPool,
        gate: Gate,
        clock: Callable[[], float] = time.monotonic,
        closing: Sequence[Callable[[], object]] = (),
        health: Sequence[Health] = (),
        notifier: PgNotifier | None = None,
        internal_upstream: UpstreamClient | None = None,
        hosted: HostedRegistry | None = None,
    ):
        self.settings = settings
        self.upstream = upstream
        # The registry of the internal names, the only one ever asked for them (None: 404).
        self.internal_upstream = internal_upstream
        # The packages Floodgate hosts (the internal names, when there is no internal registry).
        self.hosted = hosted if internal_upstream is None else None
        self.packuments = packuments
        self.saved = saved
        self.tarballs = tarballs
        self.pool = pool
        self.gate = gate
        self.clock = clock
        self.internal = InternalNames.of(settings.internal_scopes, settings.internal_names)
        self._closing = tuple(closing)  # shared storage handles, closed last
        self.health = tuple(health)  # the shared storage's services, for readiness
        self.notifier = notifier  # changes to and from the other replicas
        self._tasks: TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._prefetch_limit = anyio.CapacityLimiter(PREFETCH_CONCURRENCY)
        self._clients = Activity(settings.prefetch_pause)  # what background work waits for
        self._prefetch_pending = 0
        self._ahead_limit = anyio.CapacityLimiter(max(1, settings.prefetch_packuments))
        # CPU work (parse, plan, render) for clients first; the look-ahead's runs for one
        # document at a time, while no client's does: one thread runs Python at a time, and
        # a client's request waits for its turn behind every thread that wants one (measured
        # on the replay of a real install: with the 8 documents fetched at once also parsed
        # and planned at once, a 30 kB document's 14 ms plan took up to 95 ms).
        self._cpu = ClientsFirst()
        self._ahead_pending = 0
        self._looked_ahead: TTLCache[str, bool] = TTLCache(
            NOT_FOUND_MEMO, settings.packument_ttl, timer=clock
        )
        # Big documents the look-ahead fetched and saved to disk unparsed (see `_set_aside`):
        # when, and what (ETag, bytes), so that the saved copy is known to be that one.
        self._aside: TTLCache[str, tuple[float, str | None, int]] = TTLCache(
            NOT_FOUND_MEMO, settings.packument_ttl, timer=clock
        )
        # Per name, how often a hosted document changed here or on another replica: a refresh
        # that read the store before a change does not put its (old) copy back in memory.
        self._generation: LRUCache[str, int] = LRUCache(NOT_FOUND_MEMO)
        self._missing: TTLCache[str, str] = TTLCache(
            NOT_FOUND_MEMO, max(settings.not_found_ttl, 1e-9), timer=clock
        )
        self._fetches: SingleFlight[
            str, tuple[PackumentEntry, CacheState, pk.Doc | None] | None
        ] = SingleFlight()
        self._renders: SingleFlight[tuple[str, pk.RenderKeyT], pk.Rendered] = SingleFlight()
        self._downloads: SingleFlight[str, CachedTarball] = SingleFlight()
        # npm audit work is a budget shared by every audit (so audits cannot crowd out
        # installs), and a client runs one audit at a time.
        self._audit_limit = anyio.CapacityLimiter(ADVISORY_CONCURRENCY)
        self._auditing: set[str] = set()

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> Service:
        async with contextlib.AsyncExitStack() as stack:
            for close in self._closing:
                stack.callback(close)
            stack.callback(self.gate.close)
            stack.push_async_callback(self.upstream.aclose)
            if self.internal_upstream is not None:
                stack.push_async_callback(self.internal_upstream.aclose)
            if self.hosted is not None:
                stack.push_async_callback(self.hosted.aclose)
            await anyio.to_thread.run_sync(self.tarballs.index.scan)
            await anyio.to_thread.run_sync(self.saved.index.scan)
            log.info(
                "cache %s: %d tarballs (%.1f MB), %d saved packuments",
                self.settings.cache_dir,
                len(self.tarballs.index),
                self.tarballs.index.total / MB,
                len(self.saved.index),
            )
            self.pool.start()
            stack.callback(self.pool.shutdown)
            self._tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._tasks.cancel_scope.cancel)
            self._tasks.start_soon(self.gate.maintain)
            if self.notifier is not None:
                self._tasks.start_soon(self.notifier.listen, self._changed_elsewhere)
            self._tasks.start_soon(self.pool.trimmer.run)
            log.info("%s", self.gate.describe())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._tasks = self._stack, None, None
        if stack is not None:
            await stack.__aexit__(kind, exc, tb)

    def _changed_elsewhere(self, kind: str, name: str) -> None:
        """Another replica fetched a new packument or changed a hosted one (drop ours from
        memory, and a remembered 404: the next request loads the one it saved and revalidates
        it) or stored a verdict (plan it afresh)."""
        if kind == "packument":
            self._generation[name] = self._generation.get(name, 0) + 1
            self.packuments.drop(name)
            self._missing.pop(name, None)  # a package published there is no longer a 404
        elif kind == "verdict":
            self.gate.changed(name)
        elif kind == RESYNC:  # notifications were missed: hosted changes must not wait the TTL
            self._forget_hosted()

    def _forget_hosted(self) -> None:
        """Drop every hosted document (and remembered 404) from memory: the next request reads
        the store (a proxied packument waits for `packument_ttl` as before)."""
        if self.hosted is None:
            return
        names = {n for n in [*self.packuments.names(), *self._missing.keys()] if n}
        hosted = sorted(n for n in names if self.internal.is_internal(n))
        for name in hosted:
            self.packuments.drop(name)
            self._missing.pop(name, None)
        log.info(
            "listening for changes again (some may have been missed): %d hosted packages "
            "dropped from memory",
            len(hosted),
        )

    def _tell_others(self, kind: str, name: str) -> None:
        if self.notifier is not None and self._tasks is not None:
            self._tasks.start_soon(anyio.to_thread.run_sync, self.notifier.publish, kind, name)

    # -- packuments --------------------------------------------------------------------------

    async def entry(self, package: PackageName) -> tuple[PackumentEntry, CacheState]:
        """The cached packument entry, fetched or revalidated as freshness requires."""
        entry, state, _ = await self._entry(package)
        return entry, state

    async def _entry(
        self, package: PackageName
    ) -> tuple[PackumentEntry, CacheState, pk.Doc | None]:
        """`entry`, plus the parsed document when it was just fetched (read-only; for the
        first render, so that a cold packument is parsed once)."""
        found = await self._entry_or_aside(package)
        if found is None:  # joined the look-ahead, which set a big document aside: load it
            found = await self._entry_or_aside(package)
        if found is None:  # joined another (a TTL so short the first one's note expired)
            found = await self._refresh(package, None)
        assert found is not None  # a client's own refresh never sets a document aside
        return found

    async def _entry_or_aside(
        self, package: PackageName, ahead: bool = False
    ) -> tuple[PackumentEntry, CacheState, pk.Doc | None] | None:
        """`_entry`; `ahead`: for the look-ahead, which sets big documents aside (None)."""
        self.source(package)  # an internal name without an internal registry: 404 here
        entry = self.packuments.get(package.name)
        now = self.clock()
        if entry is not None:
            if entry.is_fresh(now, self.settings.packument_ttl):
                return entry, CacheState.HIT, None
            if now < entry.stale_until:
                return entry, CacheState.STALE, None
        else:
            missing = self._missing.get(package.name)
            if missing is not None:
                raise NotFound(missing)
            if ahead and package.name in self._aside:
                return None
        first = not self._fetches.in_flight(package.name)
        flight = self._fetches.run(package.name, lambda: self._refresh(package, entry, ahead))
        if entry is None:
            return await flight
        # Stale while revalidating: a hung or dripping upstream costs a warm package at most
        # `revalidate_wait`; the revalidation goes on in the background (see SingleFlight).
        with anyio.move_on_after(self.settings.revalidate_wait):
            return await flight
        log.log(
            logging.INFO if first else logging.DEBUG,  # one line per revalidation, not request
            "revalidating %r is slow: serving the cached copy meanwhile",
            package.name,
        )
        return entry, CacheState.STALE, None

    def source(self, package: PackageName) -> Source:
        """The registry `package` comes from: for the organization's own names the internal
        registry, or else Floodgate's own hosted packages (never the public upstream: that is
        how dependency confusion is shut out); the upstream for everything else."""
        if self.internal and self.internal.is_internal(package.name):
            if self.internal_upstream is not None:
                return self.internal_upstream
            if self.hosted is None:
                raise NotFound(self.internal.refusal(package.name))
            return self.hosted
        return self.upstream

    def is_hosted(self, package: PackageName) -> bool:
        return self.hosted is not None and self.hosted.hosts(package)

    def check_read(self, package: PackageName, who: Identity) -> None:
        """Refuse (Unauthenticated, Forbidden) a caller who may not read a hosted package."""
        if self.hosted is not None and self.hosted.hosts(package):
            self.hosted.access.check_read(who, package)

    async def _inspect(
        self, raw: bytes, package: PackageName, ahead: bool = False, keep: bool = True
    ) -> tuple[pk.Summary, PackageFacts, pk.Doc | None]:
        """Parse and inspect, in a CPU section; with the parsed document for the first render
        unless `keep` is false (a saved copy that is revalidated first)."""
        # A big document reaches the look-ahead here only when it could not be set aside: it
        # keeps no parsed copy (several times the bytes, held until rendered) and parses again
        # to render, one at a time and only while no client's big document waits (RenderPool).
        async with self._cpu.turn():
            big_ahead = ahead and len(raw) >= BIG_DOCUMENT
            if not keep or self.pool.in_process(len(raw)) or big_ahead:
                summary, facts = await self.pool.run(inspect, raw, package)
                return summary, facts, None
            return await self.pool.run(inspect_keeping, raw, package)

    async def _set_aside(self, package: PackageName, got: Fetched) -> bool:
        """Save a big document the look-ahead fetched to disk, unparsed, for the client's
        request to load and parse (`_load_saved`). Parsing one holds the GIL for up to a few
        hundred ms (orjson: about 100 MB/s), and a client's next request, however small,
        would wait behind it: the look-ahead spares the client the fetch, not the parse.
        False: not saved (the disk is full, say), so the look-ahead goes on with it."""
        if not await anyio.to_thread.run_sync(self._save, package, got):
            return False
        self._aside[package.name] = (self.clock(), got.etag, len(got.body))
        log.debug("set %r aside: %d bytes, saved unparsed", package.name, len(got.body))
        return True

    async def _refresh(
        self, package: PackageName, entry: PackumentEntry | None, ahead: bool = False
    ) -> tuple[PackumentEntry, CacheState, pk.Doc | None] | None:
        generation = self._generation.get(package.name, 0)
        if entry is None:
            loaded = await self._load_saved(package)
            entry, doc = loaded if loaded is not None else (None, None)
            if entry is not None and entry.is_fresh(self.clock(), self.settings.packument_ttl):
                self._keep(package, generation, entry)  # the look-ahead set it aside just now
                return entry, CacheState.MISS, doc
        try:
            got = await self.source(package).get_packument(
                package, entry.upstream_etag if entry else None
            )
            inspected = packing = None
            if isinstance(got, Fetched):
                if ahead and len(got.body) >= BIG_DOCUMENT and await self._set_aside(package, got):
                    return None
                # Packing (zlib, which lets go of the GIL) runs on another core meanwhile.
                packing = _packing(got.body)
                inspected = await self._inspect(got.body, package, ahead)
        except NotFound as exc:
            self.packuments.drop(package.name)
            if self.settings.not_found_ttl > 0 and self._current(package, generation):
                self._missing[package.name] = str(exc)
            raise
        except UpstreamError as exc:
            if entry is None:
                raise
            log.warning("serving stale packument for %r: %s", package.name, exc)
            entry = entry.failed(self.clock() + STALE_RETRY, str(exc))
            self._keep(package, generation, entry)
            return entry, CacheState.STALE, None
        now = self.clock()
        if inspected is None:
            assert entry is not None
            assert not isinstance(got, Fetched)
            entry = entry.confirmed(now, got.etag)
            self._keep(package, generation, entry)
            return entry, CacheState.REVALIDATED, None
        assert isinstance(got, Fetched)
        if entry is not None:  # the upstream's packument changed: other replicas drop theirs
            self._tell_others("packument", package.name)
        summary, facts, doc = inspected
        assert packing is not None
        packed = await packing
        entry = PackumentEntry(packed, len(got.body), summary, got.etag, now, facts=facts)
        self._keep(package, generation, entry)
        log.debug(
            "fetched packument %r: %d bytes, %d versions in %.3fs",
            package.name,
            len(got.body),
            len(summary.versions),
            got.elapsed,
        )
        if self._tasks is not None:  # the disk copy is for restarts: no client waits for it
            self._tasks.start_soon(anyio.to_thread.run_sync, self._save, package, got)
        else:
            await anyio.to_thread.run_sync(self._save, package, got)
        return entry, CacheState.MISS, doc

    def _current(self, package: PackageName, generation: int) -> bool:
        """No hosted change to `package` since a refresh read `generation`."""
        return self._generation.get(package.name, 0) == generation

    def _keep(self, package: PackageName, generation: int, entry: PackumentEntry) -> None:
        """Cache what a refresh read, unless the hosted document changed meanwhile (the change
        dropped the cached copy; this one may predate it)."""
        if self._current(package, generation):
            self.packuments.put(package.name, entry)

    def _save(self, package: PackageName, got: Fetched) -> bool:
        """Save what was fetched to disk; False (and a warning) when it could not be."""
        try:
            self.saved.save(package.name, got.body, got.etag)
        except OSError as exc:
            log.warning("could not save packument %r to disk: %s", package.name, exc)
            return False
        return True

    async def _load_saved(
        self, package: PackageName
    ) -> tuple[PackumentEntry, pk.Doc | None] | None:
        """The saved copy of `package`, to revalidate (fetched: never); or, when it is the one
        the look-ahead set aside, fresh and with its parsed document for the first render."""
        aside = self._aside.pop(package.name, None)
        saved = await anyio.to_thread.run_sync(self.saved.load, package.name)
        if saved is None:
            return None
        raw, etag = saved
        fetched = float("-inf")  # never: revalidated before it is served
        if aside is not None and aside[1:] == (etag, len(raw)):
            fetched = aside[0]  # the look-ahead's copy: fresh, parsed once for the first render
        packing = _packing(raw)
        try:
            summary, facts, doc = await self._inspect(raw, package, keep=fetched > float("-inf"))
        except UpstreamError:
            return None
        packed = await packing
        return PackumentEntry(packed, len(raw), summary, etag, fetched, facts=facts), doc

    async def packument(
        self,
        package: PackageName,
        variant: pk.Variant,
        base_url: str,
        caller: Caller,
        *,
        plain: bool = False,
        write: bool = False,
    ) -> ServedPackument:
        """The served packument in `variant`, with tarball URLs under `base_url`; its plain
        bytes are kept only once a client asks for them (`plain`: it does not accept gzip).
        `write` (`?write=true`, what npm deprecate and unpublish read before they write back):
        a hosted package's document as stored, without the policy's edits, for its publishers."""
        with self._clients.busy():
            return await self._packument(package, variant, base_url, caller, plain, write)

    async def _packument(
        self,
        package: PackageName,
        variant: pk.Variant,
        base_url: str,
        caller: Caller,
        plain: bool,
        write: bool,
    ) -> ServedPackument:
        self.check_read(package, caller.identity)
        entry, state, doc = await self._entry(package)
        if write and self._writable(package, caller):
            edits, salt = pk.NO_EDITS, "write"
        else:
            if state is CacheState.MISS:  # a client is resolving versions of a new document
                self._prefetch(package, entry)
            gate = self.gate.for_group(caller.group)
            plan = await self._plan(gate, package, entry)
            gate.admit(package, plan, caller)
            edits = plan.edits
            salt = gate.salt  # the policy's digest is in it: groups never share a rendering
            self._look_ahead(package, entry, variant, base_url, caller)
        rendered = await self._rendered(package, entry, doc, variant, base_url, edits, salt, plain)
        return ServedPackument(
            rendered, variant, state, entry.stale_reason, self.is_hosted(package)
        )

    async def _plan(self, gate: Gate, package: PackageName, entry: PackumentEntry) -> Plan:
        """`gate.plan`, in a CPU section (see ClientsFirst) when it is to be made."""
        plan = gate.planned(package, entry)
        if plan is None:
            async with self._cpu.turn():
                plan = await gate.plan(package, entry)
        return plan

    async def _rendered(
        self,
        package: PackageName,
        entry: PackumentEntry,
        doc: pk.Doc | None,
        variant: pk.Variant,
        base_url: str,
        edits: pk.Edits,
        salt: str,
        plain: bool,
    ) -> pk.Rendered:
        """The packument rendered with `edits`, from the entry's renders or made and kept
        there; `doc`: the parsed document when it was just fetched."""
        key: pk.RenderKeyT = (variant.value, base_url, edits.digest, salt)
        rendered = entry.renders.get(key)
        if rendered is None:

            async def render() -> pk.Rendered:
                if doc is not None:  # just parsed: render from it, in a thread when large
                    job = functools.partial(pk.render, doc, package, variant, base_url, edits, salt)
                    if entry.size_raw <= INLINE_MAX:
                        return job()
                    return await anyio.to_thread.run_sync(job)
                return await self.pool.run(
                    render_packed,
                    entry.packed,
                    package,
                    variant,
                    base_url,
                    edits,
                    salt,
                    size=entry.size_raw,
                )

            async with self._cpu.turn():
                rendered = await self._renders.run((package.name, key), render)
            if not plain:
                rendered = rendered.gzip_only()
            entry.remember(key, rendered)
            self.packuments.put(package.name, entry)
        elif plain and rendered.body is None:
            if len(rendered.gzip) <= INLINE_MAX // 8:
                rendered = rendered.with_body()
            else:
                rendered = await anyio.to_thread.run_sync(rendered.with_body)
            entry.remember(key, rendered)
            self.packuments.put(package.name, entry)
        return rendered

    def _look_ahead(
        self,
        package: PackageName,
        entry: PackumentEntry,
        variant: pk.Variant,
        base_url: str,
        caller: Caller,
    ) -> None:
        """Fetch, inspect, plan and render, in the background, the packuments the client will
        ask for next (see `dependency_names`), as it would ask for them: it resolves a tree one
        document at a time, so what Floodgate does for each is added to the install unless
        it was done while the client was busy with others. Big documents are only fetched
        (see `_set_aside`). Once per package and TTL; at most `prefetch_packuments` at once
        and `AHEAD_QUEUE` waiting (more are not looked at); never a name already cached, set
        aside, in flight, known missing, or internal."""
        if self._tasks is None or self.settings.prefetch_packuments <= 0:
            return
        if package.name in self._looked_ahead:
            return
        for name in dependency_names(entry.facts):
            if self._ahead_pending >= AHEAD_QUEUE:
                log.debug("look-ahead queue full: not fetching %s ahead", name)
                return  # not marked as looked ahead: the next request tries the rest
            if (
                name in self.packuments
                or name in self._missing
                or name in self._aside
                or self._fetches.in_flight(name)
                or (self.internal and self.internal.is_internal(name))
            ):
                continue
            try:
                dependency = PackageName.parse(name)
            except FloodgateError:
                continue  # not a name the registry can have: the client will hear so itself
            self._ahead_pending += 1
            self._tasks.start_soon(self._ahead, dependency, variant, base_url, caller)
        self._looked_ahead[package.name] = True

    async def _ahead(
        self, package: PackageName, variant: pk.Variant, base_url: str, caller: Caller
    ) -> None:
        try:
            async with self._ahead_limit:
                with self._cpu.background():
                    found = await self._entry_or_aside(package, ahead=True)
                    if found is None:
                        return  # a big document, set aside unparsed for the client
                    entry, state, doc = found
                    if state is CacheState.MISS:
                        self._prefetch(package, entry)
                    gate = self.gate.for_group(caller.group)
                    plan = await self._plan(gate, package, entry)
                    edits, salt = plan.edits, gate.salt
                    await self._rendered(package, entry, doc, variant, base_url, edits, salt, False)
        except FloodgateError as exc:
            log.debug("looking ahead at %s: %s", package.name, exc)
        except Exception:
            log.exception("looking ahead at %s failed", package.name)
        finally:
            self._ahead_pending -= 1

    async def version(
        self, package: PackageName, spec: str, base_url: str, who: Identity = ANONYMOUS
    ) -> bytes:
        """The served manifest of one version (exact version or dist-tag)."""
        self.check_read(package, who)
        entry, _ = await self.entry(package)
        edits = (await self._plan(self.gate.for_group(who.group or ""), package, entry)).edits
        body = await self.pool.run(
            version_packed, entry.packed, package, spec, base_url, edits, size=entry.size_raw
        )
        if body is None:
            raise NotFound(f"{package.name}@{spec} is not in this registry")
        return body

    async def dist_tags(self, package: PackageName, who: Identity = ANONYMOUS) -> Mapping[str, str]:
        self.check_read(package, who)
        entry, _ = await self.entry(package)
        edits = (await self._plan(self.gate.for_group(who.group or ""), package, entry)).edits
        kept = [v for v in entry.summary.versions if v not in edits.hidden]
        return pk.served_dist_tags(entry.summary.dist_tags, kept, edits.restricted)

    # -- tarballs ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def tarball(
        self, package: PackageName, filename: str, caller: Caller
    ) -> AsyncIterator[ServedTarball]:
        """A tarball by file name: located in the packument, let through (or refused) by the
        gate, which fetches it when it needs the bytes. Its cached file stays (the cache does
        not evict it) until the block ends: open it there to send it."""
        with self._clients.busy():
            self.check_read(package, caller.identity)
            entry, ref = await self._locate(package, filename)
            gate = self.gate.for_group(caller.group)
            with self.tarballs.in_use(ref.store_key):
                gated = await gate.tarball(package, entry, ref, caller, self._fetcher(package, ref))
                if gated.cache is CacheState.MISS:  # downloaded and scanned: buffers are garbage
                    self.pool.trimmer.note(ref.unpacked_size or gated.tarball.size)
                yield ServedTarball(
                    gated.tarball, gated.cache, ref.store_key, gated.notice, self.is_hosted(package)
                )

    async def _locate(
        self, package: PackageName, filename: str
    ) -> tuple[PackumentEntry, pk.VersionRef]:
        entry = self.packuments.get(package.name)
        ref = entry.summary.for_filename(filename) if entry is not None else None
        if entry is None or ref is None:  # not cached yet, or a version newer than our copy
            entry, _ = await self.entry(package)
            ref = entry.summary.for_filename(filename)
        if ref is None:
            raise NotFound(f"{package.name}: no version has a tarball named {filename!r}")
        return entry, ref

    def _fetcher(self, package: PackageName, ref: pk.VersionRef) -> Fetch:
        """The tarball bytes, cached or downloaded (verified against its integrity)."""

        async def fetch() -> tuple[CachedTarball, CacheState]:
            key = ref.store_key
            cached = self.tarballs.get(key)
            if cached is not None:
                return cached, CacheState.HIT
            source = self.source(package)
            url = source.check_url(ref.tarball or f"{source.base}/{package.path}/-/{ref.filename}")
            digest = ref.digest
            if digest is None:
                log.warning(
                    "%s@%s has no integrity or shasum: caching unverified", package, ref.version
                )
            what = f"tarball of {package.name}@{ref.version}"
            fresh = await self._downloads.run(
                key,
                lambda: self.tarballs.fill(
                    key, digest, lambda sink: source.download(url, sink), what
                ),
            )
            return fresh, CacheState.MISS

        return fetch

    def _prefetch(self, package: PackageName, entry: PackumentEntry) -> None:
        """Start background scans of the versions an install will likely ask for next, so
        their verdicts shape the packuments served after; never waited for."""
        if self._tasks is None or self.settings.prefetch_scans <= 0:
            return
        for ref in prefetch_candidates(entry.summary, self.settings.prefetch_scans):
            if self._prefetch_pending >= PREFETCH_QUEUE:
                log.debug("prefetch queue full: not prescanning %s@%s", package, ref.version)
                return
            self._prefetch_pending += 1
            self._tasks.start_soon(self._prescan, package, entry, ref)

    async def _prescan(
        self, package: PackageName, entry: PackumentEntry, ref: pk.VersionRef
    ) -> None:
        try:
            async with self._prefetch_limit:
                await self._clients.pause_in_requests(PREFETCH_MAX_WAIT)
                await self.gate.prescan(package, entry, ref, self._fetcher(package, ref))
            self.pool.trimmer.note(ref.unpacked_size or 0)
        except FloodgateError as exc:
            log.info("background scan of %s@%s skipped: %s", package.name, ref.version, exc)
        except Exception:
            log.exception("background scan of %s@%s failed", package.name, ref.version)
        finally:
            self._prefetch_pending -= 1

    # -- npm audit ----------------------------------------------------------------------------

    async def verdict(
        self, package: PackageName, version: str, who: Identity = ANONYMOUS
    ) -> tuple[Verdict | None, Decision] | None:
        """The verdict and decision on one version (under the caller's group's policy); None
        when there is no such version or enforcement is off."""
        self.check_read(package, who)
        entry, _ = await self.entry(package)
        ref = entry.summary.versions.get(version)
        if ref is None:
            return None
        gate = self.gate.for_group(who.group or "")
        return await gate.assess(package, entry, version, self._fetcher(package, ref))

    async def advisories(
        self,
        wanted: Mapping[str, Sequence[str]],
        base_url: str,
        client: str = "-",
        who: Identity = ANONYMOUS,
    ) -> dict[str, list[dict[str, Any]]]:
        """Floodgate's findings on the requested versions, as bulk-advisory entries.

        Names that are invalid or cannot be fetched are skipped (the audit goes on). Raises
        ClientBusy while the same client's previous audit is still running."""
        if client in self._auditing:
            raise ClientBusy(
                f"an npm audit from {client} is still running; Floodgate runs one audit per "
                "client at a time"
            )
        self._auditing.add(client)
        try:
            return await self._advisories(wanted, base_url, who)
        finally:
            self._auditing.discard(client)

    async def _advisories(
        self, wanted: Mapping[str, Sequence[str]], base_url: str, who: Identity
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        limiter = self._audit_limit

        async def one(name: str, versions: Sequence[str]) -> None:
            async with limiter:
                try:
                    package = PackageName.parse(name)
                    for version in versions:
                        found = await self.verdict(package, version, who)
                        if found is None:
                            continue
                        url = f"{base_url}/-/floodgate/verdict/{package.path}/{version}"
                        item = advisory(package.name, version, found[0], found[1], url)
                        if item is not None:
                            out.setdefault(package.name, []).append(item)
                except FloodgateError as exc:
                    log.info("audit: skipping %r: %s", name, exc)

        async with anyio.create_task_group() as tg:
            for name, versions in wanted.items():
                if isinstance(name, str) and isinstance(versions, list):
                    tg.start_soon(one, name, [v for v in versions if isinstance(v, str)])
        return out

    # -- hosted packages: the write side -----------------------------------------------------

    def hosted_for(self, package: PackageName) -> HostedRegistry:
        """The hosted registry when it hosts `package`; else refuse the write (ReadOnly)."""
        if self.hosted is None or not self.hosted.hosts(package):
            where = (
                "the internal names come from the internal registry (internal_upstream)"
                if self.internal_upstream is not None and self.internal.is_internal(package.name)
                else f"it hosts only the internal scopes and names ({self.internal.describe()})"
            )
            raise ReadOnly(
                f"Floodgate is a read-only proxy for {package.name}: {where}; publish it to "
                "its registry directly"
            )
        return self.hosted

    @contextlib.asynccontextmanager
    async def _audited(
        self, package: PackageName, caller: Caller, what: str
    ) -> AsyncIterator[tuple[HostedRegistry, list[str]]]:
        """The one place a write to a hosted package is allowed or refused: the caller's right
        is checked, and any refusal (no right, the policy, the registry's rules, a bad body)
        goes to the audit log. Yields the registry and a slot for the version concerned."""
        hosted = self.hosted_for(package)
        version = [""]
        try:
            hosted.access.check_write(caller.identity, package, what)
            yield hosted, version
        except REFUSALS as exc:
            await hosted.record(package, Change("refused", version[0], str(exc)), caller)
            raise

    async def check_write(self, package: PackageName, caller: Caller, what: str) -> None:
        """Refuse a write the caller may not make (ReadOnly, Unauthenticated, Forbidden). The
        endpoints ask before reading the body: a caller without the right never costs a large
        upload."""
        async with self._audited(package, caller, what):
            pass

    def _writable(self, package: PackageName, caller: Caller) -> bool:
        try:
            self.hosted_for(package).access.check_write(caller.identity, package)
        except FloodgateError:
            return False
        return True

    def _changed(self, package: PackageName) -> None:
        """A hosted document changed: every cache of it, here and on other replicas, goes (and
        a refresh that read the old one meanwhile does not put it back: `_refresh`)."""
        self._generation[package.name] = self._generation.get(package.name, 0) + 1
        self.packuments.drop(package.name)
        self._missing.pop(package.name, None)
        self._tell_others("packument", package.name)

    async def publish(
        self, package: PackageName, body: bytes, caller: Caller, rev: str | None = None
    ) -> PublishOutcome:
        """`PUT /<name>[/-rev/<rev>]`: a publish (a tarball attached), or a client writing the
        document back (npm deprecate, npm unpublish of a version). A publish is inspected and
        decided like a download, once, before anything is stored."""
        what = "publish" if rev is None else "change"
        async with self._audited(package, caller, what) as (hosted, version):
            doc = hosted_doc.parse_body(body)
            if not hosted_doc.is_publish(doc):
                return await self._write_back(hosted, package, doc, caller, rev)
            pub, tarball = hosted_doc.parse_publication(doc, package, hosted.max_publish_bytes)
            version[0] = pub.version
            facts = await anyio.to_thread.run_sync(read_tarball, tarball)
            hosted_doc.check_tarball(pub, facts)
            notice = await self._admit_publish(hosted, package, pub, facts, caller)

            async def compute(stored: dict[str, Any] | None, now: str) -> Outcome:
                new, changes = hosted_doc.apply_publish(stored, pub, package, now)
                return Outcome(new, changes, NewTarball(pub.sha512_hex, tarball))

            changes = await hosted.change(package, caller, compute)
        self._changed(package)
        return PublishOutcome(changes, notice)

    async def _admit_publish(
        self,
        hosted: HostedRegistry,
        package: PackageName,
        pub: hosted_doc.Publication,
        facts: TarballFacts,
        caller: Caller,
    ) -> str:
        """The policy's decision on the packument the publish would make (outside the write
        lock: the detector may take a while); raises PolicyBlocked, returns a warning."""
        stored = await hosted.load(package)
        current = doc_json(stored) if stored is not None else None
        candidate, _ = hosted_doc.apply_publish(current, pub, package, iso_now(hosted.clock()))
        raw = orjson.dumps(candidate)
        summary, package_facts = await self.pool.run(inspect, raw, package)
        entry = PackumentEntry(b"", len(raw), summary, None, 0.0, facts=package_facts)
        gate = self.gate.for_group(caller.group)
        return await gate.admit_publish(
            package, entry, summary.versions[pub.version], facts, caller
        )

    async def _write_back(
        self,
        hosted: HostedRegistry,
        package: PackageName,
        doc: Mapping[str, Any],
        caller: Caller,
        rev: str | None,
    ) -> PublishOutcome:
        """A client writing a hosted document back, based on the revision it read: a changed
        one is a 409 (never applied to newer versions), and versions are removed only on
        `/-rev/<rev>`, as npm unpublish writes."""
        expected = hosted_doc.written_rev(doc, rev)
        who = caller.identity

        async def compute(stored: dict[str, Any] | None, now: str) -> Outcome:
            if stored is None:
                raise NotFound(f"{package.name} is not published here")
            new, changes = hosted_doc.apply_update(stored, doc, now, unpublish=rev is not None)
            dropped = self._unpublished(hosted, package, who, stored, changes)
            return Outcome(new, changes, drop=dropped)

        changes = await hosted.change(package, caller, compute, expected)
        if changes:
            self._changed(package)
        return PublishOutcome(changes)

    def _unpublished(
        self,
        hosted: HostedRegistry,
        package: PackageName,
        who: Identity,
        stored: Mapping[str, Any],
        changes: Sequence[Change],
    ) -> tuple[str, ...]:
        """Check the unpublish rule for every version `changes` removes; their tarball keys."""
        versions = hosted_doc.live_versions(stored)
        keys = []
        for change in changes:
            if change.event != "unpublish":
                continue
            published = hosted_doc.published_at(stored, change.version)
            hosted.access.check_unpublish(who, package, change.version, published, hosted.clock())
            key = tarball_key(versions[change.version])
            if key is not None:
                keys.append(key)
        return tuple(keys)

    async def unpublish(self, package: PackageName, caller: Caller, rev: str | None) -> None:
        """`DELETE /<name>/-rev/<rev>`: every version unpublished (the numbers stay used)."""
        async with self._audited(package, caller, "unpublish") as (hosted, _):
            if rev is None:
                raise BadRequest(
                    f"unpublishing {package.name} needs the revision it was read at: "
                    "DELETE /<name>/-rev/<rev> (npm unpublish --force sends it)"
                )
            who = caller.identity

            async def compute(stored: dict[str, Any] | None, now: str) -> Outcome:
                if stored is None or not hosted_doc.live_versions(stored):
                    raise NotFound(f"{package.name} is not published here")
                new: dict[str, Any] = stored
                changes: list[Change] = []
                for version in list(hosted_doc.live_versions(stored)):
                    new, removed = hosted_doc.remove_version(new, version, now)
                    changes.extend(removed)
                dropped = self._unpublished(hosted, package, who, stored, changes)
                return Outcome(new, changes, drop=dropped)

            await hosted.change(package, caller, compute, rev)
        self._changed(package)

    async def remove_tarball(self, package: PackageName, filename: str, caller: Caller) -> None:
        """`DELETE /<name>/-/<file>/-rev/<rev>`, npm unpublish's second step. The tarball went
        with its version in the first step (`PUT /<name>/-rev/<rev>`), so this only checks
        that no published version still has it (unpublish the version, not its tarball)."""
        async with self._audited(package, caller, "unpublish") as (hosted, version):
            stored = await hosted.load(package)
            live = hosted_doc.live_versions(doc_json(stored)) if stored is not None else {}
            for number in live:
                if filename == f"{package.bare}-{number}.tgz":
                    version[0] = number
                    raise Forbidden(
                        f"{package.name}@{number} is still published: unpublish the version "
                        f"(npm unpublish {package.name}@{number}), not its tarball"
                    )

    async def tag(
        self, package: PackageName, tag: str, version: str | None, caller: Caller
    ) -> PublishOutcome:
        """`npm dist-tag add` (a version) or `rm` (None)."""
        async with self._audited(package, caller, "change the dist-tags of") as (hosted, _):

            async def compute(stored: dict[str, Any] | None, now: str) -> Outcome:
                if stored is None:
                    raise NotFound(f"{package.name} is not published here")
                if version is None:
                    return Outcome(*hosted_doc.remove_tag(stored, tag, now))
                return Outcome(*hosted_doc.set_tag(stored, tag, version, now))

            changes = await hosted.change(package, caller, compute)
        self._changed(package)
        return PublishOutcome(changes)

    # -- search -----------------------------------------------------------------------------

    async def search(
        self, params: Mapping[str, str], who: Identity, headers: Mapping[str, str]
    ) -> SearchAnswer:
        """`npm search`: the hosted packages `who` may read that match, first, then the
        upstream's results (without internal names), paged together by `from` and `size`."""
        query = hosted_search.SearchQuery.of(params)
        page: list[dict[str, Any]] = []
        hosted_total = 0
        hosted = self.hosted
        if hosted is not None and not query.empty:
            page, hosted_total = await anyio.to_thread.run_sync(hosted.search, query, who)
        start, size = hosted_search.upstream_window(query, hosted_total)
        asked = {**params, "from": str(start), "size": str(size)}
        path = "/-/v1/search?" + urlencode(asked)
        objects: list[Any] = []
        upstream_total = 0
        notice = ""
        stamp = ""
        try:
            got = await self.forward("GET", path, None, headers)
        except FloodgateError as exc:
            log.warning("search not available upstream: %s", exc)
            notice = f"the upstream registry's search failed ({exc})"
        else:
            if got.status == 200:
                try:
                    body = orjson.loads(got.body)
                except orjson.JSONDecodeError:
                    body = None
                    notice = "the upstream registry's search answered something not JSON"
                objects, upstream_total = hosted_search.upstream_objects(
                    body, self.internal.is_internal
                )
                if isinstance(body, dict) and isinstance(body.get("time"), str):
                    stamp = body["time"]
            elif got.status in NO_SEARCH:
                notice = "the upstream registry offers no search"
            elif not page:
                return SearchAnswer(None, got)
            else:
                notice = f"the upstream registry's search answered {got.status}"
        if notice:
            notice += (
                f"; Floodgate returned {len(page)} of its own packages"
                if hosted_total
                else "; Floodgate returned none"
            )
        merged = hosted_search.merge(
            page, hosted_total, objects, upstream_total, query, stamp or iso_now(time.time())
        )
        return SearchAnswer(merged, None, notice)

    # -- passthrough -------------------------------------------------------------------------

    async def forward(
        self, method: str, path_and_query: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Forwarded:
        return await self.upstream.forward(method, path_and_query, body=body, headers=headers)
