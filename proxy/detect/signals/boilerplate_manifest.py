"""boilerplate-manifest: package.json is what `npm init -y` writes, never edited.

What it detects: the manifest still has the test script `npm init` puts in
(`echo "Error: no test specified" && exit 1`) and at least one more untouched default: an
empty description, an empty author, an empty keyword list. Nobody edited the manifest before
publishing: the package was published to exist, not to be used. Farms publish thousands that
way.

Known false positives: small real packages whose authors never cared for the manifest (the
`@webassemblyjs/*` packages keep the default test script, a few with an empty description);
so it is low confidence, a corroborating trait only: with a tea.yaml it is spam, alone or with
another weak hint it is not.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "boilerplate-manifest", "unedited npm init manifest", Severity.MEDIUM, Confidence.LOW,
    role=Role.FUNCTION,
)  # fmt: skip
DEFAULT_TEST = "no test specified"


def check(s: Subject) -> Finding | None:
    t = s.tarball
    pj = t.package_json if t is not None else None
    if pj is None:
        return None
    scripts = pj.get("scripts")
    test = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(test, str) or DEFAULT_TEST not in test:
        return None
    defaults = [
        key
        for key, empty in (("description", ""), ("author", ""), ("keywords", []))
        if key in pj and pj[key] == empty
    ]
    if not defaults:
        return None
    return SPEC.finding(
        "package.json is an unedited `npm init` manifest (default test script, empty "
        + ", ".join(defaults)
        + ")",
        {"test": test[:80], "empty": defaults},
    )
