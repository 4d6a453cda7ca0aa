"""The detector: look facts up in the indexes, run every signal, combine findings into a verdict.

Scoring (`combine`) is a documented, order-independent sum. Each finding is worth
`SEVERITY_POINTS[severity] * CONFIDENCE_WEIGHT[confidence]`; the score is the sum, capped at
100. The label then follows from the evidence, not the score alone:

- `malicious`: a malware-family finding of high or critical severity with high confidence
  (a malicious-packages feed record, a path-traversal or device member);
- `spam`: spam-family findings worth at least SPAM_SCORE, corroborated by their roles (each
  signal's `role`; a trait counts when its severity is medium or more):
  - a strong (high severity, high confidence) finding that is not a registration: an SEO-spam
    name, a feed record classed as spam, a package with nothing at all in it;
  - registration (a tea.yaml, a reused wallet) *and* at least one trait of no real function or
    of farm publishing (empty, template, filler, trivial or cloned code, an entry point that
    resolves to nothing, a generated name, a ring, a burst, a campaign): tea.yaml is evidence
    that rewards are claimed, not that the package is a farm's;
  - without registration, two traits or more, one of them high severity or both of medium
    confidence (template code under a generated name, an empty package in a campaign), or
    THREE_TRAITS weak ones together (an unedited manifest, a script for an entry point and
    inflated dependencies);
  so a tea.yaml alone, in a real package, is `suspicious` at most (a policy may warn);
- `suspicious`: a score of at least SUSPICIOUS_SCORE with one finding of medium severity and
  medium confidence or better, whatever the family; or, from weak findings only (low severity
  or low confidence), a score of at least WEAK_SUSPICIOUS_SCORE: two weak hints (a name that
  looks generated, a dependency the code does not import) are not a suspicion;
- `clean` otherwise (low findings may still be listed).

Weak evidence alone (a generated-looking name, trivial code, a young package, install
scripts) therefore never makes a verdict spam.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import threading
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.detect.campaigns import (
    CampaignIndex,
    Cluster,
    normalize_repo,
    package_keys,
    siblings,
)
from proxy.detect.clones import CloneIndex, code_hashes
from proxy.detect.db import Database
from proxy.detect.facts import Context, PackageFacts, Subject, VersionFacts
from proxy.detect.graph import PackageGraph
from proxy.detect.model import (
    Confidence,
    Family,
    Finding,
    Label,
    Role,
    Severity,
    SignalSpec,
    Verdict,
)
from proxy.detect.osv import OsvFeed, OsvIndex
from proxy.detect.signals import (
    SIGNALS,
    Check,
    cloned_code,
    dependency_ring,
    known_malicious,
    tea_yaml,
)
from proxy.detect.wallets import WalletIndex
from proxy.npm.tarball import TarballFacts
from proxy.storage.sql import SqlDatabase

log = logging.getLogger(__name__)

# Bump when signals or scoring change: stored verdicts of other versions are not reused.
DETECTOR_VERSION = "5"

SEVERITY_POINTS = {Severity.LOW: 10, Severity.MEDIUM: 25, Severity.HIGH: 50, Severity.CRITICAL: 100}
CONFIDENCE_WEIGHT = {Confidence.LOW: 0.5, Confidence.MEDIUM: 0.75, Confidence.HIGH: 1.0}
SPAM_SCORE = 50
THREE_TRAITS = 3  # distinct weak traits that together make spam
SUSPICIOUS_SCORE = 15
WEAK_SUSPICIOUS_SCORE = 25
INDEX_FILE = "detector.sqlite3"

LEARNED_SIGNAL = "learned-score"  # the model's signal, left out by `Detector.open(model=False)`
ROLES = {spec.id: spec.role for spec, _ in SIGNALS}
_SEV_RANK = {s: i for i, s in enumerate(Severity)}
_CONF_RANK = {c: i for i, c in enumerate(Confidence)}


def points(f: Finding) -> float:
    return SEVERITY_POINTS[f.severity] * CONFIDENCE_WEIGHT[f.confidence]


def _at_least(f: Finding, severity: Severity, confidence: Confidence) -> bool:
    return (
        _SEV_RANK[f.severity] >= _SEV_RANK[severity]
        and _CONF_RANK[f.confidence] >= _CONF_RANK[confidence]
    )


def combine(findings: Iterable[Finding]) -> tuple[int, Label]:
    """(score 0-100, label) for a set of findings; see the module docstring for the rules."""
    fs = list(findings)
    score = min(100, round(sum(points(f) for f in fs)))
    malware = [f for f in fs if f.family is Family.MALWARE]
    if any(_at_least(f, Severity.HIGH, Confidence.HIGH) for f in malware):
        return score, Label.MALICIOUS
    if _spam(fs):
        return score, Label.SPAM
    solid = any(_at_least(f, Severity.MEDIUM, Confidence.MEDIUM) for f in fs)
    if score >= (SUSPICIOUS_SCORE if solid else WEAK_SUSPICIOUS_SCORE):
        return score, Label.SUSPICIOUS
    return score, Label.CLEAN


def role(f: Finding) -> Role:
    """The role of a finding's signal (Role.OTHER for signals not in the registry)."""
    return ROLES.get(f.signal_id, Role.OTHER)


