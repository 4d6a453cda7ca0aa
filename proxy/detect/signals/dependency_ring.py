"""dependency-ring: dependencies that exist to inflate metrics, not to be used.

What it detects, strongest first:
- dependencies on packages the detector already labelled spam: strong when they are at least
  MIN_RING and half of all dependencies, weak when a real package has one among many;
- a package that depends on itself;
- a cycle: this package's dependencies lead back to it through packages already seen;
- dependencies declared with no JavaScript or TypeScript in the package to use them;
- dependency inflation: INFLATED_DEPS or more dependencies of which the code (read in full)
  imports at most INFLATED_SHARE (medium severity, low confidence);
- dependencies declared but never imported: the tarball's code was read in full and no file
  `require`s or `import`s any declared dependency.

Token farms wire their packages into rings so that each one gains dependents and downloads.

Known false positives: real packages in mutual-dependency families (monorepos such as jest's,
plugin/core pairs), so a cycle alone is low severity; dependencies used only from scripts,
configs or CLIs spawned by name, which the import check cannot see (low confidence), and
meta-packages that exist to install others (no code, low confidence). Only a dependency on spam
(not on a malicious package, which is blocked on its own) is strong; alone the signal makes a
verdict `suspicious` at most.
"""

from __future__ import annotations

from collections.abc import Iterator

from proxy.detect.code import imported_packages
from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "dependency-ring", "dependency ring", Severity.MEDIUM, Confidence.MEDIUM, role=Role.FARM
)
INFLATED_DEPS = 5  # declared dependencies from which ...
INFLATED_SHARE = 0.25  # ... importing at most this share of them is inflation
MIN_RING = 2  # flagged dependencies that, as half of all, make a ring


def _findings(s: Subject) -> Iterator[Finding]:
    deps = s.dependencies
    c = s.context
    # Farms depend on each other's spam; a dependency flagged malicious is that package's own
    # problem (it is blocked wherever it is requested), and counting it here would spread one
    # verdict, right or wrong, to every dependent.
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
            {"dependency": s.name, "range": deps[s.name]},
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
    t = s.tarball
    p = s.profile
    if t is not None and t.complete and p is not None and deps and not p.script_files:
        yield SPEC.finding(
            f"it declares {len(deps)} dependencies but has no JavaScript or TypeScript to use them",
            {"unused": sorted(deps)[:20]},
            confidence=Confidence.LOW,
        )
        return
    if t is None or not t.sources_complete or not t.sources or not deps:
        return
    if len(deps) >= INFLATED_DEPS:
        used = imported_packages(t.sources) & set(deps)
        if len(used) <= len(deps) * INFLATED_SHARE:
            yield SPEC.finding(
                f"it declares {len(deps)} dependencies and its code imports {len(used)} of them",
                {"unused": sorted(set(deps) - used)[:20], "imported": sorted(used)},
                confidence=Confidence.LOW,
            )
            return
    if not s.imports_any_dependency:
        yield SPEC.finding(
            f"none of its {len(deps)} declared dependencies is imported by its code",
            {"unused": sorted(deps)[:20], "source_files": len(t.sources)},
            severity=Severity.LOW,
            confidence=Confidence.LOW,
        )


_SEV = list(Severity)
_CONF = list(Confidence)


def check(s: Subject) -> Finding | None:
    """The strongest of the ring findings (a victim's flagged dependency must not hide that the
    package has no code to use any dependency)."""
    found = list(_findings(s))
    if not found:
        return None
    return max(found, key=lambda f: (_SEV.index(f.severity), _CONF.index(f.confidence)))
