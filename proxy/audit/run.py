"""The audit itself: every locked package fetched, assessed and decided, concurrently.

Packuments are fetched once per name; tarball verdicts come from the verdict store when it has
them (so a second run downloads nothing), else the tarball is downloaded, verified against its
integrity, read and assessed, and the verdict stored.

Internal names are never asked of the upstream: they are read from `internal_source` (the
packages Floodgate hosts, beside it) like any other package, or listed as not checkable when
there is none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from proxy.audit.model import Audited, LockedPackage, Lockfile
from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts, read_packument
from proxy.detect.model import Verdict
from proxy.detect.scan import Upstream, fetch_packument, fetch_tarball
from proxy.detect.store import VerdictStore
from proxy.errors import FloodgateError, UpstreamRefused, UpstreamUnavailable
from proxy.internal import NO_INTERNAL, InternalNames
from proxy.npm.names import PackageName
from proxy.npm.packument import Summary
from proxy.policy.engine import Subject, decide
from proxy.policy.model import Action, Decision, Policy, ScanState
from proxy.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

CONCURRENCY = 16  # packages audited at once


@dataclass(frozen=True, slots=True)
class _Package:
    """A fetched packument: the detector's facts, and what a Floodgate registry withheld."""

    facts: PackageFacts
    summary: Summary  # where the versions' tarballs are
    restricted: dict[str, Any]  # policyRestrictions.versions of a Floodgate upstream
    restriction_message: str


