"""trivial-code: the package has next to no code: a hello-world, an empty entry, a few bytes.

What it detects, from the tarball: an entry point that only logs a greeting (hello-world);
code files adding up to a few hundred bytes; an entry point that is empty while it is the only
code; no code at all beside data files; a `main` that points at a file not in the package
while other code exists. (A package of nothing but metadata is `empty-package`; a manifest
whose entry resolves to nothing with no code at all is `missing-entry`.) Without the tarball,
it falls back to the packument's `dist.fileCount`/`dist.unpackedSize` (weaker). Token farms
publish such shells by the thousand because the name, not the code, is what earns.

Known false positives: deliberate marker packages (`client-only`, `server-only`), packages
that only re-export or hold a placeholder, counters and stubs whose index.js is empty by design
(`@swc/counter`), platform binaries (`.node`, `.wasm`; counted as code here), type-only
packages (`.d.ts`, counted as code) and data packages (`mime-db`). So an empty entry, no code or
a few bytes of it is a low-severity finding that never flags alone; only a hello-world entry
point makes a verdict `suspicious` by itself. An entry point that is nothing but one-line
functions returning a call into a dependency (`add(a, b) { return new BigNumber(a).plus(b) }`)
adds no function of its own: medium severity, low confidence (thin facades exist by design).
A package whose README says it holds no code on purpose ("does not contain any code", "stub
types definition") is not flagged at all.
"""

from __future__ import annotations

from proxy.detect.code import (
    code_entries,
    declares_no_code,
    is_empty_code,
    is_greeting,
    is_metadata,
    wrapped_packages,
)
from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "trivial-code", "no real code", Severity.MEDIUM, Confidence.MEDIUM, role=Role.FUNCTION
)
MIN_CODE_BYTES = 200  # all code files together below this is no real code
HELLO_MAX_CODE_BYTES = 2048  # a greeting entry point beside more code than this is a stub
# (a compiled TypeScript module whose index.js is just 'use strict' beside its .d.ts files)
WRAPPER_MAX_FILES = 3  # an entry of one-line wrappers beside at most a test or two
META_MAX_FILES = 2  # packument-only: this few files ...
META_MAX_BYTES = 1024  # ... this small


def check(s: Subject) -> Finding | None:
    t = s.tarball
    if t is None:
        return _from_metadata(s)
    if not t.complete or declares_no_code(t.readme_text):
        return None
    code = code_entries(t)
    code_bytes = sum(e.size for e in code)
    evidence = {"files": len(t.files), "code_files": len(code), "code_bytes": code_bytes}
    # No code beside data files is what data packages (mime-db, node-releases) look like, and a
    # few bytes of code what marker packages (client-only) do, so those are weak alone. A
    # hello-world entry point is not.
    if not code:
        if all(is_metadata(t.relative(e.path)) for e in t.files):
            return None  # nothing but metadata: empty-package's finding
        return SPEC.finding(
            f"the package has {len(t.files)} file(s) and no code at all",
            evidence,
            severity=Severity.LOW,
        )
    entry = t.entry_point
    text = t.sources.get(entry, "") if entry is not None else ""
    if (
        entry is not None
        and entry in t.sources
        and len(code) <= 3
        and code_bytes < HELLO_MAX_CODE_BYTES
        and is_greeting(text)
    ):
        return SPEC.finding(
            f"the entry point {t.relative(entry)} only prints a greeting",
            {**evidence, "entry_point": entry, "entry_text": text[:200]},
        )
    # An empty entry point as the only code is a counter's or marker's shape (@swc/counter
    # exists to be counted): low confidence, so alone it never warns, while beside a tea.yaml
    # it is the no-function trait a farm shell has.
    if entry is not None and entry in t.sources and len(code) == 1 and is_empty_code(text):
        return SPEC.finding(
            f"the only code file, the entry point {t.relative(entry)}, is empty",
            {**evidence, "entry_point": entry},
            confidence=Confidence.LOW,
        )
    if code_bytes < MIN_CODE_BYTES:
        return SPEC.finding(
            f"all {len(code)} code file(s) add up to {code_bytes} bytes",
            evidence,
            severity=Severity.LOW,
        )
    wrapped = (
        wrapped_packages(text)
        if entry is not None and entry in t.sources and len(code) <= WRAPPER_MAX_FILES
        else None
    )
    if wrapped is not None:
        count, packages = wrapped
        return SPEC.finding(
            f"the entry point {t.relative(entry or '')} only wraps {', '.join(packages)} in "
            f"{count} one-line function(s)",
            {**evidence, "entry_point": entry, "wraps": list(packages), "wrappers": count},
            confidence=Confidence.LOW,
        )
    return None


def _from_metadata(s: Subject) -> Finding | None:
    v = s.version
    if v is None or v.file_count is None or v.unpacked_size is None:
        return None
    if v.file_count <= META_MAX_FILES and v.unpacked_size <= META_MAX_BYTES:
        return SPEC.finding(
            f"the published tarball holds {v.file_count} file(s) in {v.unpacked_size} bytes",
            {"file_count": v.file_count, "unpacked_size": v.unpacked_size},
            severity=Severity.LOW,  # counts alone say little: the tarball scan decides
            confidence=Confidence.LOW,
        )
    return None
