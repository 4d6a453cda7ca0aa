"""`PolicyGate`: the decide step between upstream facts and the response.

For a packument it assesses every version (from the stored tarball verdict when there is one,
else from the metadata) and turns the policy's decisions into `Edits`: blocked versions are
removed and listed under `policyRestrictions`, hidden ones removed, warned ones deprecated with
the reason. For a tarball it scans the bytes before they are served (bounded by `scan_timeout`)
and refuses blocked versions. Every enforced decision goes to the decision log.

Plans are memoised per package and invalidated by a new upstream document, a new tarball
verdict that changes a label, or a new policy or OSV index (the `salt`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
from cachetools import LRUCache

from proxy.cache.memory import PackumentEntry, SingleFlight
from proxy.cache.store import CachedTarball
from proxy.decisions import DecisionLog, DecisionRecord
from proxy.detect.evaluate import DETECTOR_VERSION, Detector
from proxy.detect.model import Verdict
from proxy.detect.osv import OsvFeed
from proxy.detect.store import VerdictStore
from proxy.errors import PolicyBlocked
from proxy.npm.names import PackageName
from proxy.npm.packument import NO_EDITS, Edits, VersionRef
from proxy.npm.tarball import read_tarball
from proxy.policy.engine import Subject, decide
from proxy.policy.holder import PolicyHolder
from proxy.policy.model import Action, Decision, Policy, ScanState

log = logging.getLogger(__name__)

MAX_RESTRICTION_LINES = 5  # versions explained in the policyRestrictions message
PLAN_MEMO = 10_000  # packages whose plans are kept
SETTLED_MEMO = 100_000  # tarball decisions kept
PACKUMENT_LOG_WINDOW = 300.0  # seconds between log entries for the same client, package, plan


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, for the decision log (Floodgate has no users; a token is fingerprinted)."""

    client: str = "-"
    user_agent: str = ""
    token: str = ""
    request_id: str = ""

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
    blocked: Acted | None = None  # every version is blocked: refuse the whole package
    policy: str = ""
    digest: str = ""


OPEN_PLAN = Plan()


def blocked_message(name: str, version: str, decision: Decision, policy: str) -> str:
    """The `error` npm prints for a blocked package or tarball."""
    what = f"{name}@{version}" if version else name
    return (
        f"Floodgate blocked {what} (policy {policy!r}, rule {decision.rule!r}): {decision.reason}"
    )


def warning_message(decision: Decision) -> str:
    return f"Floodgate warning (rule {decision.rule!r}): {decision.reason}"


def plan_for(policy: Policy, decisions: list[Acted], all_versions: int) -> Plan:
    """Turn per-version decisions into packument edits (pure)."""
    hidden = frozenset(a.version for a in decisions if a.decision.action is Action.HIDE)
    blocked = [a for a in decisions if a.decision.action is Action.BLOCK]
    deprecated = tuple(
        (a.version, warning_message(a.decision))
        for a in decisions
        if a.decision.action is Action.WARN
    )
    message = ""
    if blocked:
        lines = [f"{a.version}: rule {a.decision.rule!r}: {a.decision.reason}" for a in blocked]
        more = len(lines) - MAX_RESTRICTION_LINES
        message = f"Floodgate policy {policy.name!r} blocks these versions:\n" + "\n".join(
            lines[:MAX_RESTRICTION_LINES]
        )
        if more > 0:
            message += f"\n(and {more} more)"
    edits = Edits(hidden, frozenset(a.version for a in blocked), message, deprecated)
    whole = blocked[0] if blocked and len(blocked) == all_versions else None
    return Plan(edits, tuple(decisions), whole, policy.name, policy.digest)


@dataclass(frozen=True, slots=True)
class _Settled:
    """A tarball decision made on a scanned tarball, valid while salt and generation hold."""

    salt: str
    generation: int
    decision: Decision
    verdict: Verdict


@dataclass
class _Memo:
    raw: bytes
    generation: int
    salt: str
    plan: Plan


