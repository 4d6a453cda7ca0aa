"""`decide`: which rule applies to a version, and what that means. Pure.

Order of evaluation, documented because it is the policy's contract:

1. Rules in file order; the first whose conditions all hold decides (no match: allow).
2. For a tarball whose scan did not finish in time (`ScanState.UNAVAILABLE`), a rule that does
   not match on what is known but could once the verdict is in, and that fails closed (its own
   `unscanned`, else the policy's), refuses it for now, in its place in the order: a later
   rule cannot let through what an earlier fail-closed rule might block.
3. An active waiver covering `name@version` turns any outcome into allow (and says so).
4. In dry-run mode nothing is enforced: every outcome becomes `monitor`, and the rule's own
   action is kept as `intended`, so the decision log shows what would have happened.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from proxy.detect.facts import PackageFacts
from proxy.detect.model import Verdict
from proxy.policy.model import (
    ALLOWED,
    Action,
    Decision,
    FailMode,
    Match,
    Mode,
    Policy,
    Rule,
    ScanState,
    age,
)
from proxy.records import record


@record
class Subject:
    """What the policy decides about: one version, the detector's verdict and publish facts."""

    name: str
    version: str
    verdict: Verdict | None
    now: datetime
    scan: ScanState = ScanState.METADATA
    published: datetime | None = None
    created: datetime | None = None
    install_scripts: bool | None = None
    shadows: str | None = None  # the internal name this public package is a twin of

    @classmethod
    def of(
        cls,
        facts: PackageFacts,
        version: str,
        verdict: Verdict | None,
        now: datetime,
        scan: ScanState | None = None,
        shadows: str | None = None,
    ) -> Subject:
        """The subject for `version` of a package, with its publish facts; `scan` defaults to
        what the verdict rests on."""
        vf = facts.versions.get(version)
        if scan is None:
            scan = ScanState.TARBALL if verdict and verdict.tarball_scanned else ScanState.METADATA
        return cls(
            facts.name,
            version,
            verdict,
            now,
            scan,
            published=vf.published if vf else None,
            created=facts.created,
            install_scripts=vf.has_install_script if vf else None,
            shadows=shadows,
        )


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a rule, evaluated: for `policy explain`."""

    condition: str
    holds: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Condition:
    """One kind of rule condition: whether `match` sets it, whether it holds for a subject, and
    the words `policy explain` shows (formatted only when asked for)."""

    name: str
    given: Callable[[Match], bool]
    holds: Callable[[Match, Subject], bool]
    detail: Callable[[Match, Subject], str]


def _label(s: Subject) -> str:
    return s.verdict.label if s.verdict is not None else "no verdict"


def _score(s: Subject) -> object:
    return s.verdict.score if s.verdict is not None else "no verdict"


def _fired(s: Subject) -> list[str]:
    return sorted(s.verdict.signal_ids) if s.verdict is not None else []


def _osv_ids(s: Subject) -> list[str]:
    return list(s.verdict.osv_ids) if s.verdict is not None else []


def _younger(a: timedelta | None, limit: timedelta | None) -> bool:
    return a is not None and limit is not None and a < limit


def campaign_size(v: Verdict | None) -> int:
    """Members of the campaign the verdict's `campaign` finding names (0: none)."""
    for f in v.findings if v is not None else ():
        size = f.evidence.get("size") if f.signal_id == "campaign" else None
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return 0


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "names",
        lambda m: bool(m.names),
        lambda m, s: any(fnmatch.fnmatchcase(s.name, g) for g in m.names),
        lambda m, s: f"{s.name} vs {', '.join(m.names)}",
    ),
    Condition(
        "scopes",
        lambda m: bool(m.scopes),
        lambda m, s: any(s.name.startswith(scope + "/") for scope in m.scopes),
        lambda m, s: f"{s.name} vs {', '.join(m.scopes)}",
    ),
    Condition(
        "versions",
        lambda m: m.versions is not None,
        lambda m, s: m.versions is not None and m.versions.contains(s.version),
        lambda m, s: f"{s.version} vs {m.versions}",
    ),
    Condition(
        "labels",
        lambda m: bool(m.labels),
        lambda m, s: (s.verdict.label if s.verdict is not None else None) in m.labels,
        lambda m, s: f"{_label(s)} vs {', '.join(m.labels)}",
    ),
    Condition(
        "min_score",
        lambda m: m.min_score is not None,
        lambda m, s: s.verdict is not None and s.verdict.score >= (m.min_score or 0),
        lambda m, s: f"{_score(s)} >= {m.min_score}",
    ),
    Condition(
        "max_score",
        lambda m: m.max_score is not None,
        lambda m, s: s.verdict is not None and s.verdict.score <= (m.max_score or 0),
        lambda m, s: f"{_score(s)} <= {m.max_score}",
    ),
    Condition(
        "signals",
        lambda m: bool(m.signals),
        lambda m, s: s.verdict is not None and any(x in s.verdict.signal_ids for x in m.signals),
        lambda m, s: f"fired {_fired(s) or 'none'} vs {', '.join(m.signals)}",
    ),
    Condition(
        "osv",
        lambda m: bool(m.osv),
        lambda m, s: bool(ids := _osv_ids(s)) and ("*" in m.osv or any(i in ids for i in m.osv)),
        lambda m, s: f"records {_osv_ids(s) or 'none'} vs {', '.join(m.osv)}",
    ),
    Condition(
        "min_campaign_size",
        lambda m: m.min_campaign_size is not None,
        lambda m, s: campaign_size(s.verdict) >= (m.min_campaign_size or 0),
        lambda m, s: f"campaign of {campaign_size(s.verdict)} >= {m.min_campaign_size}",
    ),
    Condition(
        "version_younger_than",
        lambda m: m.version_younger_than is not None,
        lambda m, s: _younger(age(s.now, s.published), m.version_younger_than),
        lambda m, s: f"age {age(s.now, s.published) or 'unknown'}",
    ),
    Condition(
        "package_younger_than",
        lambda m: m.package_younger_than is not None,
        lambda m, s: _younger(age(s.now, s.created), m.package_younger_than),
        lambda m, s: f"age {age(s.now, s.created) or 'unknown'}",
    ),
    Condition(
        "install_scripts",
        lambda m: m.install_scripts is not None,
        lambda m, s: s.install_scripts is not None and s.install_scripts == m.install_scripts,
        lambda m, s: f"{s.install_scripts}",
    ),
    Condition(
        "shadows_internal",
        lambda m: m.shadows_internal is not None,
        lambda m, s: (s.shadows is not None) == m.shadows_internal,
        lambda m, s: f"twin of internal {s.shadows}" if s.shadows else "no internal twin",
    ),
)


