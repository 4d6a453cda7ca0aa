"""dependency-ring: the package's dependencies are a farm's ring.

What it detects, from the package graph (every package the detector has seen: its dependency
edges and the label each name got from its own findings, relational ones left out), strongest
first:
- dependencies on packages the detector labelled spam: strong when they are at least MIN_RING
  and half of all dependencies, weak when a real package has one among many;
- a package that depends on itself (low severity: real packages have done it by mistake, such
  as old versions of @webassemblyjs/wasm-parser);
- a cycle: this package's dependencies lead back to it through packages already seen.

Token farms wire their packages into rings so that each one gains dependents and downloads.
The finding depends on other packages, so it is recomputed whenever a stored verdict is served
(`Detector.current`, from the version's dependencies and the graph as it is then): every
member of a ring gets the same finding whichever member was fetched first, and a package
fetched before its dependencies were labelled spam gets it once they are. The labels in the
graph do not depend on what was seen before either, and ring verdicts do not feed on each
other; a package that is spam only through its campaign or clones is not counted here (the
campaign links its members' dependency edges). (Dependencies that the code never uses are
`unused-dependencies`: that is the package's own trait.)

Known false positives: real packages in mutual-dependency families (monorepos such as jest's,
babel's plugins, plugin/core pairs), so a cycle alone is low severity; a real package with one
dependency that was flagged, rightly or not (its victim: low severity). Only a dependency on
spam counts (a malicious package is blocked on its own, and counting it would spread one
verdict, right or wrong, to every dependent); alone the signal makes a verdict `suspicious`
at most.
"""

from __future__ import annotations

from collections.abc import Iterator

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "dependency-ring", "dependency ring", Severity.MEDIUM, Confidence.MEDIUM, role=Role.FARM
)
MIN_RING = 2  # flagged dependencies that, as half of all, make a ring


def _findings(s: Subject) -> Iterator[Finding]:
    deps = s.dependencies
    c = s.context
    spam_deps = {n: lb for n, lb in c.flagged_dependencies.items() if lb == "spam"}
    if spam_deps:
        names = sorted(spam_deps)
        # A ring member's dependencies are mostly the ring; a real package with one flagged
        # dependency among many is its victim (and one wrong verdict must not cascade).
        ring = len(names) >= MIN_RING and len(names) * 2 >= len(deps)
        yield SPEC.finding(
            f"it depends on {len(names)} package(s) already flagged as spam: "
            + ", ".join(names[:3])
            + ("" if ring else f" (of {len(deps)} dependencies)"),
            {"flagged_dependencies": spam_deps, "dependencies": len(deps)},
            severity=Severity.HIGH if ring else Severity.LOW,
        )
        if ring:
            return
    if s.name in deps:
        yield SPEC.finding(
            "the package lists itself as a dependency",
            {"dependency": s.name},  # by name: facts keep no ranges (no signal weighs one)
            severity=Severity.LOW,  # real packages did it by mistake (@webassemblyjs 1.2-1.5)
            confidence=Confidence.HIGH,
        )
        return
    if c.dependency_cycles:
        shown = " -> ".join(c.dependency_cycles[0])
        yield SPEC.finding(
            f"its dependencies lead back to it: {shown}",
            {"cycles": [list(p) for p in c.dependency_cycles]},
            severity=Severity.LOW,  # monorepo families (jest-*, babel plugins) have cycles too
        )


_SEV = list(Severity)
_CONF = list(Confidence)


def check(s: Subject) -> Finding | None:
    """The strongest of the ring findings (a self-dependency outweighs a victim's one flagged
    dependency)."""
    found = list(_findings(s))
    if not found:
        return None
    return max(found, key=lambda f: (_SEV.index(f.severity), _CONF.index(f.confidence)))
