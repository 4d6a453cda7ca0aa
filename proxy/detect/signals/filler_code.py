"""filler-code: files that only look like a project: stock-word names, one-liners, prose.

What it detects: a tree of tiny files named by joining stock words with underscores
(`utils_utils.js`, `main_model.jsx`, `config_test.ts`, `train_test.html`), each a one-liner
(`let config = { port: 3000 }`), in every extension, or source files whose text is prose, not
code. Farms generate such trees so a package seems to have structure; no real project names its
files from a word list, and none of it is reachable from an entry point.

Known false positives: Python-style projects that name small modules `test_utils.js` (one or
two such files, and not one-liners), code generators' fixtures; so it takes MIN_FILLER files
making up at least MIN_SHARE of the package's files and code. Alone it makes a verdict
`suspicious`.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "filler-code", "filler that looks like code", Severity.HIGH, Confidence.MEDIUM,
    role=Role.FUNCTION,
)  # fmt: skip
MIN_FILLER = 5  # filler files (stock-word names or prose in a code file)
MIN_SHARE = 0.25  # of the package's non-metadata files


def check(s: Subject) -> Finding | None:
    p, t = s.profile, s.tarball
    if p is None or t is None:
        return None
    filler = p.filler_files + p.prose_files
    substance = p.files - p.metadata_files
    if filler < MIN_FILLER or filler < MIN_SHARE * substance:
        return None
    return SPEC.finding(
        f"{filler} of its {substance} files are filler: stock-word names such as "
        f"utils_utils.js holding one-liners, or prose in code files",
        {
            "filler_files": p.filler_files,
            "prose_files": p.prose_files,
            "files": substance,
            "original_bytes": p.original_bytes,
        },
    )