def check_match(match: Match, s: Subject) -> list[Check]:
    """Every condition `match` sets, evaluated against `s` (an empty list matches everything)."""
    return [
        Check(c.name, c.holds(match, s), c.detail(match, s)) for c in CONDITIONS if c.given(match)
    ]


_GIVEN: dict[int, tuple[Match, tuple[Condition, ...]]] = {}  # id(match) -> (match, conditions)
GIVEN_MEMO = 1024


def given_conditions(m: Match) -> tuple[Condition, ...]:
    """The conditions `m` sets, in CONDITIONS order; memoised per Match object (a plan decides
    every version of a packument against the same few rules). The memo holds the Match, so
    its id cannot be reused while it is there."""
    hit = _GIVEN.get(id(m))
    if hit is None or hit[0] is not m:
        if len(_GIVEN) >= GIVEN_MEMO:
            _GIVEN.clear()
        hit = (m, tuple(c for c in CONDITIONS if c.given(m)))
        _GIVEN[id(m)] = hit
    return hit[1]


def rule_matches(rule: Rule, s: Subject) -> bool:
    """Whether every condition of the rule holds (no explanation text is built)."""
    m = rule.match
    return all(c.holds(m, s) for c in given_conditions(m))


def _could_match_later(rule: Rule, s: Subject) -> bool:
    """True when the rule's conditions that do not depend on the verdict hold."""
    verdict_conditions = {
        "labels", "min_score", "max_score", "signals", "osv", "min_campaign_size",
    }  # fmt: skip
    m = rule.match
    return m.needs_verdict and all(
        c.holds(m, s) for c in CONDITIONS if c.given(m) and c.name not in verdict_conditions
    )


