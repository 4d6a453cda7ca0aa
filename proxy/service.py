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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import anyio

from proxy.cache.memory import CacheState, PackumentCache, PackumentEntry, SingleFlight
from proxy.cache.store import CachedTarball, PackumentStore, TarballStore
from proxy.errors import NotFound, UpstreamError
from proxy.npm import packument as pk
from proxy.npm.names import PackageName
from proxy.settings import Settings
from proxy.upstream.client import Fetched, Forwarded, UpstreamClient
from proxy.workers import RenderPool

log = logging.getLogger(__name__)

STALE_RETRY = 30.0  # seconds between upstream retries while serving a stale packument


class Gate(Protocol):
    """The decide step: what a policy changes in a package before it is served."""

    @property
    def salt(self) -> str:
        """Changes whenever decisions may change (policy digest, intel version)."""
        ...

    def edits(self, package: PackageName, summary: pk.Summary) -> pk.Edits: ...


class OpenGate:
    """Serves everything unchanged (no policy)."""

    salt = ""

    def edits(self, package: PackageName, summary: pk.Summary) -> pk.Edits:
        return pk.NO_EDITS


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
        gate: Gate | None = None,
    ):
        self.settings = settings
        self.upstream = upstream
        self.packuments = packuments
        self.saved = saved
        self.tarballs = tarballs
        self.pool = pool
        self.gate: Gate = gate or OpenGate()
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
            summary = None
            if isinstance(got, Fetched):
                summary = await self.pool.run(pk.inspect, got.body, package)
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
        if summary is None:
            assert entry is not None
            assert not isinstance(got, Fetched)
            entry = entry.confirmed(now, got.etag)
            self.packuments.put(package.name, entry)
            return entry, CacheState.REVALIDATED
        assert isinstance(got, Fetched)
        entry = PackumentEntry(got.body, summary, got.etag, now)
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
            summary = await self.pool.run(pk.inspect, raw, package)
        except UpstreamError:
            return None
        return PackumentEntry(raw, summary, etag, confirmed_at=float("-inf"))

    async def packument(
        self, package: PackageName, variant: pk.Variant, base_url: str
    ) -> ServedPackument:
        """The served packument in `variant`, with tarball URLs under `base_url`."""
        entry, state = await self.entry(package)
        edits = self.gate.edits(package, entry.summary)
        salt = self.gate.salt
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
        edits = self.gate.edits(package, entry.summary)
        body = await self.pool.run(pk.render_version, entry.raw, package, spec, base_url, edits)
        if body is None:
            raise NotFound(f"{package.name}@{spec} is not in this registry")
        return body

    async def dist_tags(self, package: PackageName) -> Mapping[str, str]:
        entry, _ = await self.entry(package)
        edits = self.gate.edits(package, entry.summary)
        kept = [v for v in entry.summary.versions if v not in edits.removed]
        return pk.repair_dist_tags(entry.summary.dist_tags, kept)

    # -- tarballs ----------------------------------------------------------------------------

    async def tarball(self, package: PackageName, filename: str) -> ServedTarball:
        """A tarball by file name, from cache or downloaded, verified and stored."""
        entry = self.packuments.get(package.name)
        ref = entry.summary.for_filename(filename) if entry is not None else None
        if ref is None:  # not cached yet, or a version newer than our copy
            entry, _ = await self.entry(package)
            ref = entry.summary.for_filename(filename)
        if ref is None:
            raise NotFound(f"{package.name}: no version has a tarball named {filename!r}")
        key = ref.store_key
        cached = self.tarballs.get(key)
        if cached is not None:
            return ServedTarball(cached, CacheState.HIT, key)
        url = ref.tarball or f"{self.upstream.base}/{package.path}/-/{filename}"
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
        return ServedTarball(fresh, CacheState.MISS, key)

    # -- passthrough -------------------------------------------------------------------------

    async def forward(
        self, method: str, path_and_query: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Forwarded:
        return await self.upstream.forward(method, path_and_query, body=body, headers=headers)
