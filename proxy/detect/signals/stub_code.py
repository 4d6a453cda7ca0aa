"""stub-code: the code says it does not do its job yet: placeholder logic in a small package.

What it detects: in a small package (all code under STUB_MAX_CODE_BYTES), a comment that marks
the logic as missing: "Placeholder for suspicious transaction logic", "Implement additional
logic here", "your code goes here", "TODO: implement", "to be implemented". Farms that moved
past hello-world publish a class with plausible method names whose bodies are such
placeholders (`isSuspicious() { // Placeholder ... return false; }`): it reads like a project
and has no function.

Known false positives: a young honest project published before its logic was written; shims
that mark unsupported features ("not implemented in the browser"); code generators whose
templates carry "your code here" (their own code is far over the size bound). So it is medium
severity with low confidence: alone it never warns, while beside a tea.yaml, a generated name
or clones it is the no-function trait.
"""

from __future__ import annotations

import re

from proxy.detect.code import code_entries, comments
from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "stub-code", "placeholder logic", Severity.MEDIUM, Confidence.LOW, role=Role.FUNCTION
)
STUB_MAX_CODE_BYTES = 8192  # a package with more code than this has more than placeholders
MAX_COMMENT_CHARS = 400  # each comment is matched on its start only (bounded work)
_TEST_DIRS = ("test/", "tests/", "__tests__/", "spec/", "example/", "examples/")
_PLACEHOLDER = re.compile(
    r"\bplaceholder (?:for|logic|implementation|code)\b"
    r"|\bimplement(?:ation)?\b[\w ,'-]{0,40}?\b(?:logic|here|later)\b"
    r"|\b(?:your|the actual|the real) (?:own )?(?:code|logic|implementation) (?:goes )?here\b"
    r"|\b(?:add|put|write|insert) (?:your |the |some )?(?:code|logic|implementation) here\b"
    r"|\btodo:? *implement\b"
    r"|\bto be implemented\b",
    re.IGNORECASE,
)


def placeholder(text: str) -> str | None:
    """The first comment of `text` that marks logic as missing, stripped; else None."""
    for c in comments(text):
        line = " ".join(c[:MAX_COMMENT_CHARS].replace("*", " ").split())
        if _PLACEHOLDER.search(line):
            return line
    return None


def check(s: Subject) -> Finding | None:
    t = s.tarball
    if t is None or not t.complete:
        return None
    code = code_entries(t)
    code_bytes = sum(e.size for e in code)
    if not code or code_bytes > STUB_MAX_CODE_BYTES:
        return None
    for e in sorted(code, key=lambda e: (e.path != t.entry_point, e.path)):
        rel = t.relative(e.path)
        text = t.sources.get(e.path)
        if text is None or rel.lower().startswith(_TEST_DIRS):
            continue
        found = placeholder(text)
        if found is not None:
            return SPEC.finding(
                f"a comment in {rel} marks its logic as missing: {found[:120]!r}",
                {"file": e.path, "comment": found[:200], "code_bytes": code_bytes},
            )
    return None