def _spam(fs: list[Finding]) -> bool:
    spam = [f for f in fs if f.family is Family.SPAM]
    if sum(points(f) for f in spam) < SPAM_SCORE:
        return False
    registration = [f for f in spam if role(f) is Role.REGISTRATION]
    traits = [f for f in spam if role(f) is not Role.REGISTRATION]
    if any(_at_least(f, Severity.HIGH, Confidence.HIGH) for f in traits):
        return True
    counted = [f for f in traits if _at_least(f, Severity.MEDIUM, Confidence.LOW)]
    if any(_at_least(f, Severity.MEDIUM, Confidence.LOW) for f in registration) and counted:
        return True
    if len({f.signal_id for f in counted}) < 2:
        return False
    strong = any(_at_least(f, Severity.HIGH, Confidence.MEDIUM) for f in counted)
    medium = sum(1 for f in counted if _at_least(f, Severity.MEDIUM, Confidence.MEDIUM))
    return strong or medium >= 2 or len({f.signal_id for f in counted}) >= THREE_TRAITS


def run_signals(
    subject: Subject, signals: Iterable[tuple[SignalSpec, Check]] = SIGNALS
) -> tuple[Finding, ...]:
    """Every signal's finding for `subject`, in registry order; a failing signal is logged and
    skipped so that one bug cannot turn a verdict into an exception."""
    out: list[Finding] = []
    for spec, check in signals:
        try:
            finding = check(subject)
        except Exception:
            log.exception("signal %s failed on %s; skipped", spec.id, subject.name)
            continue
        if finding is not None:
            out.append(finding)
    return tuple(out)


# Signals whose findings depend on other packages, recomputed whenever a stored verdict is served
# (`Detector.current`) so that no verdict depends on the order packages came in: those that read
# the clone, wallet and campaign indexes, and those that read the package graph (GRAPH: the
# version's dependencies against the edges and labels recorded).
GRAPH = frozenset({dependency_ring.SPEC.id})
RELATIONAL = frozenset({"tea-wallet-reuse", "cloned-code", "campaign"}) | GRAPH


def member_traits(findings: Iterable[Finding]) -> list[str]:
    """The package's own traits that make it a campaign member: findings of no function or of
    farm publishing, medium severity and confidence or more, that do not depend on other
    packages. Weak hints (a numbered name, an unedited manifest) and a tea.yaml are listed
    beside them but make no member alone: real projects have them too."""
    own = [
        f
        for f in findings
        if f.signal_id not in RELATIONAL and _at_least(f, Severity.MEDIUM, Confidence.LOW)
    ]
    solid = {
        f.signal_id
        for f in own
        if role(f) in (Role.FUNCTION, Role.FARM)
        and _at_least(f, Severity.MEDIUM, Confidence.MEDIUM)
    }
    if not solid:
        return []
    return sorted({f.signal_id for f in own})


def _repository(
    package: PackageFacts, version: VersionFacts | None, tarball: TarballFacts | None
) -> str:
    repo: object = None
    if tarball is not None and tarball.package_json is not None:
        repo = tarball.package_json.get("repository")
        if isinstance(repo, dict):
            repo = repo.get("url")
    if not isinstance(repo, str) and version is not None:
        repo = version.repository
    return normalize_repo(repo if isinstance(repo, str) else None)


