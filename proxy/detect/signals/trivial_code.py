"""trivial-code: the package has no real function: no code, a few bytes of it, or hello-world.

What it detects, from the tarball: no code file at all (only README, package.json, tea.yaml,
configs); code files adding up to a few hundred bytes; a `main` that points at a file not in
the package; or an entry point whose text is empty or just logs a greeting. Without the tarball,
it falls back to the packument's `dist.fileCount`/`dist.unpackedSize` (weaker). Token farms
publish such shells by the thousand because the name, not the code, is what earns.

Known false positives: deliberate marker packages (`client-only`, `server-only`), packages
that only re-export or hold a placeholder, platform binaries (`.node`, `.wasm`; counted as
code here), type-only packages (`.d.ts`, counted as code) and data packages (`mime-db`). So no
code or a few bytes of it is a low-severity finding that never flags alone; only a hello-world
entry point makes a verdict `suspicious` by itself.
"""

from __future__ import annotations

import re

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Severity, SignalSpec
from proxy.npm.tarball import EntryKind

SPEC = SignalSpec("trivial-code", "no real code", Severity.MEDIUM, Confidence.MEDIUM)
CODE_SUFFIXES = (
    ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts", ".vue", ".svelte",
    ".node", ".wasm", ".sol", ".py", ".rs", ".go", ".c", ".cc", ".cpp", ".coffee",
)  # fmt: skip
MIN_CODE_BYTES = 200  # all code files together below this is no real code
HELLO_MAX_CODE_BYTES = 2048  # a greeting entry point beside more code than this is a stub
# (a compiled TypeScript module whose index.js is just 'use strict' beside its .d.ts files)
META_MAX_FILES = 2  # packument-only: this few files ...
META_MAX_BYTES = 1024  # ... this small
_HELLO = re.compile(
    r"^\s*(?:(?:'use strict'|\"use strict\");?\s*)?"
    r"(?:console\.log\(\s*['\"`][^'\"`]{0,80}['\"`]\s*\);?\s*|module\.exports\s*=\s*\{\s*\};?\s*"
    r"|export\s*\{\s*\};?\s*|//[^\n]*\n?\s*)*$"
)


def check(s: Subject) -> Finding | None:
    t = s.tarball
    if t is None:
        return _from_metadata(s)
    if not t.complete:
        return None
    code = [
        e for e in t.entries
        if e.kind is EntryKind.FILE and e.path.lower().endswith(CODE_SUFFIXES)
        and "/node_modules/" not in e.path
    ]  # fmt: skip
    code_bytes = sum(e.size for e in code)
    evidence = {"files": len(t.files), "code_files": len(code), "code_bytes": code_bytes}
    # No code at all in a package of nothing but metadata (README, package.json, tea.yaml, a
    # licence) is an empty shell; no code beside data files is what data packages (mime-db,
    # node-releases) look like, and a few bytes of code what marker packages (client-only) do,
    # so those two are weak alone. A hello-world entry point is not.
    if not code:
        shell = all(_is_metadata(t.relative(e.path)) for e in t.files)
        return SPEC.finding(
            f"the package has {len(t.files)} file(s) and no code at all"
            + (", only metadata" if shell else ""),
            evidence,
            severity=None if shell else Severity.LOW,
        )
    entry = t.entry_point
    text = t.sources.get(entry, "") if entry is not None else ""
    # An empty entry point beside other code is a marker package's shape (client-only's
    # index.js is empty; its other file throws), not a hello world.
    if (
        entry is not None
        and entry in t.sources
        and len(code) <= 3
        and code_bytes < HELLO_MAX_CODE_BYTES
        and _HELLO.match(text)
        and (text.strip() or len(code) == 1)
    ):
        return SPEC.finding(
            f"the entry point {t.relative(entry)} is empty or only prints a greeting",
            {**evidence, "entry_point": entry, "entry_text": text[:200]},
        )
    if code_bytes < MIN_CODE_BYTES:
        return SPEC.finding(
            f"all {len(code)} code file(s) add up to {code_bytes} bytes",
            evidence,
            severity=Severity.LOW,
        )
    main = (t.package_json or {}).get("main")
    if isinstance(main, str) and main.strip() and entry is None and t.package_json_path:
        return SPEC.finding(
            f"package.json main {main!r} points at a file the package does not contain",
            {**evidence, "main": main},
            confidence=Confidence.LOW,
        )
    return None


_METADATA = re.compile(
    r"^(?:readme|license|licence|changelog|history|authors|contributing|notice)(?:\.[a-z]+)?$"
    r"|^(?:package\.json|tea\.ya?ml|\.npmignore|\.gitignore|\.editorconfig)$",
    re.IGNORECASE,
)


def _is_metadata(path: str) -> bool:
    """True for files every package carries whatever it does (README, licence, manifest)."""
    return bool(_METADATA.match(path.rsplit("/", 1)[-1]))


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
