"""The decide step, between upstream facts and the response: `PolicyGate`, or `OpenGate` when
enforcement is off. The service calls the same methods on either; only the gate knows about
the detector, the verdict store, the policy and the decision log.

Packuments. `plan` assesses every version (the stored tarball verdict when there is one, else
the metadata verdict) and turns the policy's decisions into `Edits`: blocked versions are
listed under `policyRestrictions` and pointed at a blocked tarball URL that spells the reason,
hidden ones removed, warned ones deprecated with the reason. Work is incremental: metadata
verdicts are kept per (version, integrity), so a refreshed packument assesses only its new
versions, and an OSV feed refresh (or a new link between packages) redoes only the feed lookup
and the relational findings of the verdicts kept (`Detector.current`), never their signals;
tarball verdicts come in one query per package; a plan is memoised until the document, a
verdict's label, the policy or the OSV index changes (the `salt` and a per-package
generation).

Tarballs. `tarball` refuses before any download what is already known to be blocked; otherwise
the bytes are fetched, scanned (at most `scan_timeout`; then the rule's `unscanned` mode
decides), decided and logged. A decision made on a scanned tarball is remembered, so a hot
tarball is one dictionary lookup.

`hide` found by the tarball. When only the tarball shows that a version is to be hidden, a
client may already hold a packument that listed it. The gate remembers, per client address and
package, which versions the last packument it served left out (`LISTED_WINDOW` seconds): a
client that resolved the version from a packument listing it gets a 403 with the reason (it
must not silently install it), and every packument served after hides the version, so a new
resolution falls back to another one. A client that did not resolve it from us (a lockfile that
pins it) is served with a notice, as for any hidden version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import anyio
from cachetools import LRUCache

from proxy.cache.memory import CacheState, PackumentEntry, SingleFlight
from proxy.cache.store import CachedTarball
from proxy.decisions import DecisionRecord, DecisionWriter
from proxy.detect.evaluate import DETECTOR_VERSION
from proxy.detect.facts import PackageFacts
from proxy.detect.model import Verdict
from proxy.errors import FloodgateError, PolicyBlocked
from proxy.health import Check, feed_check, policy_check
from proxy.identity import ANONYMOUS, Identity
from proxy.inspect import Inspector
from proxy.internal import NO_INTERNAL, InternalNames
from proxy.metrics import DECISIONS, SCAN_SECONDS, SCAN_TIMEOUTS, Timer
from proxy.npm.names import PackageName
from proxy.npm.packument import NO_EDITS, Edits, VersionRef
from proxy.npm.tarball import TarballFacts, read_tarball
from proxy.policy.engine import Subject, decide, decider
from proxy.policy.holder import PolicyHolder
from proxy.policy.model import Action, Decision, Policy, ScanState
from proxy.storage.cluster import Lease, NoLeases
from proxy.storage.sql import database_errors

log = logging.getLogger(__name__)

MAX_RESTRICTION_LINES = 5  # versions explained in the policyRestrictions message
PLAN_MEMO = 10_000  # packages whose plans are kept
METADATA_MEMO = 10_000  # packages whose metadata verdicts are kept
SETTLED_MEMO = 100_000  # tarball decisions kept
PACKUMENT_LOG_WINDOW = 300.0  # seconds between log entries for the same client, package, plan
POLICY_POLL = 2.0  # seconds between checks of the policy file (and of the OSV feed's age)
LISTED_WINDOW = 600.0  # seconds a served packument counts as what a client resolved from

Fetch = Callable[[], Awaitable[tuple[CachedTarball, CacheState]]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, for the decision log and the choice of policy: `token` is the name of the
    caller's Floodgate token (never the token), or the fingerprint of an anonymous caller's
    own credentials; `group` its group ("" anonymous)."""

    client: str = "-"
    user_agent: str = ""
    token: str = ""
    request_id: str = ""
    group: str = ""

    @property
    def identity(self) -> Identity:
        """The token identity behind this caller (anonymous without a group)."""
        return Identity(self.group, self.token) if self.group else ANONYMOUS

    @staticmethod
    def fingerprint(authorization: str) -> str:
        """A stable, non-secret name for a credential: `bearer:<8 hex>`."""
        if not authorization:
            return ""
        kind, _, secret = authorization.partition(" ")
        digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
        return f"{kind.lower()}:{digest}"