def _own_wallets(verdict: Verdict) -> tuple[str, ...]:
    """The wallets this version's own tea.yaml names (from its finding's evidence): wallets
    recorded under the name by another version say nothing about this one."""
    for f in verdict.findings:
        if f.signal_id == tea_yaml.SPEC.id:
            found = f.evidence.get("wallets")
            if isinstance(found, list):
                return tuple(w.lower() for w in found if isinstance(w, str))
    return ()


class Detector:
    """Assesses package versions against the signals and the indexes it keeps.

    `assess` is deterministic for the same facts, index state and clock; after deciding it
    records what it saw (code-file hashes, wallets, dependency edges, campaign keys, the label)
    so the indexes grow with every package. Findings that depend on other packages
    (RELATIONAL) are recomputed by `current` from the indexes as they are when a verdict is
    served, so a cluster's first member ends with the verdict its last one has; `epoch` changes
    whenever such findings may have changed, so that memoised decisions are redone.
    Thread-safe: the indexes serialize their own access.
    """

    def __init__(
        self,
        osv: OsvFeed | OsvIndex | None = None,
        clones: CloneIndex | None = None,
        wallets: WalletIndex | None = None,
        graph: PackageGraph | None = None,
        campaigns: CampaignIndex | None = None,
        *,
        signals: tuple[tuple[SignalSpec, Check], ...] = SIGNALS,
        clock: Callable[[], datetime] | None = None,
    ):
        self.osv = osv if osv is not None else OsvIndex()
        self.clones = clones if clones is not None else CloneIndex()
        self.wallets = wallets if wallets is not None else WalletIndex()
        self.graph = graph if graph is not None else PackageGraph()
        self.campaigns = campaigns if campaigns is not None else CampaignIndex()
        self.signals = signals
        self.intrinsic = tuple(s for s in signals if s[0].id not in RELATIONAL)
        # A platform build (`os`/`cpu`/`libc`: esbuild's, swc's, sharp's libvips) ships a native
        # binary with a few bytes of JavaScript, or none: how much code there is says nothing
        # of its function, so neither the function signals nor the learned score (which leans
        # on code volume) look at it.
        self.intrinsic_platform = tuple(
            s
            for s in self.intrinsic
            if s[0].role is not Role.FUNCTION and s[0].id != LEARNED_SIGNAL
        )
        self.relational = tuple(s for s in signals if s[0].id in RELATIONAL - GRAPH)
        self.ring = tuple(s for s in signals if s[0].id in GRAPH)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._links = 0  # clone and wallet links recorded (see `epoch`)

    @classmethod
    def open(
        cls,
        directory: Path | None,
        osv: OsvFeed | OsvIndex | None = None,
        *,
        model: bool = True,
        db: SqlDatabase | None = None,
    ) -> Detector:
        """A detector whose indexes live in `directory/detector.sqlite3` (None: in memory), or
        in `db` when given (the shared database, migrated); `model=False` leaves the learned
        score out (rules only)."""
        from proxy.detect import campaigns, clones, graph, wallets

        if db is None:
            schema = clones.SCHEMA + wallets.SCHEMA + graph.SCHEMA + campaigns.SCHEMA
            db = Database(directory / INDEX_FILE if directory is not None else None, schema)
        signals = SIGNALS if model else tuple(s for s in SIGNALS if s[0].id != LEARNED_SIGNAL)
        return cls(
            osv,
            CloneIndex(db=db),
            WalletIndex(db=db),
            PackageGraph(db=db),
            CampaignIndex(db=db),
            signals=signals,
        )

    @property
    def epoch(self) -> int:
        """Changes whenever a recorded package linked to others (a shared wallet or code file, a
        campaign that grew, a spam label or a cycle in the dependency graph that other packages'
        ring findings read): verdicts served before may change (`current` recomputes them)."""
        return self._links + self.campaigns.generation

    def close(self) -> None:
        """Close the index database(s) this detector opened."""
        indexes = (self.clones, self.wallets, self.graph, self.campaigns)
        for db in {id(i.db): i.db for i in indexes}.values():
            db.close()

    def context(
        self, package: PackageFacts, version: VersionFacts | None, tarball: TarballFacts | None
    ) -> Context:
        """What the indexes know about this subject, but for the relations to other packages
        (see `relations`)."""
        name = package.name
        deps = Subject(package, version, tarball).dependencies
        return Context(
            osv=self.osv.lookup(name, version.version if version is not None else ""),
            now=self.clock(),
            **self.ring_context(name, deps),
        )

    def ring_context(self, name: str, deps: Collection[str]) -> dict[str, Any]:
        """Context fields from the package graph for `name` with dependencies `deps`: which
        were labelled spam or malicious, and the paths that lead back to `name`."""
        if not deps:
            return {}
        return {
            "flagged_dependencies": self.graph.flagged(d for d in deps if d != name),
            "dependency_cycles": self.graph.cycles(name, deps),
        }

    def relations(
        self,
        name: str,
        repo: str,
        hashes: frozenset[str],
        wallets: Iterable[str],
        keys: set[str] | None,
    ) -> dict[str, Any]:
        """Context fields that depend on other packages: wallet reuse, clones (sibling packages
        of one project left out), and the campaign cluster (`keys` None: not a member)."""
        wallet_names: dict[str, tuple[str, ...]] = {}
        for w in wallets:
            others = self.wallets.names(w, name)
            if others:
                wallet_names[w] = others
        match = self.clones.match(name, hashes, self._sibling_test(name, repo)) if hashes else None
        return {
            "wallet_names": wallet_names,
            "clone_names": match.names if match else (),
            "clone_share": match.share if match else 0.0,
            "clone_files": match.total if match else 0,
            "campaign": self.campaigns.cluster(name, keys) if keys is not None else None,
        }

    def _sibling_test(self, name: str, repo: str) -> Callable[[str], bool]:
        cache: dict[str, str] = {}

        def test(other: str) -> bool:
            if other not in cache:
                cache.update(self.campaigns.repos([other]) or {other: ""})
            return siblings(name, other, repo, cache.get(other, ""))

        return test

    def assess(
        self,
        package: PackageFacts,
        version: str,
        tarball: TarballFacts | None = None,
        *,
        record: bool = True,
    ) -> Verdict:
        """The verdict on `package@version` (`version` may be "" when unknown).

        Without a tarball the verdict rests on metadata alone (the proxy's first look).
        """
        vf = package.version(version) if version else None
        if vf is None and version:
            vf = VersionFacts(version)
        ctx = self.context(package, vf, tarball)
        subject = Subject(package, vf, tarball, ctx)
        platform = vf is not None and vf.platform
        own = run_signals(subject, self.intrinsic_platform if platform else self.intrinsic)
        ring = run_signals(subject, self.ring) if subject.dependencies else ()
        traits = member_traits(own)
        repo = _repository(package, vf, tarball)
        hashes = code_hashes(tarball) if tarball is not None else frozenset()
        wallets = [w for t in tarball.tea_files for w in t.wallets] if tarball is not None else []
        keys = (
            package_keys(
                package.name, wallets, hashes, subject.dependencies, vf.published if vf else None
            )
            if traits
            else None
        )
        findings = own + ring
        if _relatable(keys, hashes, wallets):
            related = self.relations(package.name, repo, hashes, wallets, keys)
            subject = dataclasses.replace(subject, context=dataclasses.replace(ctx, **related))
            findings = findings + run_signals(subject, self.relational)
        # else nothing links this version to other packages (most metadata-only looks): the
        # relations are empty and the relational signals, which read only them, have nothing
        # to find, so the signals run once.
        findings = _ordered(findings, self.signals)
        score, label = combine(findings)
        osv_ids = tuple(sorted({i for h in ctx.osv for i in (h.id, *h.aliases)}))
        verdict = Verdict(
            package.name,
            vf.version if vf is not None else version,
            score,
            label,
            findings,
            DETECTOR_VERSION,
            osv_ids,
            tarball is not None,
        )
        if record:
            # The graph keeps each name's label from its own findings only: relational ones
            # depend on what was seen before it (the first clone of a template is no clone
            # yet), so a ring's findings would too, and on each other's; nor may one wrong
            # verdict cascade along the edges. (Farms' packages that are spam only through
            # their campaign are linked to its members by their dependency edges there.)
            self.record(subject, combine(own)[1], repo, traits, keys or set(), hashes, wallets)
        log.debug("assessed %s@%s: %s (%d)", package.name, version, label, score)
        return verdict

    def assess_metadata(self, package: PackageFacts, versions: Iterable[str]) -> dict[str, Verdict]:
        """Metadata verdicts on many versions of one package, each what `assess(package,
        version, record=False)` gives it (the proxy's first look at a packument).

        Versions whose manifests agree in everything the signals read, that is in all but
        their identity (version string, dist fields, publish time) and their dependencies'
        ranges (see `_shape`), share one assessment: a packument's thousands of versions
        mostly repeat their dependencies, scripts and sizes. Not shared: versions of a
        package the feed names (the lookup is per version), and verdicts with member traits
        (their campaign keys carry the publish time)."""
        shareable = not self.osv.names_any_version(package.name)
        shapes: dict[tuple[object, ...], Verdict] = {}
        names: dict[int, frozenset[str]] = {}
        out: dict[str, Verdict] = {}
        for version in versions:
            vf = package.version(version)
            key = _shape(vf, names) if shareable and vf is not None else None
            first = shapes.get(key) if key is not None else None
            if first is not None:
                out[version] = first.for_version(version)
                continue
            verdict = self.assess(package, version, record=False)
            out[version] = verdict
            if key is not None and not member_traits(verdict.findings):
                shapes[key] = verdict
        return out

    def current(self, verdict: Verdict, package: PackageFacts | None = None) -> Verdict:
        """`verdict` with the findings that depend on other packages redone against the indexes
        as they are now: the feed lookup (stored verdicts predate feed refreshes), wallet reuse,
        clones and the campaign (a cluster grows after its first members were assessed), and the
        dependency ring from the version's dependencies (`package`'s, see `_dependencies`) and
        the graph (its dependencies were labelled, or a cycle closed, after it was assessed).
        Everything else in the verdict is kept; score and label are combined again.
        """
        pkg = package or PackageFacts.name_only(verdict.name, verdict.version)
        vf = pkg.version(verdict.version) or VersionFacts(verdict.version)
        hits = self.osv.lookup(verdict.name, verdict.version)
        deps = self._dependencies(verdict, package)
        redo = RELATIONAL if deps is not None else RELATIONAL - GRAPH
        kept = tuple(
            f
            for f in verdict.findings
            if f.signal_id != known_malicious.SPEC.id and f.signal_id not in redo
        )
        name = verdict.name
        ring: tuple[Finding, ...] = ()
        if deps:
            ring_vf = dataclasses.replace(vf, dependencies=deps)
            ring_ctx = Context(**self.ring_context(name, deps))
            ring = run_signals(Subject(pkg, ring_vf, None, ring_ctx), self.ring)
        traits = member_traits(kept)
        keys = self.campaigns.keys_of(name) if traits else None
        if keys is not None and not keys and not self.campaigns.is_member(name):
            keys = None  # never recorded (a metadata-only look): no campaign to speak of
        hashes = self.clones.hashes_of(name) if verdict.tarball_scanned else frozenset()
        wallets = _own_wallets(verdict)
        ctx = Context(osv=hits)
        redone: tuple[Finding, ...] = ()
        if _relatable(keys, hashes, wallets):  # else no index is asked: nothing to relate
            repo = self.campaigns.repos([name]).get(name, "")
            ctx = dataclasses.replace(ctx, **self.relations(name, repo, hashes, wallets, keys))
            # The relational signals read the indexes' answers only; they need to know that the
            # verdict was made with a tarball (an empty stand-in says so).
            stand_in = TarballFacts(entries=()) if verdict.tarball_scanned else None
            redone = run_signals(Subject(pkg, vf, stand_in, ctx), self.relational)
        fresh = known_malicious.check(Subject(pkg, vf, None, ctx))
        findings = _ordered(
            ((fresh,) if fresh is not None else ()) + kept + ring + redone, self.signals
        )
        osv_ids = tuple(sorted({i for h in hits for i in (h.id, *h.aliases)}))
        if findings == verdict.findings and osv_ids == verdict.osv_ids:
            return verdict
        score, label = combine(findings)
        return dataclasses.replace(
            verdict, findings=findings, score=score, label=label, osv_ids=osv_ids
        )

    def _dependencies(
        self, verdict: Verdict, package: PackageFacts | None
    ) -> Collection[str] | None:
        """The dependencies `verdict`'s version was assessed with, for its ring findings: the
        packument's, when `package` has the version's manifest; for a tarball verdict on facts
        with no packument (`scan --tarball`, corpus cases), the edges its package.json recorded
        in the graph; None when unknown (no `package`: the stored ring findings are kept)."""
        if package is None:
            return None
        vf = package.version(verdict.version)
        if vf is not None and (vf.dependencies or package.dist_tags):
            return vf.dependencies  # a packument's manifest (a name-only one has no dist-tags)
        if verdict.tarball_scanned:
            return self.graph.dependencies(verdict.name)
        return () if vf is not None else None

    def record(
        self,
        subject: Subject,
        label: Label,
        repo: str = "",
        traits: Iterable[str] = (),
        keys: Iterable[str] = (),
        hashes: frozenset[str] | None = None,
        wallets: Iterable[str] | None = None,
    ) -> None:
        """Add what `subject` showed to the indexes (`label`: the one the package graph keeps
        for the name, from the package's own findings)."""
        name = subject.name
        c = subject.context
        # Only links that can change a verdict move the epoch (every bump re-plans and
        # re-renders packuments): a spam label others depend on, a cycle closed, a shared
        # wallet, or a clone as cloned-code counts one.
        rung = self.graph.record(
            name, subject.dependencies, label, closes_cycle=bool(c.dependency_cycles)
        )
        t = subject.tarball
        linked = (
            rung
            or bool(c.wallet_names)
            or (
                bool(c.clone_names)
                and c.clone_files >= cloned_code.MIN_FILES
                and c.clone_share >= cloned_code.MIN_SHARE
            )
        )
        if t is not None:
            self.clones.record(name, hashes if hashes is not None else code_hashes(t))
            self.wallets.record(
                name,
                wallets if wallets is not None else [w for f in t.tea_files for w in f.wallets],
            )
        self.campaigns.record(name, repo, traits, keys)
        if linked:
            with self._lock:
                self._links += 1

    def campaign_list(self, min_size: int = 2) -> list[Cluster]:
        """Every campaign cluster of at least `min_size` members, largest first."""
        return self.campaigns.clusters(min_size)


