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
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
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

    @classmethod
    def of(
        cls,
        facts: PackageFacts,
        version: str,
        verdict: Verdict | None,
        now: datetime,
        scan: ScanState | None = None,
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
        )


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a rule, evaluated: for `policy explain`."""

    condition: str
    holds: bool
    detail: str


def check_match(match: Match, s: Subject) -> list[Check]:
    """Every condition `match` sets, evaluated against `s` (an empty list matches everything)."""
    v = s.verdict
    out: list[Check] = []
    if match.names:
        hit = any(fnmatch.fnmatchcase(s.name, g) for g in match.names)
        out.append(Check("names", hit, f"{s.name} vs {', '.join(match.names)}"))
    if match.scopes:
        hit = any(s.name.startswith(scope + "/") for scope in match.scopes)
        out.append(Check("scopes", hit, f"{s.name} vs {', '.join(match.scopes)}"))
    if match.versions is not None:
        hit = match.versions.contains(s.version)
        out.append(Check("versions", hit, f"{s.version} vs {match.versions}"))
    if match.labels:
        label = v.label if v is not None else None
        hit = label in match.labels
        out.append(Check("labels", hit, f"{label or 'no verdict'} vs {', '.join(match.labels)}"))
    if match.min_score is not None:
        hit = v is not None and v.score >= match.min_score
        out.append(
            Check("min_score", hit, f"{v.score if v else 'no verdict'} >= {match.min_score}")
        )
    if match.max_score is not None:
        hit = v is not None and v.score <= match.max_score
        out.append(
            Check("max_score", hit, f"{v.score if v else 'no verdict'} <= {match.max_score}")
        )
    if match.signals:
        fired = sorted(v.signal_ids) if v is not None else []
        hit = any(sig in fired for sig in match.signals)
        out.append(Check("signals", hit, f"fired {fired or 'none'} vs {', '.join(match.signals)}"))
    if match.osv:
        ids = list(v.osv_ids) if v is not None else []
        hit = bool(ids) and ("*" in match.osv or any(i in ids for i in match.osv))
        out.append(Check("osv", hit, f"records {ids or 'none'} vs {', '.join(match.osv)}"))
    if match.min_campaign_size is not None:
        size = campaign_size(v)
        hit = size >= match.min_campaign_size
        out.append(
            Check("min_campaign_size", hit, f"campaign of {size} >= {match.min_campaign_size}")
        )
    if match.version_younger_than is not None:
        a = age(s.now, s.published)
        hit = a is not None and a < match.version_younger_than
        out.append(Check("version_younger_than", hit, f"age {a or 'unknown'}"))
    if match.package_younger_than is not None:
        a = age(s.now, s.created)
        hit = a is not None and a < match.package_younger_than
        out.append(Check("package_younger_than", hit, f"age {a or 'unknown'}"))
    if match.install_scripts is not None:
        hit = s.install_scripts is not None and s.install_scripts == match.install_scripts
        out.append(Check("install_scripts", hit, f"{s.install_scripts}"))
    return out


def campaign_size(v: Verdict | None) -> int:
    """Members of the campaign the verdict's `campaign` finding names (0: none)."""
    for f in v.findings if v is not None else ():
        size = f.evidence.get("size") if f.signal_id == "campaign" else None
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return 0


def rule_matches(rule: Rule, s: Subject) -> bool:
    return all(c.holds for c in check_match(rule.match, s))


def _could_match_later(rule: Rule, s: Subject) -> bool:
    """True when the rule's conditions that do not depend on the verdict hold."""
    verdict_conditions = {
        "labels", "min_score", "max_score", "signals", "osv", "min_campaign_size",
    }  # fmt: skip
    checks = check_match(rule.match, s)
    return rule.match.needs_verdict and all(
        c.holds for c in checks if c.condition not in verdict_conditions
    )


def _reason(rule: Rule, s: Subject) -> str:
    if rule.message:
        return rule.message
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