@dataclass(frozen=True, slots=True)
class Acted:
    """A version the policy did something to (or would have, in dry-run or monitor)."""

    version: str
    decision: Decision
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Plan:
    """What the policy does to one package: edits for the packument, and the decisions."""

    edits: Edits = NO_EDITS
    acted: tuple[Acted, ...] = ()
    policy: str = ""
    digest: str = ""


OPEN_PLAN = Plan()


def why_hint(name: str, version: str = "") -> str:
    """The one step that explains any decision, wherever a client shows only part of it."""
    return f"floodgate why {name}@{version}" if version else f"floodgate why {name}"


def blocked_message(name: str, version: str, decision: Decision, policy: str) -> str:
    """The `error` clients print for a blocked package or tarball (and its URL slug)."""
    what = f"{name}@{version}" if version else name
    return (
        f"Floodgate blocked {what} (policy {policy!r}, rule {decision.rule!r}): "
        f"{decision.reason.rstrip('.')}. Details: {why_hint(name, version)}"
    )


def warning_message(decision: Decision) -> str:
    return f"Floodgate warning (rule {decision.rule!r}): {decision.reason}"


def hidden_message(name: str, version: str, decision: Decision, policy: str) -> str:
    """The `error` for a version whose tarball showed it is to be hidden (see the module
    docstring): the reason, and that a new install resolves to another version."""
    return (
        f"Floodgate hid {name}@{version} (policy {policy!r}, rule {decision.rule!r}): "
        f"{decision.reason}. It is hidden from now on: install again to pick another version"
    )


def plan_for(policy: Policy, decisions: list[Acted]) -> Plan:
    """Turn per-version decisions into packument edits (pure).

    Blocked versions stay in the packument (see `Edits`), so the whole package is never
    refused at the packument: every client then reaches a blocked tarball URL and prints its
    reason, directly or transitively.
    """
    hidden = frozenset(a.version for a in decisions if a.decision.action is Action.HIDE)
    blocked = [a for a in decisions if a.decision.action is Action.BLOCK]
    deprecated = tuple(
        (a.version, warning_message(a.decision))
        for a in decisions
        if a.decision.action is Action.WARN
    )
    reasons = tuple(
        (a.version, blocked_message(a.verdict.name, a.version, a.decision, policy.name))
        for a in blocked
    )
    message = ""
    if blocked:
        lines = [text for _, text in reasons[:MAX_RESTRICTION_LINES]]
        more = len(reasons) - MAX_RESTRICTION_LINES
        message = "\n".join(lines) + (f"\n(and {more} more)" if more > 0 else "")
    edits = Edits(hidden, frozenset(a.version for a in blocked), message, deprecated, reasons)
    return Plan(edits, tuple(decisions), policy.name, policy.digest)


@dataclass(frozen=True, slots=True)
class GatedTarball:
    """A tarball the gate lets through, with the notice (if any) the client should see."""

    tarball: CachedTarball
    cache: CacheState
    notice: str = ""


class Gate(Protocol):
    """The decide step as the service sees it."""

    @property
    def salt(self) -> str:
        """Changes whenever decisions may change (part of every rendered packument's key)."""
        ...

    def for_group(self, group: str) -> Gate:
        """The gate deciding for callers of `group` (its policy; "" is anonymous)."""
        ...

    def planned(self, package: PackageName, entry: PackumentEntry) -> Plan | None:
        """The plan for this packument when it is made already (no work), else None."""

    async def plan(self, package: PackageName, entry: PackumentEntry) -> Plan: ...

    def admit(self, package: PackageName, plan: Plan, caller: Caller) -> None:
        """Log a packument's decisions (a packument is never refused whole: see `plan_for`)."""

    async def tarball(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        caller: Caller,
        fetch: Fetch,
    ) -> GatedTarball: ...

    async def prescan(
        self, package: PackageName, entry: PackumentEntry, ref: VersionRef, fetch: Fetch
    ) -> None:
        """Fetch and scan a version no client asked for yet (background work)."""

    async def assess(
        self, package: PackageName, entry: PackumentEntry, version: str, fetch: Fetch
    ) -> tuple[Verdict | None, Decision] | None:
        """The verdict and decision on one version (scanning its tarball if it can), or None
        when there is no such version or nothing is enforced."""

    async def admit_publish(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        tarball: TarballFacts,
        caller: Caller,
    ) -> str:
        """Decide on a version a client publishes (its tarball in hand, `entry` the packument
        it would make): raise PolicyBlocked for what the policy would refuse to serve (block
        or hide), log the decision; return a warning for the client ("" when none)."""
        ...

    async def maintain(self) -> None:
        """Run for the proxy's lifetime: pick up policy edits and feed refreshes."""

    def changed(self, name: str) -> None:
        """Another replica stored a verdict on `name`: plan it afresh."""

    def describe(self) -> str:
        """One log line: what is enforced."""
        ...

    def checks(self) -> tuple[Check, ...]:
        """The policy's and the OSV feed's parts of readiness."""
        ...

    def close(self) -> None: ...


