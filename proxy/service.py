"""The proxy's pipeline, with no HTTP framework in it.

    request → upstream facts (cached) → decide (the gate) → rendered response

`Service` answers what the HTTP layer asks: a packument in one representation, one version's
manifest, dist-tags, a tarball, or a passthrough call. It owns the caches' freshness rules:
fresh entries are served as they are, expired ones are revalidated with the upstream's ETag,
and when the upstream fails a cached copy is served "stale" (and the failure is remembered for
`STALE_RETRY` seconds so that every request does not wait for the same timeout again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from proxy.audit.advisories import advisory
from proxy.cache.memory import CacheState, PackumentCache, PackumentEntry, SingleFlight
from proxy.cache.store import CachedTarball, PackumentStore, TarballStore
from proxy.detect.facts import inspect
from proxy.detect.model import Verdict
from proxy.errors import FloodgateError, NotFound, UpstreamError
from proxy.gate import OPEN_PLAN, Caller, Plan, PolicyGate, warning_message
from proxy.npm import packument as pk
from proxy.npm.names import PackageName
from proxy.npm.semver import Version
from proxy.policy.model import Action, Decision
from proxy.settings import Settings
from proxy.upstream.client import Fetched, Forwarded, UpstreamClient
from proxy.workers import RenderPool

log = logging.getLogger(__name__)

STALE_RETRY = 30.0  # seconds between upstream retries while serving a stale packument
PREFETCH_CONCURRENCY = 4  # background tarball downloads and scans at once
ADVISORY_CONCURRENCY = 16  # packages assessed at once for one npm audit request


@dataclass(frozen=True, slots=True)
class ServedPackument:
    rendered: pk.Rendered
    variant: pk.Variant
    cache: CacheState
    stale_reason: str = ""


@dataclass(frozen=True, slots=True)
class ServedTarball:
    tarball: CachedTarball
    cache: CacheState
    key: str  # content digest key, also the tarball's ETag
    notice: str = ""  # a policy warning for the client (sent as npm-notice)


def likely_versions(summary: pk.Summary, limit: int) -> list[pk.VersionRef]:
    """The versions an install is most likely to fetch next: dist-tag targets, then the newest
    release of each of the newest majors."""
    chosen: dict[str, pk.VersionRef] = {}
    for version in summary.dist_tags.values():
        if version in summary.versions:
            chosen.setdefault(version, summary.versions[version])
    releases = sorted(
        (v, text)
        for text in summary.versions
        if (v := Version.try_parse(text)) is not None and not v.is_prerelease
    )
    seen_majors: set[int] = set()
    for v, text in reversed(releases):
        if v.major not in seen_majors:
            seen_majors.add(v.major)
            chosen.setdefault(text, summary.versions[text])
    return list(chosen.values())[:limit]


class Service:
    """Everything the proxy serves, fetched once, cached, decided and rendered."""

    def __init__(
        self,
        settings: Settings,
        upstream: UpstreamClient,
        *,
        packuments: PackumentCache,
        saved: PackumentStore,
        tarballs: TarballStore,
        pool: RenderPool,
        gate: PolicyGate | None = None,
    ):
        self.settings = settings
        self.upstream = upstream
        self.packuments = packuments
        self.saved = saved
        self.tarballs = tarballs
        self.pool = pool
        self.gate = gate  # None: enforcement off, everything is served as the upstream has it
        self.tasks: TaskGroup | None = None  # for background scans; set while the app runs
        self._prefetch_limit = anyio.CapacityLimiter(PREFETCH_CONCURRENCY)
        self._fetches: SingleFlight[str, tuple[PackumentEntry, CacheState]] = SingleFlight()
        self._renders: SingleFlight[tuple[str, pk.RenderKeyT], pk.Rendered] = SingleFlight()
        self._downloads: SingleFlight[str, CachedTarball] = SingleFlight()

    # -- packuments --------------------------------------------------------------------------

    async def entry(self, package: PackageName) -> tuple[PackumentEntry, CacheState]:
        """The cached packument entry, fetched or revalidated as freshness requires."""
        entry = self.packuments.get(package.name)
        now = time.monotonic()
        if entry is not None:
            if entry.is_fresh(now, self.settings.packument_ttl):
                return entry, CacheState.HIT
            if now < entry.stale_until:
                return entry, CacheState.STALE
        return await self._fetches.run(package.name, lambda: self._refresh(package, entry))

    async def _refresh(
        self, package: PackageName, entry: PackumentEntry | None
    ) -> tuple[PackumentEntry, CacheState]:
        if entry is None:
            entry = await self._load_saved(package)
        try:
            got = await self.upstream.get_packument(package, entry.upstream_etag if entry else None)
            inspected = None
            if isinstance(got, Fetched):
                inspected = await self.pool.run(inspect, got.body, package)
        except NotFound:
            self.packuments.drop(package.name)
            raise
        except UpstreamError as exc:
            if entry is None:
                raise
            log.warning("serving stale packument for %r: %s", package.name, exc)
            entry = entry.failed(time.monotonic() + STALE_RETRY, str(exc))
            self.packuments.put(package.name, entry)
            return entry, CacheState.STALE
        now = time.monotonic()
        if inspected is None:
            assert entry is not None
            assert not isinstance(got, Fetched)
            entry = entry.confirmed(now, got.etag)
            self.packuments.put(package.name, entry)
            return entry, CacheState.REVALIDATED
        assert isinstance(got, Fetched)
        summary, facts = inspected
        entry = PackumentEntry(got.body, summary, got.etag, now, facts=facts)
        self.packuments.put(package.name, entry)
        log.debug(
            "fetched packument %r: %d bytes, %d versions in %.3fs",
            package.name,
            len(got.body),
            len(summary.versions),
            got.elapsed,
        )
        await anyio.to_thread.run_sync(self._save, package.name, got.body, got.etag)
        return entry, CacheState.MISS

    def _save(self, name: str, raw: bytes, etag: str | None) -> None:
        try:
            self.saved.save(name, raw, etag)
        except OSError as exc:
            log.warning("could not save packument %r to disk: %s", name, exc)

    async def _load_saved(self, package: PackageName) -> PackumentEntry | None:
        saved = await anyio.to_thread.run_sync(self.saved.load, package.name)
        if saved is None:
            return None
        raw, etag = saved
        try:
            summary, facts = await self.pool.run(inspect, raw, package)
        except UpstreamError:
            return None
        return PackumentEntry(raw, summary, etag, confirmed_at=float("-inf"), facts=facts)

    async def plan(self, package: PackageName, entry: PackumentEntry) -> Plan:
        return OPEN_PLAN if self.gate is None else await self.gate.plan(package, entry)

    async def packument(
        self, package: PackageName, variant: pk.Variant, base_url: str, caller: Caller
    ) -> ServedPackument:
        """The served packument in `variant`, with tarball URLs under `base_url`.

        Raises PolicyBlocked when the policy blocks every version of the package.
        """
        entry, state = await self.entry(package)
        if state is CacheState.MISS:
            await self._prescan(package, entry)
        plan = await self.plan(package, entry)
        if plan.acted and self.gate is not None:
            if plan.blocked is not None:
                raise self.gate.refuse_package(package, plan, caller)
            self.gate.record_plan(package, plan, caller)
        edits = plan.edits
        salt = self.gate.salt if self.gate is not None else ""
        key: pk.RenderKeyT = (variant.value, base_url, edits.digest, salt)
        rendered = entry.renders.get(key)
        if rendered is None:
            rendered = await self._renders.run(
                (package.name, key),
                lambda: self.pool.run(
                    pk.render, entry.raw, package, variant, base_url, edits, salt
                ),
            )
            entry.remember(key, rendered)
            self.packuments.put(package.name, entry)
        return ServedPackument(rendered, variant, state, entry.stale_reason)

    async def version(self, package: PackageName, spec: str, base_url: str) -> bytes:
        """The served manifest of one version (exact version or dist-tag)."""
        entry, _ = await self.entry(package)
        edits = (await self.plan(package, entry)).edits
        body = await self.pool.run(pk.render_version, entry.raw, package, spec, base_url, edits)
        if body is None:
            raise NotFound(f"{package.name}@{spec} is not in this registry")
        return body

    async def dist_tags(self, package: PackageName) -> Mapping[str, str]:
        entry, _ = await self.entry(package)
        edits = (await self.plan(package, entry)).edits
        kept = [v for v in entry.summary.versions if v not in edits.hidden]
        return pk.served_dist_tags(entry.summary.dist_tags, kept, edits.restricted)

    # -- tarballs ----------------------------------------------------------------------------

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

    async def _fetch_tarball(
        self, package: PackageName, ref: pk.VersionRef
    ) -> tuple[CachedTarball, CacheState]:
        """The tarball bytes, cached or downloaded (verified against its integrity)."""
        key = ref.store_key
        cached = self.tarballs.get(key)
        if cached is not None:
            return cached, CacheState.HIT
        url = ref.tarball or f"{self.upstream.base}/{package.path}/-/{ref.filename}"
        digest = ref.digest
        if digest is None:
            log.warning(
                "%s@%s has no integrity or shasum: caching unverified", package, ref.version
            )
        what = f"tarball of {package.name}@{ref.version}"
        self.upstream.check_url(url)
        fresh = await self._downloads.run(
            key,
            lambda: self.tarballs.fill(
                key, digest, lambda sink: self.upstream.download(url, sink), what
            ),
        )
        return fresh, CacheState.MISS

    async def tarball(self, package: PackageName, filename: str, caller: Caller) -> ServedTarball:
        """A tarball by file name: located in the packument, checked by the policy (before the
        download when the verdict is already known, after a scan otherwise), then served."""
        entry, ref = await self._locate(package, filename)
        if self.gate is None:
            tarball, state = await self._fetch_tarball(package, ref)
            return ServedTarball(tarball, state, ref.store_key)
        decision = self.gate.settled(package, ref, caller)
        if decision is None:
            await self.gate.before_download(package, entry, ref, caller)
        tarball, state = await self._fetch_tarball(package, ref)
        if decision is None:
            decision = await self.gate.check_tarball(package, entry, ref, tarball, caller)
        notice = ""
        if decision.action in (Action.WARN, Action.HIDE):
            notice = f"{package.name}@{ref.version}: {warning_message(decision)}"
        return ServedTarball(tarball, state, ref.store_key, notice)

    async def _prescan(self, package: PackageName, entry: PackumentEntry) -> None:
        """Download and scan the versions an install will likely ask for next, before the
        packument goes out, so that its plan already reflects their tarballs (a spam version
        is hidden before a client picks it). Waits at most `scan_timeout`; what is not done
        by then finishes in the background."""
        if self.gate is None or self.tasks is None or self.settings.prefetch_scans <= 0:
            return
        done = [
            self._background(self._prefetch_one, package, entry, ref)
            for ref in likely_versions(entry.summary, self.settings.prefetch_scans)
        ]
        with anyio.move_on_after(self.settings.scan_timeout):
            for event in done:
                await event.wait()

    def _background(
        self,
        fn: Callable[[PackageName, PackumentEntry, pk.VersionRef], Awaitable[None]],
        *args: Any,
    ) -> anyio.Event:
        """Run `fn(*args)` in the app's task group; the event is set when it ends."""
        assert self.tasks is not None
        event = anyio.Event()

        async def run() -> None:
            try:
                await fn(*args)
            finally:
                event.set()

        self.tasks.start_soon(run)
        return event

    async def _prefetch_one(
        self, package: PackageName, entry: PackumentEntry, ref: pk.VersionRef
    ) -> None:
        assert self.gate is not None
        try:
            async with self._prefetch_limit:
                tarball, _ = await self._fetch_tarball(package, ref)
                await self.gate.scan(package, entry, ref, tarball)
        except FloodgateError as exc:
            log.info("background scan of %s@%s skipped: %s", package.name, ref.version, exc)
        except Exception:
            log.exception("background scan of %s@%s failed", package.name, ref.version)

    # -- npm audit ----------------------------------------------------------------------------

    async def verdict(
        self, package: PackageName, version: str
    ) -> tuple[Verdict | None, Decision] | None:
        """The verdict and decision on one version; None when there is no such version or
        enforcement is off."""
        if self.gate is None:
            return None
        entry, _ = await self.entry(package)
        return await self._assessed(package, entry, version)

    async def _assessed(
        self, package: PackageName, entry: PackumentEntry, version: str
    ) -> tuple[Verdict | None, Decision] | None:
        """The verdict on `version`, from its tarball: scanned now (at most `scan_timeout`)
        when it has not been; on metadata when the scan cannot be had."""
        assert self.gate is not None
        found = await self.gate.assess(entry, version)
        if found is None or (found[0] is not None and found[0].tarball_scanned):
            return found
        ref = entry.summary.versions[version]
        try:
            with anyio.fail_after(self.settings.scan_timeout):
                tarball, _ = await self._fetch_tarball(package, ref)
                await self.gate.scan(package, entry, ref, tarball)
        except (FloodgateError, TimeoutError) as exc:
            log.info("deciding %s@%s without its tarball: %s", package.name, version, exc)
            return found
        return await self.gate.assess(entry, version)

    async def advisories(
        self, wanted: Mapping[str, Sequence[str]], base_url: str
    ) -> dict[str, list[dict[str, Any]]]:
        """Floodgate's findings on the requested versions, as bulk-advisory entries.

        Names that are invalid or cannot be fetched are skipped (the audit goes on)."""
        out: dict[str, list[dict[str, Any]]] = {}
        if self.gate is None:
            return out
        limiter = anyio.CapacityLimiter(ADVISORY_CONCURRENCY)

        async def one(name: str, versions: Sequence[str]) -> None:
            async with limiter:
                try:
                    package = PackageName.parse(name)
                    entry, _ = await self.entry(package)
                except FloodgateError as exc:
                    log.info("audit: skipping %r: %s", name, exc)
                    return
                assert self.gate is not None
                for version in versions:
                    found = await self._assessed(package, entry, version)
                    if found is None:
                        continue
                    url = f"{base_url}/-/floodgate/verdict/{package.path}/{version}"
                    item = advisory(package.name, version, found[0], found[1], url)
                    if item is not None:
                        out.setdefault(package.name, []).append(item)

        async with anyio.create_task_group() as tg:
            for name, versions in wanted.items():
                if isinstance(name, str) and isinstance(versions, list):
                    tg.start_soon(one, name, [v for v in versions if isinstance(v, str)])
        return out

    # -- passthrough -------------------------------------------------------------------------

    async def forward(
        self, method: str, path_and_query: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Forwarded:
        return await self.upstream.forward(method, path_and_query, body=body, headers=headers)
