"""`floodgate policy explain`: which rule decides a version, and why, with the evidence.

Fetches the packument (and, unless told not to, the tarball) through the configured upstream,
assesses the version with the detector and walks the policy's rules the way the proxy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts, read_packument
from proxy.detect.model import Verdict
from proxy.detect.scan import Target, fetch_packument, fetch_tarball, resolve
from proxy.policy.engine import Check, Subject, check_match, decide
from proxy.policy.model import Decision, Policy
from proxy.upstream.client import UpstreamClient


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule: str
    action: str
    matched: bool
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    name: str
    version: str
    policy: Policy
    verdict: Verdict
    decision: Decision
    rules: tuple[RuleTrace, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.name,
            "version": self.version,
            "policy": {
                "name": self.policy.name,
                "digest": self.policy.digest,
                "source": str(self.policy.source) if self.policy.source else None,
                "mode": self.policy.mode.value,
            },
            "verdict": self.verdict.to_json(),
            "decision": {
                "action": self.decision.action.value,
                "intended": self.decision.intended.value,
                "rule": self.decision.rule,
                "reason": self.decision.reason,
                "waiver": self.decision.waiver,
            },
            "rules": [
                {
                    "id": r.rule,
                    "action": r.action,
                    "matched": r.matched,
                    "conditions": [
                        {"condition": c.condition, "holds": c.holds, "detail": c.detail}
                        for c in r.checks
                    ],
                }
                for r in self.rules
            ],
        }

    def render(self) -> str:
        p, v, d = self.policy, self.verdict, self.decision
        lines = [
            f"{self.name}@{self.version} under policy {p.name!r} "
            f"({p.source or 'inline'}, digest {p.digest}, mode {p.mode})",
            f"  verdict: {v.label}, score {v.score}"
            + (" (tarball scanned)" if v.tarball_scanned else " (metadata only)"),
        ]
        for f in v.findings:
            lines.append(f"    - {f.signal_id} ({f.severity}/{f.confidence}): {f.reason}")
            for key, value in f.evidence.items():
                lines.append(f"        {key}: {value}")
        if v.osv_ids:
            lines.append(f"    OSV records: {', '.join(v.osv_ids)}")
        lines.append("  rules (first match wins):")
        for i, r in enumerate(self.rules, 1):
            mark = "MATCH" if r.matched else "no"
            conds = "; ".join(
                f"{c.condition} {'ok' if c.holds else 'fails'} ({c.detail})" for c in r.checks
            )
            lines.append(f"    {i}. {r.rule:<20} {r.action:<8} {mark:<6} {conds or 'always'}")
        outcome = f"  decision: {d.action.upper()}"
        if d.rule:
            outcome += f" by rule {d.rule!r}"
        if d.intended is not d.action:
            outcome += f" (the rule says {d.intended})"
        lines.append(outcome + f": {d.reason}")
        if d.waiver:
            lines.append(f"  waiver: {d.waiver}")
        return "\n".join(lines)


def explain_verdict(
    policy: Policy,
    facts: PackageFacts,
    version: str,
    verdict: Verdict,
    now: datetime,
    shadows: str | None = None,
) -> Explanation:
    """Walk the rules for one assessed version (pure); `shadows`: the internal name the
    package is a twin of."""
    subject = Subject.of(facts, version, verdict, now, None, shadows)
    traces = []
    for rule in policy.rules:
        checks = tuple(check_match(rule.match, subject))
        traces.append(RuleTrace(rule.id, rule.action.value, all(c.holds for c in checks), checks))
    return Explanation(facts.name, version, policy, verdict, decide(policy, subject), tuple(traces))


async def explain(
    upstream: UpstreamClient,
    detector: Detector,
    policy: Policy,
    spec: str,
    with_tarball: bool = True,
    shadows: str | None = None,
) -> Explanation:
    """Fetch, assess and explain `NAME[@VERSION|@TAG|@RANGE]` (a range: its newest version)."""
    target = Target.parse(spec)
    summary, facts = read_packument(await fetch_packument(upstream, target.package), target.package)
    version = resolve(facts, target.spec)[0]
    tarball = await fetch_tarball(upstream, summary, version) if with_tarball else None
    verdict = detector.assess(facts, version, tarball, record=False)
    return explain_verdict(policy, facts, version, verdict, datetime.now(UTC), shadows)