class OpenGate:
    """The gate when enforcement is off: everything is served as the upstream has it."""

    salt = ""

    def for_group(self, group: str) -> Gate:
        return self

    def planned(self, package: PackageName, entry: PackumentEntry) -> Plan | None:
        return OPEN_PLAN

    async def plan(self, package: PackageName, entry: PackumentEntry) -> Plan:
        return OPEN_PLAN

    def admit(self, package: PackageName, plan: Plan, caller: Caller) -> None:
        return None

    async def tarball(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        caller: Caller,
        fetch: Fetch,
    ) -> GatedTarball:
        tarball, state = await fetch()
        return GatedTarball(tarball, state)

    async def prescan(
        self, package: PackageName, entry: PackumentEntry, ref: VersionRef, fetch: Fetch
    ) -> None:
        return None

    async def assess(
        self, package: PackageName, entry: PackumentEntry, version: str, fetch: Fetch
    ) -> tuple[Verdict | None, Decision] | None:
        return None

    async def admit_publish(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        tarball: TarballFacts,
        caller: Caller,
    ) -> str:
        return ""

    async def maintain(self) -> None:
        return None

    def changed(self, name: str) -> None:
        return None

    def describe(self) -> str:
        return "enforcement is off (--no-enforce): packages are served unchecked"

    def checks(self) -> tuple[Check, ...]:
        return (policy_check(None), feed_check(None, False, None, 0.0, 0, None))

    def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Settled:
    """A tarball decision made on a scanned tarball, valid while salt and generation hold."""

    salt: str
    generation: int
    decision: Decision
    verdict: Verdict


@dataclass
class _Memo:
    packed: bytes  # the document the plan was made for
    generation: int
    salt: str
    plan: Plan


@dataclass
class _MetadataVerdicts:
    """Metadata verdicts of one package's versions, keyed by (version, integrity).

    `assessed` holds them as the detector made them, for as long as the process runs (one
    DETECTOR_VERSION). What an OSV feed refresh or a new link between packages (the detector's
    epoch) can change is only what `Detector.current` redoes: the feed lookup and the relational
    findings. So when the epoch moves, every assessed verdict is brought up to date that way
    (an index lookup each, no signal re-run), and `changed` keeps those that came out different.
    """

    epoch: str
    assessed: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    changed: dict[tuple[str, str], Verdict] = field(default_factory=dict)

    def get(self, key: tuple[str, str]) -> Verdict | None:
        found = self.changed.get(key)
        return found if found is not None else self.assessed.get(key)


