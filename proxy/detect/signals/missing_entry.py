"""missing-entry: the package's entry point resolves to no code.

What it detects:
- package.json declares a `main` (or a `bin`) that is not in the package, and the package has
  no JavaScript or TypeScript at all, so `require(name)` and its command both fail: the manifest
  was copied from a template and nothing was ever built (farms publish `"main": "index.js"`
  beside a README and a tea.yaml, or beside files in other languages);
- the same with other code in the package (a repository pushed as-is, an app, not a library):
  medium severity, low confidence;
- no package.json at all beside other files: npm cannot install it (what was published is a
  folder of files, not a package).

Known false positives: packages that forgot to include their build output in one release (they
have other code, so that is the weak form), types-only packages (`.d.ts` counts as code), and
native or wasm packages whose `main` names a binary that is present.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "missing-entry", "entry point resolves to nothing", Severity.HIGH, Confidence.MEDIUM,
    role=Role.FUNCTION,
)  # fmt: skip


def check(s: Subject) -> Finding | None:
    p, t = s.profile, s.tarball
    if p is None or t is None or not t.complete:
        return None
    if not any(e.path.rsplit("/", 1)[-1] == "package.json" for e in t.files):
        if p.metadata_only:
            return None  # nothing at all: empty-package's finding
        return SPEC.finding(
            "the package has no package.json: npm cannot install it",
            {"files": p.files, "code_files": p.code_files},
        )
    if t.package_json is None:
        return None
    if p.entry is not None or not p.entry_declared:
        return None
    evidence = {"declared": p.entry_declared, "script_files": p.script_files}
    if p.script_files:
        return SPEC.finding(
            f"package.json points at {p.entry_declared!r}, which the package does not contain",
            evidence,
            severity=Severity.MEDIUM,
            confidence=Confidence.LOW,
        )
    return SPEC.finding(
        f"package.json points at {p.entry_declared!r}, which is not in the package, and the "
        "package has no JavaScript or TypeScript at all",
        evidence,
    )