def _reason(rule: Rule, s: Subject) -> str:
    if rule.message:
        return rule.message
    if s.shadows is not None and rule.match.shadows_internal:
        return (
            f"{s.name} imitates the internal package {s.shadows} (dependency confusion): "
            "a public package must not stand in for one of the organization's own"
        )
    if s.verdict is not None and s.verdict.findings:
        return "; ".join(s.verdict.reasons[:3])
    return f"matched policy rule {rule.id!r}"


def _details(s: Subject) -> tuple[str, ...]:
    return s.verdict.reasons if s.verdict is not None else ()


def decide_by_rules(policy: Policy, s: Subject) -> Decision:
    """Steps 1 and 2: the rules alone, before waivers and mode."""
    unscanned = s.scan is ScanState.UNAVAILABLE
    for rule in policy.rules:
        if rule_matches(rule, s):
            return Decision(
                rule.action,
                rule.id,
                _reason(rule, s),
                rule.action,
                details=_details(s),
                severity=rule.audit_severity,
            )
        if unscanned:
            fail = rule.unscanned or policy.unscanned
            refuses = fail is FailMode.CLOSED and rule.action in (Action.BLOCK, Action.HIDE)
            if refuses and _could_match_later(rule, s):
                reason = (
                    f"the tarball of {s.name}@{s.version} has not been scanned yet and rule "
                    f"{rule.id!r} fails closed; try again shortly"
                )
                return Decision(
                    Action.BLOCK,
                    rule.id,
                    reason,
                    Action.BLOCK,
                    pending=True,
                    severity=rule.audit_severity,
                )
    return ALLOWED


def decide(policy: Policy, s: Subject) -> Decision:
    """The enforced decision for `s` under `policy` (see the module docstring for the order)."""
    d = decide_by_rules(policy, s)
    if d.intended is not Action.ALLOW:
        today = s.now.date()
        for w in policy.waivers:
            if w.active(today) and w.covers(s.name, s.version):
                reason = f"waived until {w.expires.isoformat()} by {w.owner}: {w.reason}"
                return dataclasses.replace(d, action=Action.ALLOW, reason=reason, waiver=w.spec)
    if policy.mode is Mode.DRY_RUN and d.action not in (Action.ALLOW, Action.MONITOR):
        return dataclasses.replace(d, action=Action.MONITOR)
    return d


def decider(policy: Policy) -> Callable[[Subject], Decision]:
    """`decide` under `policy` for many subjects (a packument's thousands of versions): those
    whose verdict found nothing share one decision when they agree in everything the policy
    can read of them. With no findings and no OSV record, the verdict adds nothing but its
    label, score and scan state; of the version, a rule reads its string only through
    `versions` (and waivers through their ranges), its publish time only through
    `version_younger_than`, its install scripts only through `install_scripts`."""
    reads_version = bool(policy.waivers) or any(r.match.versions is not None for r in policy.rules)
    reads_published = any(r.match.version_younger_than is not None for r in policy.rules)
    reads_scripts = any(r.match.install_scripts is not None for r in policy.rules)
    memo: dict[tuple[object, ...], Decision] = {}

    def decide_one(s: Subject) -> Decision:
        v = s.verdict
        if (v is not None and (v.findings or v.osv_ids)) or s.scan is ScanState.UNAVAILABLE:
            return decide(policy, s)  # its reasons (or the version, pending a scan) are in it
        key = (
            None if v is None else (v.label, v.score, v.tarball_scanned),
            s.name,
            s.now,
            s.scan,
            s.created,
            s.shadows,
            s.version if reads_version else None,
            s.published if reads_published else None,
            s.install_scripts if reads_scripts else None,
        )
        d = memo.get(key)
        if d is None:
            d = memo[key] = decide(policy, s)
        return d

    return decide_one
