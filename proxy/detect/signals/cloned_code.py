"""cloned-code: the package's code files are byte-identical to those of other package names.

What it detects: most of the package's code files (by sha256; package.json, README, LICENSE,
changelogs, lock files and tiny files left out) were already seen under other names in the
clone index. Farms publish one template (a create-next-app or Vite starter, a hello-world)
under dozens of generated names; the more names share the files, the stronger the evidence.

Known false positives: forks and renamed re-publications (`fast-json-stable-stringify` and
`json-stable-stringify-without-jsonify`), alias packages, and families of packages built from
one generator; so one or two other names is low severity, and only three or more is strong.
Alone it makes a verdict `suspicious` at most.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "cloned-code", "code cloned from other names", Severity.MEDIUM, Confidence.MEDIUM,
    role=Role.FUNCTION,
)  # fmt: skip
MIN_SHARE = 0.8  # fraction of code files seen under other names
MIN_FILES = 2  # code files needed before a share means anything
STRONG_NAMES = 3  # other names that make the clone evidence strong


def check(s: Subject) -> Finding | None:
    c = s.context
    if s.tarball is None or c.clone_files < MIN_FILES or not c.clone_names:
        return None
    if c.clone_share < MIN_SHARE:
        return None
    names = c.clone_names
    evidence = {
        "code_files": c.clone_files,
        "share": round(c.clone_share, 3),
        "other_names": list(names),
    }
    reason = (
        f"{round(c.clone_share * 100)}% of its {c.clone_files} code files are byte-identical to "
        f"files of {len(names)} other package(s), e.g. {names[0]}"
    )
    if len(names) >= STRONG_NAMES:
        return SPEC.finding(reason, evidence, severity=Severity.HIGH)
    # One or two other names is what forks and renamed packages look like
    # (fast-json-stable-stringify / json-stable-stringify-without-jsonify).
    return SPEC.finding(reason, evidence, severity=Severity.LOW)