@dataclass
class Auditor:
    upstream: UpstreamClient
    detector: Detector
    verdicts: VerdictStore
    policy: Policy
    scan_tarballs: bool = True
    concurrency: int = CONCURRENCY
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    internal: InternalNames = NO_INTERNAL  # never fetched; their public twins are flagged
    internal_source: Upstream | None = None  # where internal names are read (None: they are not)
    unreachable: int = 0  # packages that failed because the upstream could not be reached
    _packages: dict[str, anyio.Event] = field(default_factory=dict)
    _fetched: dict[str, _Package | FloodgateError] = field(default_factory=dict)

    async def audit(
        self, lockfile: Lockfile, done: Callable[[Audited], None] | None = None
    ) -> list[Audited]:
        """Audit every package of `lockfile`; results in the lockfile's order."""
        results: list[Audited | None] = [None] * len(lockfile.packages)
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def one(i: int, locked: LockedPackage) -> None:
            async with limiter:
                result = await self.audit_one(locked)
            results[i] = result
            if done is not None:
                done(result)

        async with anyio.create_task_group() as tg:
            for i, locked in enumerate(lockfile.packages):
                tg.start_soon(one, i, locked)
        return [r for r in results if r is not None]

    async def audit_one(self, locked: LockedPackage) -> Audited:
        if not locked.checkable:
            where = f" ({locked.resolved})" if locked.resolved else ""
            return Audited(locked, error=f"not checkable: a {locked.source} dependency{where}")
        if self.internal.is_internal(locked.name) and self.internal_source is None:
            return Audited(
                locked,
                error="not checkable: an internal package (never fetched from the upstream, "
                "and no packages hosted here)",
            )
        try:
            known = await self._from_store(locked)
            if known is not None:
                return known
            package = await self._package(locked.name)
            return await self._decide(locked, package)
        except UpstreamUnavailable as exc:
            self.unreachable += 1
            return Audited(locked, error=str(exc))
        except FloodgateError as exc:
            return Audited(locked, error=str(exc))

    async def _from_store(self, locked: LockedPackage) -> Audited | None:
        """A second run's shortcut: the stored verdict for the lockfile's exact tarball (its
        integrity), decided without the packument when no rule reads publish times or install
        scripts from it."""
        if self.policy.needs_package_facts or not locked.integrity or not self.scan_tarballs:
            return None
        stored = await anyio.to_thread.run_sync(
            lambda: self.verdicts.get(
                locked.name, locked.version, locked.integrity, need_tarball=True
            )
        )
        if stored is None:
            return None
        verdict = self.detector.current(stored)
        subject = Subject(
            locked.name,
            locked.version,
            verdict,
            self.clock(),
            ScanState.TARBALL,
            shadows=self.internal.shadowed(locked.name),
        )
        return Audited(locked, verdict, decide(self.policy, subject))

    async def _package(self, name: str) -> _Package:
        """The packument of `name`, fetched once however many versions are locked."""
        event = self._packages.get(name)
        if event is None:
            event = self._packages[name] = anyio.Event()
            try:
                self._fetched[name] = await self._fetch(name)
            except FloodgateError as exc:
                self._fetched[name] = exc
            finally:
                event.set()
        else:
            await event.wait()
        found = self._fetched[name]
        if isinstance(found, FloodgateError):
            raise found
        return found

    def _source(self, name: str) -> Upstream:
        """Where `name` is read: the internal source for an internal name, else the upstream."""
        if self.internal_source is not None and self.internal.is_internal(name):
            return self.internal_source
        return self.upstream

    async def _fetch(self, name: str) -> _Package:
        package = PackageName.parse(name)
        doc = await fetch_packument(self._source(name), package)
        restrictions = doc.get("policyRestrictions")
        restricted = restrictions.get("versions") if isinstance(restrictions, dict) else None
        message = restrictions.get("message") if isinstance(restrictions, dict) else ""
        summary, facts = read_packument(doc, package)
        return _Package(
            facts,
            summary,
            restricted if isinstance(restricted, dict) else {},
            message if isinstance(message, str) else "",
        )

    async def _decide(self, locked: LockedPackage, package: _Package) -> Audited:
        facts = package.facts
        if locked.version in package.restricted:
            # Auditing through a Floodgate: its policy blocks this version (it lists it under
            # policyRestrictions, and keeps it in `versions` with a blocked tarball URL).
            d = Decision(
                Action.BLOCK,
                "registry",
                package.restriction_message or "the registry's policy blocks this version",
                Action.BLOCK,
            )
            return Audited(locked, decision=d)
        vf = facts.versions.get(locked.version)
        if vf is None:
            return Audited(locked, error=f"{locked.spec} is not in the registry")
        integrity = vf.integrity
        verdict = await anyio.to_thread.run_sync(
            lambda: self.verdicts.get(locked.name, locked.version, integrity, need_tarball=True)
        )
        if verdict is not None:
            verdict = self.detector.current(verdict, facts)
        elif self.scan_tarballs:
            try:
                tarball = await fetch_tarball(
                    self._source(locked.name), package.summary, locked.version
                )
            except UpstreamRefused as exc:
                # Auditing through a Floodgate that learnt of the block from the tarball.
                d = Decision(Action.BLOCK, "registry", str(exc), Action.BLOCK)
                return Audited(locked, decision=d)
            verdict = await anyio.to_thread.run_sync(self._assess_and_store, facts, locked, tarball)
        else:
            verdict = await anyio.to_thread.run_sync(self._assess, facts, locked)
        shadows = self.internal.shadowed(locked.name)
        subject = Subject.of(facts, locked.version, verdict, self.clock(), None, shadows)
        note = None
        if locked.integrity and vf.integrity and locked.integrity != vf.integrity:
            note = (
                f"the lockfile's integrity for {locked.spec} differs from the registry's: "
                "the lockfile or the registry changed the tarball"
            )
        return Audited(locked, verdict, decide(self.policy, subject), note)

    def _assess(self, facts: PackageFacts, locked: LockedPackage) -> Verdict:
        return self.detector.assess(facts, locked.version, record=False)

    def _assess_and_store(
        self, facts: PackageFacts, locked: LockedPackage, tarball: Any
    ) -> Verdict:
        verdict = self.detector.assess(facts, locked.version, tarball)
        self.verdicts.put(verdict, facts.versions[locked.version].integrity)
        return verdict