@dataclass
class PolicyGate:
    """Detector + policy + verdict store + decision log, as the proxy's decide step."""

    holder: PolicyHolder
    detector: Detector
    verdicts: VerdictStore
    decisions: DecisionLog
    osv: OsvFeed | None = None
    scan_timeout: float = 10.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _generation: dict[str, int] = field(default_factory=dict)
    _memo: LRUCache[str, _Memo] = field(default_factory=lambda: LRUCache(PLAN_MEMO))
    _scans: SingleFlight[tuple[str, str], Verdict] = field(default_factory=SingleFlight)
    _settled: LRUCache[tuple[str, str, str], _Settled] = field(
        default_factory=lambda: LRUCache(SETTLED_MEMO)
    )
    _logged: LRUCache[tuple[str, str, str, str], float] = field(
        default_factory=lambda: LRUCache(SETTLED_MEMO)
    )
    _salt_inputs: tuple[str, float | None] | None = None
    _salt: str = ""

    @property
    def policy(self) -> Policy:
        return self.holder.policy

    @property
    def salt(self) -> str:
        """Changes whenever decisions may: policy, detector version, OSV index."""
        inputs = (f"{self.holder.policy.digest}:{self.detector.epoch}", self.osv.loaded_at if self.osv is not None else None)  # noqa: E501  # fmt: skip
        if inputs != self._salt_inputs:  # the hot path reads this on every request
            self._salt_inputs = inputs
            self._salt = f"{inputs[0]}:{DETECTOR_VERSION}:{inputs[1]}"
        return self._salt

    # -- packuments --------------------------------------------------------------------------

    async def plan(self, package: PackageName, entry: PackumentEntry) -> Plan:
        """The plan for this packument; computed off the event loop, then memoised."""
        name = package.name
        generation = self._generation.get(name, 0)
        salt = self.salt
        memo = self._memo.get(name)
        if (
            memo is not None
            and memo.raw is entry.raw
            and (memo.generation, memo.salt)
            == (
                generation,
                salt,
            )
        ):
            return memo.plan
        policy = self.policy
        plan = await anyio.to_thread.run_sync(self._compute_plan, policy, entry)
        self._memo[name] = _Memo(entry.raw, generation, salt, plan)
        if plan.acted:
            log.info(
                "policy %s on %s: %s",
                policy.name,
                name,
                ", ".join(f"{a.version} {a.decision.intended}" for a in plan.acted[:10])
                + (f" (+{len(plan.acted) - 10} more)" if len(plan.acted) > 10 else ""),
            )
        return plan

    def _compute_plan(self, policy: Policy, entry: PackumentEntry) -> Plan:
        facts = entry.facts
        if facts is None:
            return OPEN_PLAN
        stored = self.verdicts.for_package(facts.name)
        latest = facts.dist_tags.get("latest", "")
        now = self.clock()
        acted: list[Acted] = []
        for version in facts.versions:
            ref = entry.summary.versions.get(version)
            verdict = stored.get((version, (ref.integrity if ref else None) or ""))
            if verdict is not None:
                verdict = self.detector.current(verdict, facts)
            else:
                verdict = self.detector.assess(facts, version, record=version == latest)
            d = decide(policy, Subject.of(facts, version, verdict, now))
            if d.acted:
                acted.append(Acted(version, d, verdict))
        return plan_for(policy, acted, len(facts.versions))

    def record_plan(self, package: PackageName, plan: Plan, caller: Caller) -> None:
        """Log a packument's decisions: once per client, package and plan every
        `PACKUMENT_LOG_WINDOW` seconds (a package with hundreds of warned versions would
        otherwise write hundreds of rows per request); tarball decisions are logged every time.
        """
        key = (caller.client, package.name, plan.edits.digest, plan.digest)
        now = time.monotonic()
        last = self._logged.get(key)
        if last is not None and now - last < PACKUMENT_LOG_WINDOW:
            return
        self._logged[key] = now
        for a in plan.acted:
            self.record(package.name, a.version, a.decision, a.verdict, caller, "packument")

    def record(
        self,
        name: str,
        version: str,
        d: Decision,
        verdict: Verdict | None,
        caller: Caller,
        via: str,
    ) -> None:
        self.decisions.record(
            DecisionRecord(
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
            )
        )

    def refuse_package(self, package: PackageName, plan: Plan, caller: Caller) -> PolicyBlocked:
        assert plan.blocked is not None
        self.record_plan(package, plan, caller)
        message = blocked_message(package.name, "", plan.blocked.decision, plan.policy)
        return PolicyBlocked(message)

    # -- tarballs ----------------------------------------------------------------------------

    def _known(self, entry: PackumentEntry, ref: VersionRef) -> Verdict | None:
        stored = self.verdicts.get(
            entry.summary.name, ref.version, ref.integrity, need_tarball=True
        )
        if stored is not None:
            return self.detector.current(stored, entry.facts)
        if entry.facts is None:
            return None
        return self.detector.assess(entry.facts, ref.version, record=False)

    async def assess(
        self, entry: PackumentEntry, version: str
    ) -> tuple[Verdict | None, Decision] | None:
        """What Floodgate knows and decides about one version (for `npm audit` and the verdict
        endpoint): the stored tarball verdict, else the metadata one. None: no such version."""
        ref = entry.summary.versions.get(version)
        if ref is None or entry.facts is None:
            return None
        verdict = await anyio.to_thread.run_sync(self._known, entry, ref)
        facts = entry.facts
        return verdict, decide(self.policy, Subject.of(facts, version, verdict, self.clock()))

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

    async def before_download(
        self, package: PackageName, entry: PackumentEntry, ref: VersionRef, caller: Caller
    ) -> None:
        """Refuse before any download when what is already known blocks this version."""
        if entry.facts is None:
            return
        verdict = await anyio.to_thread.run_sync(self._known, entry, ref)
        d = decide(self.policy, Subject.of(entry.facts, ref.version, verdict, self.clock()))
        if d.action is Action.BLOCK:
            self.record(package.name, ref.version, d, verdict, caller, "tarball")
            raise PolicyBlocked(blocked_message(package.name, ref.version, d, self.policy.name))

    async def scan(
        self, package: PackageName, entry: PackumentEntry, ref: VersionRef, tarball: CachedTarball
    ) -> Verdict | None:
        """The tarball verdict (stored, or made now); a label change re-plans the packument."""
        if entry.facts is None:
            return None
        facts = entry.facts
        stored = await anyio.to_thread.run_sync(
            lambda: self.verdicts.get(package.name, ref.version, ref.integrity, need_tarball=True)
        )
        if stored is not None:
            return self.detector.current(stored, facts)
        # One scan per version however many ask; a caller that gives up (scan_timeout) leaves
        # the scan running, and its verdict is stored for the next request.
        return await self._scans.run(
            (package.name, ref.version),
            lambda: anyio.to_thread.run_sync(
                self._scan_now, entry, ref, tarball, abandon_on_cancel=True
            ),
        )

    def _scan_now(self, entry: PackumentEntry, ref: VersionRef, tarball: CachedTarball) -> Verdict:
        assert entry.facts is not None
        source = tarball.data if tarball.data is not None else tarball.path
        assert source is not None
        before = self.detector.assess(entry.facts, ref.version, record=False)
        facts = read_tarball(source)
        verdict = self.detector.assess(entry.facts, ref.version, facts)
        self.verdicts.put(verdict, ref.integrity)
        if verdict.label is not before.label:
            name = entry.facts.name
            self._generation[name] = self._generation.get(name, 0) + 1
            log.info(
                "tarball scan of %s@%s: %s (%d), was %s from metadata: %s",
                name,
                ref.version,
                verdict.label,
                verdict.score,
                before.label,
                "; ".join(verdict.reasons[:3]),
            )
        return verdict

    async def check_tarball(
        self,
        package: PackageName,
        entry: PackumentEntry,
        ref: VersionRef,
        tarball: CachedTarball,
        caller: Caller,
    ) -> Decision:
        """Scan (bounded by scan_timeout), decide and log; raise PolicyBlocked to refuse.

        A decision made on a scanned tarball is remembered until the policy, the OSV index or
        the package's verdicts change, so that `settled` can answer for a hot tarball.
        """
        verdict: Verdict | None = None
        scan_state = ScanState.TARBALL
        with anyio.move_on_after(self.scan_timeout) as scope:
            verdict = await self.scan(package, entry, ref, tarball)
        if scope.cancelled_caught:
            log.warning(
                "scan of %s@%s did not finish within %.1fs; deciding without it",
                package.name,
                ref.version,
                self.scan_timeout,
            )
            scan_state = ScanState.UNAVAILABLE
            verdict = await anyio.to_thread.run_sync(self._known, entry, ref)
        if entry.facts is None:
            return Decision(Action.ALLOW, "", "no package facts")
        subject = Subject.of(entry.facts, ref.version, verdict, self.clock(), scan_state)
        d = decide(self.policy, subject)
        if scan_state is ScanState.TARBALL and verdict is not None:
            self._settle(package.name, ref, d, verdict)
        return self._enforce(package, ref, d, verdict, caller)

    def settled(self, package: PackageName, ref: VersionRef, caller: Caller) -> Decision | None:
        """The hot path: the remembered decision on this scanned tarball, enforced (raises
        PolicyBlocked) and logged; None when there is none and the full check must run."""
        settled = self._remembered(package.name, ref)
        if settled is None:
            return None
        return self._enforce(package, ref, settled.decision, settled.verdict, caller)

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
                self.record(package.name, ref.version, d, verdict, caller, "tarball")
            return d
        self.record(package.name, ref.version, d, verdict, caller, "tarball")
        if d.action is Action.BLOCK:
            raise PolicyBlocked(blocked_message(package.name, ref.version, d, self.policy.name))
        return d
