"""`HostedRegistry`: the organization's own packages, as a source the pipeline reads and a
store the write endpoints change.

Read side. To the service it is one more source beside the upstream and the internal upstream
(`get_packument`, `check_url`, `download`): a hosted packument is cached, inspected, decided and
rendered exactly like a proxied one, so abbreviated and full documents, ETags, gzip, tarball
URLs, policy and audit behave the same. Its documents' tarball URLs are `floodgate-hosted:`
URLs that every render rewrites to Floodgate's own; `download` reads the bytes from the store.

Write side. `change` runs one change to one package under a per-package lock (a lease in the
shared database, so replicas take turns too; the store's compare-and-swap on the revision
settles a race the lease could not): load the document, let the caller compute the new one,
store the new tarball first and the document second, and record the events. When anything
fails after the tarball was stored, the tarball is removed again: a refused or failed publish
leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import anyio
import orjson

from proxy.errors import Conflict, InvalidPackageName, NotFound
from proxy.gate import Caller
from proxy.hosted.access import HostedAccess
from proxy.hosted.document import HOSTED_SCHEME, Change, live_versions, next_rev
from proxy.hosted.search import Hit, SearchQuery, hosted_page, rank, search_object, summary
from proxy.hosted.store import HostedStore, RegistryEvent, StoredDoc
from proxy.identity import Identity
from proxy.internal import InternalNames
from proxy.metrics import HOSTED_CHANGES
from proxy.npm.names import PackageName, Target, parse_package_path
from proxy.storage.cluster import Lease, NoLeases
from proxy.upstream.client import Fetched, NotModified

log = logging.getLogger(__name__)

PUBLISHERS = 20  # newest publish events read to name the publisher of a search result


def iso_now(now: float) -> str:
    return (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class NewTarball:
    """A tarball a change adds: stored before the document that refers to it."""

    key: str  # SHA-512 hex
    data: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change computed: the new document (None: leave it), the tarball it adds, the
    tarballs it no longer refers to, and the changes for the audit log."""

    doc: dict[str, Any] | None
    changes: list[Change]
    add: NewTarball | None = None
    drop: tuple[str, ...] = ()


Compute = Callable[[dict[str, Any] | None, str], Awaitable[Outcome]]
CONFLICT_RETRIES = 3  # times a change is computed when other writes keep landing first


def tarball_key(manifest: Mapping[str, Any]) -> str | None:
    """The store key (SHA-512 hex) of a version's tarball, from its `dist.integrity`."""
    dist = manifest.get("dist")
    integrity = dist.get("integrity") if isinstance(dist, dict) else None
    if not isinstance(integrity, str) or not integrity.startswith("sha512-"):
        return None
    try:
        return base64.b64decode(integrity[7:], validate=True).hex()
    except (binascii.Error, ValueError):
        return None


