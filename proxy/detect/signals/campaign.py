"""campaign: the package belongs to a cluster of packages that share what farms share.

What it detects: in the campaign graph (`proxy.detect.campaigns`), the package is a member (it
has a trait of no real function or of farm publishing of its own) and is linked to other
members through a tea.xyz wallet, byte-identical code files, dependency edges among them or a
publish minute, and name templates (`word_word_x7k`, `brand-0x<hex>`, `<word>-<4 digits>`).
The evidence names the cluster (a stable id) and its members. MIN_SIZE members or more linked by
more than names is strong; linked by name templates alone, or a pair, is weak. The finding is
recomputed whenever a stored verdict is served (`Detector.current`), so a package fetched
first gets the same verdict as one fetched last once the cluster is known.

Known false positives: packages of one author who reuses a scaffold for several small real
projects (they are members only with traits of no function, so real code keeps them out),
and packages that only share a name template (weak). Platform builds and monorepo siblings are
not members through shared code alone: they have real code.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "campaign", "part of a campaign", Severity.HIGH, Confidence.MEDIUM, role=Role.FARM
)
MIN_SIZE = 3  # members (the package included) that make a campaign
STRONG_LINKS = frozenset({"wallet", "code", "dep", "minute"})


def check(s: Subject) -> Finding | None:
    c = s.context.campaign
    if c is None or c.size < 2:
        return None
    others = [m for m in c.members if m != s.name]
    kinds = ", ".join(sorted(c.links)) or "nothing"
    reason = (
        f"one of {c.size} packages of campaign {c.id} linked by {kinds}: "
        + ", ".join(others[:3])
        + ("..." if len(others) > 3 else "")
    )
    evidence = c.to_json()
    if c.size >= MIN_SIZE and STRONG_LINKS & set(c.links):
        return SPEC.finding(reason, evidence)
    if c.size >= MIN_SIZE:
        return SPEC.finding(reason, evidence, severity=Severity.MEDIUM, confidence=Confidence.LOW)
    return SPEC.finding(reason, evidence, severity=Severity.LOW, confidence=Confidence.LOW)
