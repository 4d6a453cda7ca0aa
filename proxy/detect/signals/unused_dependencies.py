"""unused-dependencies: dependencies declared for the count, not to be used by the code.

What it detects, read from the package's own tarball (nothing here depends on other packages):
- dependencies declared with no JavaScript or TypeScript in the package to use them;
- dependency inflation: INFLATED_DEPS or more dependencies of which the code (read in full)
  imports at most INFLATED_SHARE (medium severity, low confidence);
- dependencies declared but never imported: the tarball's code was read in full and no file
  `require`s or `import`s any declared dependency (low severity, low confidence).

Token farms declare each other as dependencies so that every package gains dependents and
downloads; the code never uses them. (Whether those dependencies are flagged, or lead back to
the package, is `dependency-ring`'s question: it depends on other packages, this one does not.)

Known false positives: dependencies used only from scripts, configs or CLIs spawned by name
(`eslint-config-*`, a `bin` that runs another package's command), which the import check cannot
see; meta-packages and presets that exist to install others (no code, or code that only
re-exports by a computed name); plugins whose host loads their peer by name; and packages whose
code was not read in full (then nothing is concluded). All are low confidence: alone the signal
makes a verdict `suspicious` at most.
"""

from __future__ import annotations

from collections.abc import Iterator

from proxy.detect.code import imported_packages
from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "unused-dependencies", "dependencies the code does not use", Severity.MEDIUM,
    Confidence.LOW, role=Role.FARM,
)  # fmt: skip
INFLATED_DEPS = 5  # declared dependencies from which ...
INFLATED_SHARE = 0.25  # ... importing at most this share of them is inflation


def _findings(s: Subject) -> Iterator[Finding]:
    deps = s.dependencies
    t = s.tarball
    p = s.profile
    if t is None or p is None or not deps:
        return
    if t.complete and not p.script_files:
        yield SPEC.finding(
            f"it declares {len(deps)} dependencies but has no JavaScript or TypeScript to use them",
            {"unused": sorted(deps)[:20]},
        )
        return
    if not t.sources_complete or not t.sources:
        return
    if len(deps) >= INFLATED_DEPS:
        used = imported_packages(t.sources) & set(deps)
        if len(used) <= len(deps) * INFLATED_SHARE:
            yield SPEC.finding(
                f"it declares {len(deps)} dependencies and its code imports {len(used)} of them",
                {"unused": sorted(set(deps) - used)[:20], "imported": sorted(used)},
            )
            return
    if not s.imports_any_dependency:
        yield SPEC.finding(
            f"none of its {len(deps)} declared dependencies is imported by its code",
            {"unused": sorted(deps)[:20], "source_files": len(t.sources)},
            severity=Severity.LOW,
        )


def check(s: Subject) -> Finding | None:
    """The first (strongest) of the findings above."""
    return next(_findings(s), None)