class HostedRegistry:
    """The hosted packages: a read source for the pipeline and the writes' one place."""

    base = HOSTED_SCHEME

    def __init__(
        self,
        store: HostedStore,
        access: HostedAccess,
        internal: InternalNames,
        *,
        max_publish_bytes: int,
        leases: Lease | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.access = access
        self.internal = internal
        self.max_publish_bytes = max_publish_bytes
        self.leases = leases if leases is not None else NoLeases()
        self.clock = clock
        self._locks: dict[str, anyio.Lock] = {}
        self._summaries: dict[str, tuple[str, dict[str, Any] | None]] = {}  # name: (rev, summary)

    def hosts(self, package: PackageName) -> bool:
        return bool(self.internal) and self.internal.is_internal(package.name)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.store.close)

    # -- read side (the pipeline's source) -------------------------------------------------

    async def load(self, package: PackageName) -> StoredDoc | None:
        return await anyio.to_thread.run_sync(self.store.load, package.name)

    async def get_packument(
        self, package: PackageName, etag: str | None = None
    ) -> Fetched | NotModified:
        started = time.monotonic()
        doc = await self.load(package)
        if doc is None:
            raise NotFound(f"{package.name} is an internal package and has not been published here")
        served_etag = f'"{doc.rev}"'
        if etag == served_etag:
            return NotModified(etag)
        if not live_versions(orjson.loads(doc.body)):
            raise NotFound(f"{package.name} was unpublished (every version removed)")
        return Fetched(doc.body, served_etag, time.monotonic() - started)

    def check_url(self, url: str) -> str:
        if not url.startswith(HOSTED_SCHEME):
            raise NotFound(f"{url!r} is not a tarball this registry hosts")
        return url

    async def download(self, url: str, sink: Callable[[bytes], object]) -> int:
        parsed = parse_package_path(unquote(url.removeprefix(HOSTED_SCHEME)))
        if parsed.target is not Target.TARBALL:
            raise NotFound(f"{url!r} is not a hosted tarball")
        key = await self._key_of(parsed.package, parsed.arg)
        data = await anyio.to_thread.run_sync(self.store.get_tarball, key)
        if data is None:
            raise NotFound(f"the tarball {parsed.arg} of {parsed.package.name} is missing")
        sink(data)
        return len(data)

    async def _key_of(self, package: PackageName, filename: str) -> str:
        doc = await self.load(package)
        if doc is not None:
            for manifest in live_versions(orjson.loads(doc.body)).values():
                dist = manifest.get("dist") if isinstance(manifest, dict) else None
                tarball = dist.get("tarball", "") if isinstance(dist, dict) else ""
                if isinstance(tarball, str) and tarball.endswith(f"/-/{filename}"):
                    key = tarball_key(manifest)
                    if key is not None:
                        return key
        raise NotFound(f"{package.name} has no published tarball named {filename!r}")

    # -- search ----------------------------------------------------------------------------

    def search(self, query: SearchQuery, who: Identity) -> tuple[list[dict[str, Any]], int]:
        """The hosted packages `who` may read that match `query`: the requested page of them
        as search results, and how many match in all. Blocking: call from a worker thread."""
        hits = rank(self._readable(who), query)
        page = [search_object(hit, self._publisher(hit)) for hit in hosted_page(hits, query)]
        return page, len(hits)

    def _readable(self, who: Identity) -> Iterator[tuple[str, dict[str, Any]]]:
        """The search summary of every hosted document `who` may read (access is checked
        before a body is read: a name the caller may not read never reaches the ranking, so
        never the answer). Summaries are kept per revision: a document is read and parsed
        again only after it changed."""
        for name, rev in self.store.revisions():
            try:
                package = PackageName.parse(name)
            except InvalidPackageName:
                continue
            if not self.hosts(package) or not self.access.may_read(who, package):
                continue
            kept = self._summaries.get(name)
            if kept is None or kept[0] != rev:
                stored = self.store.load(name)
                if stored is None:  # removed since the listing
                    continue
                try:
                    doc = orjson.loads(stored.body)
                except orjson.JSONDecodeError:
                    log.warning("search: the stored document of %r is not JSON; skipped", name)
                    continue
                kept = (stored.rev, summary(doc) if isinstance(doc, dict) else None)
                self._summaries[name] = kept
            if kept[1] is not None:
                yield name, kept[1]

    def _publisher(self, hit: Hit) -> str | None:
        """The token that published the version `latest` points at, from the audit log."""
        tags = hit.doc.get("dist-tags")
        latest = tags.get("latest") if isinstance(tags, dict) else None
        for event in self.store.events(package=hit.name, kinds=("publish",), limit=PUBLISHERS):
            if event.version == latest:
                return event.token or None
        return None

    # -- the dashboard ---------------------------------------------------------------------

    def activity(
        self, package: str | None, kinds: Sequence[str], limit: int
    ) -> tuple[list[RegistryEvent], list[str]]:
        """The newest events (of one package, of some kinds) and every hosted name, for the
        dashboard's Registry page. Blocking: call from a worker thread."""
        return self.store.events(package=package, kinds=kinds, limit=limit), self.store.names()

    # -- write side ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, anyio.Lock())
        try:
            async with lock, self.leases.hold(f"hosted:{name}"):
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._locks.pop(name, None)

    async def change(
        self, package: PackageName, caller: Caller, compute: Compute, rev: str | None = None
    ) -> list[Change]:
        """Apply one change to `package`: `compute(stored document or None, now ISO)` returns
        the outcome (raising to refuse). `rev`, when the client sent one (`/-rev/<rev>`), must
        be the stored revision. Returns the changes made.

        When the document changed between its load and the store (another replica wrote it
        without the lease: the lease timed out or could not be taken) and the client named no
        revision, the change is computed again on the fresh document, up to `CONFLICT_RETRIES`
        times, so that two publishes of different versions both land and neither client sees
        a 409; `compute` must therefore be safe to run more than once. A client that named a
        revision gets the Conflict (409): it read the document it meant to change."""
        attempt = 1
        while True:
            try:
                changes, now, made = await self._change_once(package, compute, rev)
                break
            except Conflict:
                if rev is not None or attempt >= CONFLICT_RETRIES:
                    raise
                attempt += 1
                log.info(
                    "%s was changed by another request meanwhile: computing the change again "
                    "on the fresh document (attempt %d)",
                    package.name,
                    attempt,
                )
        if made:
            for change in changes:
                await self.record(package, change, caller, now)
        return changes

    async def _change_once(
        self, package: PackageName, compute: Compute, rev: str | None
    ) -> tuple[list[Change], float, bool]:
        """One load, compute and store; (the changes, when, whether they were stored)."""
        async with self._writing(package.name):
            stored = await self.load(package)
            if rev is not None and stored is not None and rev != stored.rev:
                raise Conflict(
                    f"{package.name} changed since it was read (revision {rev}, now "
                    f"{stored.rev}); read it again and retry"
                )
            now = self.clock()
            current = orjson.loads(stored.body) if stored is not None else None
            outcome = await compute(current, iso_now(now))
            if outcome.doc is None or not outcome.changes:
                return outcome.changes, now, False
            await anyio.to_thread.run_sync(self._commit, package, stored, outcome)
        return outcome.changes, now, True

    def _commit(self, package: PackageName, stored: StoredDoc | None, outcome: Outcome) -> None:
        assert outcome.doc is not None
        doc = dict(outcome.doc)
        doc.pop("_rev", None)
        plain = orjson.dumps(doc)
        doc["_rev"] = next_rev(stored.rev if stored else None, plain)
        body = orjson.dumps(doc)
        added = False
        if outcome.add is not None:
            added = self.store.put_tarball(outcome.add.key, package.name, outcome.add.data)
        try:
            self.store.save(package.name, body, doc["_rev"], stored.rev if stored else None)
        except BaseException:
            if outcome.add is not None and added:
                self._drop_unreferenced(package, outcome.add.key)
            raise
        for key in outcome.drop:
            try:
                self.store.drop_tarball(key)
            except Exception:  # the document no longer refers to it: only space is lost
                log.exception("could not remove the unpublished tarball %s", key)

    def _drop_unreferenced(self, package: PackageName, key: str) -> None:
        """Remove a tarball a failed change stored, unless the document now stored (another
        request's, which stored the same bytes meanwhile) refers to it."""
        try:
            current = self.store.load(package.name)
            if current is not None:
                for manifest in live_versions(orjson.loads(current.body)).values():
                    if isinstance(manifest, dict) and tarball_key(manifest) == key:
                        return
            self.store.drop_tarball(key)
        except Exception:  # only space is lost; the change's own error is what the client sees
            log.exception("could not remove the tarball %s of a failed change", key)

    async def record(
        self, package: PackageName, change: Change, caller: Caller, now: float | None = None
    ) -> None:
        """Add one event to the audit log (never fails the request: the change is made)."""
        event = RegistryEvent(
            self.clock() if now is None else now,
            change.event,
            package.name,
            change.version,
            change.detail,
            caller.group,
            caller.token,
            caller.client,
        )
        HOSTED_CHANGES.labels(change.event).inc()
        log.info(
            "%s %s%s by %s: %s",
            change.event,
            package.name,
            f"@{change.version}" if change.version else "",
            caller.identity.label(),
            change.detail,
        )
        try:
            await anyio.to_thread.run_sync(self.store.record, event)
        except Exception:
            log.exception("could not record %s of %s in the audit log", change.event, package)