@dataclass
class PolicyGate:
    """Detector + verdict store + policy + decision log, as the proxy's decide step."""

    holder: PolicyHolder
    inspector: Inspector
    decisions: DecisionWriter
    scan_timeout: float = 10.0
    # Cluster-wide: one replica scans a tarball, the others wait and read its stored verdict.
    leases: Lease = field(default_factory=NoLeases)
    # Told the name of every package a tarball verdict was stored on (from a worker thread).
    on_verdict: Callable[[str], None] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    internal: InternalNames = NO_INTERNAL
    primary: bool = True  # owns the detector and the log; siblings decide with other policies
    _generation: dict[str, int] = field(default_factory=dict)
    _memo: LRUCache[str, _Memo] = field(default_factory=lambda: LRUCache(PLAN_MEMO))
    _metadata: LRUCache[str, _MetadataVerdicts] = field(
        default_factory=lambda: LRUCache(METADATA_MEMO)
    )
    # An LRUCache reorders itself on every read: threads that plan at once take turns at it.
    _metadata_lock: threading.Lock = field(default_factory=threading.Lock)
    _scans: SingleFlight[tuple[str, str], Verdict] = field(default_factory=SingleFlight)
    _planning: SingleFlight[tuple[str, str, int, int], Plan] = field(default_factory=SingleFlight)
    _settled: LRUCache[tuple[str, str, str], _Settled] = field(
        default_factory=lambda: LRUCache(SETTLED_MEMO)
    )
    _logged: LRUCache[tuple[str, str, str, str], float] = field(
        default_factory=lambda: LRUCache(SETTLED_MEMO)
    )
    _listed: LRUCache[tuple[str, str], tuple[float, frozenset[str]]] = field(
        default_factory=lambda: LRUCache(SETTLED_MEMO)
    )
    _salt_inputs: tuple[str, int, int | None] | None = None
    _salt: str = ""
    _groups: dict[str, PolicyGate] = field(default_factory=dict)
    _siblings: list[PolicyGate] = field(default_factory=list)

    @property
    def policy(self) -> Policy:
        return self.holder.policy

    # -- policy per group --------------------------------------------------------------------

    def for_group(self, group: str) -> PolicyGate:
        """The gate whose policy applies to `group` (itself for groups without their own)."""
        return self._groups.get(group, self)

    def assign(self, group: str, holder: PolicyHolder) -> PolicyGate:
        """Decide for `group` with `holder`'s policy. Groups with the same policy file share
        one sibling gate; siblings share the detector, verdicts, scans and the decision log,
        and keep their own plans and decisions (every cache of them is keyed by the policy's
        digest too, through `salt`), so two groups never share a plan or a rendered packument
        made for another policy."""
        if not self.primary:
            raise ValueError("assign groups on the primary gate")
        gate = next(
            (g for g in (self, *self._siblings) if g.holder.path == holder.path),
            None,
        )
        if gate is None:
            gate = PolicyGate(
                holder,
                self.inspector,
                self.decisions,
                self.scan_timeout,
                leases=self.leases,
                on_verdict=self.on_verdict,
                clock=self.clock,
                internal=self.internal,
                primary=False,
                _generation=self._generation,
                _metadata=self._metadata,
                _metadata_lock=self._metadata_lock,
                _scans=self._scans,
            )
            self._siblings.append(gate)
        self._groups[group] = gate
        return gate

    @property
    def holders(self) -> list[PolicyHolder]:
        return [self.holder, *(g.holder for g in self._siblings)]

    def _reload_all(self) -> None:
        for holder in self.holders:
            holder.reload()

    def _subject_of(
        self,
        facts: PackageFacts,
        version: str,
        verdict: Verdict | None,
        scan: ScanState | None = None,
    ) -> Subject:
        shadows = self.internal.shadowed(facts.name) if self.internal else None
        return Subject.of(facts, version, verdict, self.clock(), scan, shadows)

    @property
    def _osv_generation(self) -> int | None:
        feed = self.inspector.feed
        return feed.generation if feed is not None else None  # changes when the index does

    @property
    def epoch(self) -> str:
        """Changes whenever a verdict may: detector version, OSV index, the detector's links
        between packages (a campaign that grew, a wallet or code file now shared)."""
        detector = self.inspector.detector.epoch
        return f"{DETECTOR_VERSION}:{self._osv_generation}:{detector}"

    @property
    def salt(self) -> str:
        """Changes whenever decisions may: policy, detector version, OSV index."""
        inputs = (
            self.holder.policy.digest,
            self.inspector.detector.epoch,
            self._osv_generation,
        )
        if inputs != self._salt_inputs:  # the hot path reads this on every request
            self._salt_inputs = inputs
            self._salt = f"{inputs[0]}:{DETECTOR_VERSION}:{inputs[1]}:{inputs[2]}"
        return self._salt

    def describe(self) -> str:
        policy = self.policy
        feed = self.inspector.feed
        groups = "".join(
            f"; group {group}: policy {gate.policy.name} (digest {gate.policy.digest})"
            for group, gate in sorted(self._groups.items())
        )
        return (
            f"policy {policy.name} ({policy.source}, digest {policy.digest}): "
            f"{len(policy.rules)} rules, {len(policy.waivers)} waivers, mode {policy.mode}"
            f"{groups}; " + (feed.describe() if feed is not None else "no OSV feed")
        )

    def checks(self) -> tuple[Check, ...]:
        holder, feed = self.holder, self.inspector.feed
        policy = policy_check(
            holder.policy.name, holder.policy.digest, holder.reloads, holder.error
        )
        if feed is None:
            return (policy, feed_check(None, False, None, 0.0, 0, None))
        return (
            policy,
            feed_check(
                feed.source,
                feed.loaded_at is not None,
                feed.age(),
                feed.interval,
                feed.index.record_count,
                feed.error,
            ),
        )

    def close(self) -> None:
        if not self.primary:  # the primary gate closes what siblings share
            return
        self.decisions.close()
        self.inspector.close()

    async def maintain(self) -> None:
        """Pick up policy edits (file watch, and SIGHUP where signals reach us) and refresh the
        OSV feed when it is due. Runs until cancelled."""
        with contextlib.suppress(ValueError, NotImplementedError, RuntimeError):
            # Only the main thread can take signals; tests run the app in other threads.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload_all)
        feed = self.inspector.feed
        if feed is not None and feed.loaded_at is None:
            await anyio.to_thread.run_sync(feed.refresh)  # it logs what it loaded, or why not
        while True:
            await anyio.sleep(POLICY_POLL)
            for holder in self.holders:
                holder.reload_if_changed()
            if feed is not None and feed.due():
                await anyio.to_thread.run_sync(feed.refresh_if_due)

    def changed(self, name: str) -> None:
        self._generation[name] = self._generation.get(name, 0) + 1

    # -- packuments --------------------------------------------------------------------------

    def planned(self, package: PackageName, entry: PackumentEntry) -> Plan | None:
        memo = self._memo.get(package.name)
        if memo is not None and (memo.packed, memo.generation, memo.salt) == (
            entry.packed,
            self._generation.get(package.name, 0),
            self.salt,
        ):
            return memo.plan
        return None

    async def plan(self, package: PackageName, entry: PackumentEntry) -> Plan:
        """The plan for this packument; computed off the event loop, then memoised."""
        done = self.planned(package, entry)
        if done is not None:
            return done
        name = package.name
        generation = self._generation.get(name, 0)
        salt = self.salt
        # A client and the look-ahead can ask at once for a document's first plan: one makes it.
        flight = (name, salt, generation, id(entry.packed))
        return await self._planning.run(flight, lambda: self._plan(name, entry, generation, salt))

    async def _plan(self, name: str, entry: PackumentEntry, generation: int, salt: str) -> Plan:
        policy = self.policy
        plan = await anyio.to_thread.run_sync(self._compute_plan, policy, entry)
        self._memo[name] = _Memo(entry.packed, generation, salt, plan)
        if plan.acted:
            log.info(
                "policy %s on %s: %s",
                policy.name,
                name,
                ", ".join(f"{a.version} {a.decision.intended}" for a in plan.acted[:10])
                + (f" (+{len(plan.acted) - 10} more)" if len(plan.acted) > 10 else ""),
            )
        return plan

    def _metadata_for(self, facts: PackageFacts) -> _MetadataVerdicts:
        """The package's metadata verdicts, brought up to the current epoch (see
        `_MetadataVerdicts`). Blocking: call from a thread."""
        epoch = self.epoch
        with self._metadata_lock:  # plans of several packages run at once, in threads
            known = self._metadata.get(facts.name)
            if known is None:
                known = _MetadataVerdicts(epoch)
                self._metadata[facts.name] = known
        if known.epoch != epoch:
            current = self.inspector.detector.current
            known.changed = {
                key: now
                for key, verdict in known.assessed.items()
                if (now := current(verdict, facts)) is not verdict
            }
            known.epoch = epoch
        return known

    def _metadata_verdict(
        self, known: _MetadataVerdicts, facts: PackageFacts, key: tuple[str, str], record: bool
    ) -> Verdict:
        """The metadata verdict on one version (`key`: version, integrity), assessed the first
        time it is asked for."""
        verdict = known.get(key)
        if verdict is None:
            verdict = self._assess(facts, key[0], record=record)
            known.assessed[key] = verdict
        return verdict

    def _compute_plan(self, policy: Policy, entry: PackumentEntry) -> Plan:
        facts = entry.facts
        if facts is None:
            return OPEN_PLAN
        detector = self.inspector.detector
        stored = self.inspector.verdicts.for_package(facts.name)
        known = self._metadata_for(facts)
        latest = facts.dist_tags.get("latest", "")
        now = self.clock()
        shadows = self.internal.shadowed(facts.name) if self.internal else None
        keys: dict[str, tuple[str, str]] = {}
        for version in facts.versions:
            ref = entry.summary.versions.get(version)
            keys[version] = (version, (ref.integrity if ref else None) or "")
        # The versions never looked at, assessed together (they share the work where their
        # manifests agree); `latest` on its own, as it is recorded in the detector's indexes.
        new = [k for v, k in keys.items() if v != latest and k not in stored and not known.get(k)]
        if new:
            made = detector.assess_metadata(facts, [k[0] for k in new])
            known.assessed.update((k, made[k[0]]) for k in new)
        acted: list[Acted] = []
        decide_one = decider(policy)
        for version, key in keys.items():
            verdict = stored.get(key)
            if verdict is not None:
                verdict = detector.current(verdict, facts)
            else:
                verdict = self._metadata_verdict(known, facts, key, version == latest)
            d = decide_one(Subject.of(facts, version, verdict, now, None, shadows))
            if d.acted:
                acted.append(Acted(version, d, verdict))
        return plan_for(policy, acted)

    def admit(self, package: PackageName, plan: Plan, caller: Caller) -> None:
        """Log a packument's decisions: once per client, package and plan every
        `PACKUMENT_LOG_WINDOW` seconds (a package with hundreds of warned versions would
        otherwise write hundreds of rows per request). Raise PolicyBlocked when every version
        is blocked."""
        self._listed[(caller.client, package.name)] = (time.monotonic(), plan.edits.hidden)
        if not plan.acted:
            return
        key = (caller.client, package.name, plan.edits.digest, plan.digest)
        now = time.monotonic()
        last = self._logged.get(key)
        if last is None or now - last >= PACKUMENT_LOG_WINDOW:
            self._logged[key] = now
            self.decisions.record(
                *(
                    self._row(package.name, a.version, a.decision, a.verdict, caller, "packument")
                    for a in plan.acted
                )
            )

    def _record(
        self,
        name: str,
        version: str,
        d: Decision,
        verdict: Verdict | None,
        caller: Caller,
        via: str,
    ) -> None:
        self.decisions.record(self._row(name, version, d, verdict, caller, via))

    def _row(
        self,
        name: str,
        version: str,
        d: Decision,
        verdict: Verdict | None,
        caller: Caller,
        via: str,
    ) -> DecisionRecord:
        DECISIONS.labels(d.action.value, d.rule, via).inc()
        return DecisionRecord(
            time=time.time(),
            package=name,
            version=version,
            action=d.action.value,
            intended=d.intended.value,
            rule=d.rule,
            label=verdict.label.value if verdict is not None else None,
            score=verdict.score if verdict is not None else None,
            reasons=(d.reason, *d.details),
            waiver=d.waiver,
            via=via,
            client=caller.client,
            user_agent=caller.user_agent,
            token=caller.token,
            request_id=caller.request_id,
            policy=self.policy.name,
            policy_digest=self.policy.digest,
            group=caller.group,
        )

    # -- verdicts ----------------------------------------------------------------------------

    def _known(self, entry: PackumentEntry, ref: VersionRef) -> Verdict | None:
        """What is known of a version without its tarball bytes: the stored tarball verdict,
        else the metadata verdict (kept from the plan). Blocking: call from a thread."""
        facts = entry.facts
        if facts is None:
            return None
        detector = self.inspector.detector
        stored = self.inspector.verdicts.get(
            facts.name, ref.version, ref.integrity, need_tarball=True
        )
        if stored is not None:
            return detector.current(stored, facts)
        known = self._metadata_for(facts)
        return self._metadata_verdict(known, facts, (ref.version, ref.integrity or ""), False)

    async def _scan(
        self, entry: PackumentEntry, ref: VersionRef, tarball: CachedTarball, before: Verdict
    ) -> Verdict:
        """The tarball verdict, made now (once per version however many ask; a caller that
        gives up leaves the scan running, and its verdict is stored for the next request)."""
        assert entry.facts is not None
        return await self._scans.run(
            (entry.facts.name, ref.version), lambda: self._scan_leased(entry, ref, tarball, before)
        )

    async def _scan_leased(
        self, entry: PackumentEntry, ref: VersionRef, tarball: CachedTarball, before: Verdict
    ) -> Verdict:
        """Scan under the cluster's lease on this version; a verdict another replica stored
        while this one waited is used as it is."""
        facts = entry.facts
        assert facts is not None
        async with self.leases.hold(f"scan:{facts.name}@{ref.version}:{ref.integrity or ''}"):
            stored = await anyio.to_thread.run_sync(self._stored_verdict, entry, ref)
            if stored is not None:
                return stored
            return await anyio.to_thread.run_sync(
                self._scan_now, entry, ref, tarball, before, abandon_on_cancel=True
            )

    def _stored_verdict(self, entry: PackumentEntry, ref: VersionRef) -> Verdict | None:
        facts = entry.facts
        assert facts is not None
        try:
            stored = self.inspector.verdicts.get(
                facts.name, ref.version, ref.integrity, need_tarball=True
            )
        except database_errors() as exc:
            log.warning("cannot read stored verdicts (%s): scanning", exc)
            return None
        return self.inspector.detector.current(stored, facts) if stored is not None else None

    def _scan_now(
        self, entry: PackumentEntry, ref: VersionRef, tarball: CachedTarball, before: Verdict
    ) -> Verdict:
        facts = entry.facts
        assert facts is not None
        source = tarball.data if tarball.data is not None else tarball.path
        assert source is not None
        with Timer(SCAN_SECONDS.observe):
            verdict = self._assess(facts, ref.version, read_tarball(source), record=True)
        try:
            self.inspector.verdicts.put(verdict, ref.integrity)
        except database_errors() as exc:  # a full disk, the database down: store it later
            log.warning("could not store the verdict on %s@%s: %s", facts.name, ref.version, exc)
        else:
            if self.on_verdict is not None:
                self.on_verdict(facts.name)
        if verdict.label is not before.label:
            self._generation[facts.name] = self._generation.get(facts.name, 0) + 1
            log.info(
                "tarball scan of %s@%s: %s (%d), was %s from metadata: %s",
                facts.name,
                ref.version,
                verdict.label,
                verdict.score,
                before.label,
                "; ".join(verdict.reasons[:3]),
            )
        return verdict

    def _assess(
        self,
        facts: PackageFacts,
        version: str,
        tarball: TarballFacts | None = None,
        *,
        record: bool,
    ) -> Verdict:
        """The detector's verdict; when its indexes cannot be written (a full disk), the
        verdict without recording what it saw, rather than no answer."""
        detector = self.inspector.detector
        try:
            return detector.assess(facts, version, tarball, record=record)
        except database_errors() as exc:
            if not record:
                raise
            log.warning("detector indexes not updated for %s@%s: %s", facts.name, version, exc)
            return detector.assess(facts, version, tarball, record=False)

    def _subject(
        self, entry: PackumentEntry, ref: VersionRef, verdict: Verdict | None, scan: ScanState
    ) -> Subject:
        assert entry.facts is not None
        return self._subject_of(entry.facts, ref.version, verdict, scan)

    # -- tarballs ----------------------------------------------------------------------------

    async def tarball(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        caller: Caller,
        fetch: Fetch,
    ) -> GatedTarball:
        """Decide on one tarball request: refuse (PolicyBlocked) or let it through."""
        settled = self._remembered(package.name, ref)
        if settled is not None:  # the hot path: a decision made on this scanned tarball
            d = self._enforce(package, ref, settled.decision, settled.verdict, caller)
            return self._through(package, ref, d, *(await fetch()))
        if entry.facts is None:
            return GatedTarball(*(await fetch()))
        known = await anyio.to_thread.run_sync(self._known, entry, ref)
        assert known is not None
        before = decide(self.policy, self._subject(entry, ref, known, ScanState.METADATA))
        if before.action is Action.BLOCK:  # refused before any download
            self._enforce(package, ref, before, known, caller)
        tarball, state = await fetch()
        verdict, scan = known, ScanState.TARBALL
        if not known.tarball_scanned:
            with anyio.move_on_after(self.scan_timeout) as scope:
                verdict = await self._scan(entry, ref, tarball, known)
            if scope.cancelled_caught:
                log.warning(
                    "scan of %s@%s did not finish within %.1fs; deciding without it",
                    package.name,
                    ref.version,
                    self.scan_timeout,
                )
                verdict, scan = known, ScanState.UNAVAILABLE
                SCAN_TIMEOUTS.inc()
        d = decide(self.policy, self._subject(entry, ref, verdict, scan))
        if scan is ScanState.TARBALL:
            self._settle(package.name, ref, d, verdict)
        d = self._enforce(package, ref, d, verdict, caller)
        return self._through(package, ref, d, tarball, state)

    @staticmethod
    def _through(
        package: PackageName,
        ref: VersionRef,
        d: Decision,
        tarball: CachedTarball,
        state: CacheState,
    ) -> GatedTarball:
        notice = ""
        if d.action in (Action.WARN, Action.HIDE):
            notice = f"{package.name}@{ref.version}: {warning_message(d)}"
        return GatedTarball(tarball, state, notice)

    async def prescan(
        self, package: PackageName, entry: PackumentEntry, ref: VersionRef, fetch: Fetch
    ) -> None:
        """Fetch and scan a version ahead of any request for it, unless already scanned."""
        known = await anyio.to_thread.run_sync(self._known, entry, ref)
        if known is None or known.tarball_scanned:
            return
        tarball, _ = await fetch()
        await self._scan(entry, ref, tarball, known)

    async def assess(
        self, package: PackageName, entry: PackumentEntry, version: str, fetch: Fetch
    ) -> tuple[Verdict | None, Decision] | None:
        """What Floodgate knows and decides about one version (for `npm audit` and the verdict
        endpoint): the tarball verdict, scanned now (at most `scan_timeout`) when it has not
        been; the metadata verdict when the scan cannot be had."""
        ref = entry.summary.versions.get(version)
        if ref is None or entry.facts is None:
            return None
        verdict = await anyio.to_thread.run_sync(self._known, entry, ref)
        assert verdict is not None
        if not verdict.tarball_scanned:
            try:
                with anyio.fail_after(self.scan_timeout):
                    tarball, _ = await fetch()
                    verdict = await self._scan(entry, ref, tarball, verdict)
            except (FloodgateError, TimeoutError) as exc:
                log.info("deciding %s@%s without its tarball: %s", package.name, version, exc)
        return verdict, decide(self.policy, self._subject_of(entry.facts, version, verdict))

    async def admit_publish(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        tarball: TarballFacts,
        caller: Caller,
    ) -> str:
        """The tarball verdict, made now on the published bytes, decided by the caller's
        policy as a download of it would be: Floodgate never hosts what it would not serve."""
        facts = entry.facts
        assert facts is not None
        verdict = await anyio.to_thread.run_sync(
            lambda: self._assess(facts, ref.version, tarball, record=False)
        )
        d = decide(self.policy, self._subject_of(facts, ref.version, verdict, ScanState.TARBALL))
        self._record(package.name, ref.version, d, verdict, caller, "publish")
        if d.action in (Action.BLOCK, Action.HIDE):
            raise PolicyBlocked(
                f"Floodgate refused to publish {package.name}@{ref.version} (policy "
                f"{self.policy.name!r}, rule {d.rule!r}): {d.reason.rstrip('.')}"
            )
        if d.action is Action.WARN:
            return f"{package.name}@{ref.version}: {warning_message(d)}"
        return ""

    def _remembered(self, name: str, ref: VersionRef) -> _Settled | None:
        settled = self._settled.get((name, ref.version, ref.integrity or ""))
        if settled is None or (settled.salt, settled.generation) != (
            self.salt,
            self._generation.get(name, 0),
        ):
            return None
        return settled

    def _settle(self, name: str, ref: VersionRef, d: Decision, verdict: Verdict) -> None:
        key = (name, ref.version, ref.integrity or "")
        self._settled[key] = _Settled(self.salt, self._generation.get(name, 0), d, verdict)

    def _enforce(
        self,
        package: PackageName,
        ref: VersionRef,
        d: Decision,
        verdict: Verdict | None,
        caller: Caller,
    ) -> Decision:
        """Log a tarball decision and refuse a block. Allows are logged once per client,
        version and policy every `PACKUMENT_LOG_WINDOW` seconds (an audit trail of who fetched
        what, without a database row per hot request); anything else every time."""
        if d.action is Action.ALLOW:
            key = (caller.client, package.name, ref.version, self.policy.digest)
            now = time.monotonic()
            last = self._logged.get(key)
            if last is None or now - last >= PACKUMENT_LOG_WINDOW:
                self._logged[key] = now
                self._record(package.name, ref.version, d, verdict, caller, "tarball")
            return d
        self._record(package.name, ref.version, d, verdict, caller, "tarball")
        if d.action is Action.BLOCK:
            raise PolicyBlocked(blocked_message(package.name, ref.version, d, self.policy.name))
        if d.action is Action.HIDE and self._resolved_from_listing(caller, package, ref):
            raise PolicyBlocked(hidden_message(package.name, ref.version, d, self.policy.name))
        return d

    def _resolved_from_listing(self, caller: Caller, package: PackageName, ref: VersionRef) -> bool:
        """Whether this client was lately served a packument of the package that listed this
        version (see the module docstring on `hide` found by the tarball)."""
        listed = self._listed.get((caller.client, package.name))
        if listed is None or time.monotonic() - listed[0] > LISTED_WINDOW:
            return False
        return ref.version not in listed[1]