def _ordered(
    findings: tuple[Finding, ...], signals: tuple[tuple[SignalSpec, Check], ...]
) -> tuple[Finding, ...]:
    """Findings in registry order (the order a verdict lists them)."""
    if len(findings) < 2:
        return findings
    return tuple(sorted(findings, key=lambda f: _RANK.get(f.signal_id, len(_RANK))))


_RANK = {spec.id: i for i, (spec, _) in enumerate(SIGNALS)}


# VersionFacts fields that name a version rather than describe it: what `_shape` leaves out.
_IDENTITY = frozenset({"version", "integrity", "published"})
# Dependencies, which facts keep by name (a package's versions mostly differ in their ranges
# alone, and no signal reads a range): keyed by the set of names.
_BY_NAME = ("dependencies", "optional_dependencies")
_DESCRIBING = [f for f in dataclasses.fields(VersionFacts) if f.name not in _IDENTITY]
_named = operator.attrgetter(*_BY_NAME)
_maps = operator.attrgetter(
    *(f.name for f in _DESCRIBING if "Mapping" in str(f.type) and f.name not in _BY_NAME)
)
_values = operator.attrgetter(
    *(f.name for f in _DESCRIBING if "Mapping" not in str(f.type) and f.name not in _BY_NAME)
)


def _shape(vf: VersionFacts, names: dict[int, frozenset[str]] | None = None) -> tuple[object, ...]:
    """What a metadata-only assessment reads of one version, as a key: every field but its
    identity. Dependencies are keyed by the set of their names (`names` memoises it per
    object, for one packument's facts), maps by identity: a packument's equal
    maps are one object (`Shared`), and two equal maps that are not merely go unshared."""
    memo = {} if names is None else names
    keys = []
    for m in _named(vf):
        got = memo.get(id(m))
        if got is None:
            got = memo[id(m)] = frozenset(m)
        keys.append(got)
    return (*keys, *map(id, _maps(vf)), *_values(vf))


def _relatable(
    keys: Collection[str] | None, hashes: frozenset[str], wallets: Collection[str]
) -> bool:
    """Whether anything can relate a version to other packages: campaign keys (it has member
    traits), code-file hashes or tea wallets. Without any, `Detector.relations` is empty."""
    return keys is not None or bool(hashes) or bool(wallets)
