"""script-entry: the entry point is a script that runs, not a module that offers anything.

What it detects: the file `require(name)` loads (read in full) exports nothing and sets no
global: it starts a server, reads the terminal, sends tokens, prints. A dependency can use
nothing of it, so as a package it has no function; farms publish their demo scripts and
`node index.js` apps this way. Packages that declare a `bin` are commands, not libraries, and
are left out.

Known false positives: polyfills and registration hooks (`source-map-support/register`-like
entries) that only patch globals or `require` (those patterns count as exports here), and
packages whose real API is elsewhere while `main` points at a demo, and download counters
whose README says they hold no code (`@swc/counter` prints a line; left out). So it is a weak
finding (medium severity, low confidence): it corroborates a tea.yaml or other traits, never
alone.
"""

from __future__ import annotations

from proxy.detect.code import declares_no_code, exports_nothing
from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "script-entry", "entry point is a script", Severity.MEDIUM, Confidence.LOW,
    role=Role.FUNCTION,
)  # fmt: skip


def check(s: Subject) -> Finding | None:
    p, t = s.profile, s.tarball
    if p is None or t is None or p.entry is None or p.entry_text is None or not p.entry_whole:
        return None
    if t.bins or not exports_nothing(p.entry_text) or declares_no_code(t.readme_text):
        return None
    return SPEC.finding(
        f"its entry point {t.relative(p.entry)} exports nothing: it is a script that runs, "
        "not a module a dependent could use",
        {"entry_point": p.entry, "entry_text": p.entry_text[:200]},
    )
