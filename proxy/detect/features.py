"""Features for the learned score: numbers describing what a package's code and manifest do.

Pure functions of a `Subject` with its tarball (the model scores scanned packages only). The
tea.yaml is deliberately absent: no feature says whether the package registered with tea.xyz
(the model must recognise farms by their traits, not by the marker; training also drops and
adds tea files so that counts of files cannot stand in for it). Features that mostly describe
where a package came from rather than what it does (lock files, CI folders, `dist/` versus
`src/`, a package.json in a subfolder) are left out for the same reason: the evaluation corpus
mixes repository snapshots and installed packages.

Every feature is a float; `FEATURES` fixes their order and names (the model file lists them
too, and loading refuses a file whose names differ).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from proxy.detect.code import CodeProfile
from proxy.detect.facts import Subject

_DIGITS = re.compile(r"\d")


def _log(n: float) -> float:
    return math.log1p(max(n, 0.0))


def _pj(s: Subject) -> Mapping[str, Any]:
    t = s.tarball
    return (t.package_json if t is not None else None) or {}


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _generated(s: Subject, p: CodeProfile) -> float:
    from proxy.detect.signals.generated_name import shape  # (the signals import this module)

    return float(shape(s.name.lower().rsplit("/", 1)[-1]) is not None)


def _unused_dependencies(s: Subject, p: CodeProfile) -> float:

    deps = set(s.dependencies)
    t = s.tarball
    if not deps or t is None:
        return 0.0
    if not p.script_files:
        return 1.0
    if not t.sources_complete:
        return 0.0
    return 0.0 if s.imports_any_dependency else 1.0


def _default_test(s: Subject, p: CodeProfile) -> float:
    scripts = _pj(s).get("scripts")
    test = scripts.get("test") if isinstance(scripts, dict) else None
    return float(isinstance(test, str) and "no test specified" in test)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


Feature = Callable[[Subject, CodeProfile], float]

FEATURES: tuple[tuple[str, Feature], ...] = (
    ("log_files", lambda s, p: _log(p.files)),
    ("metadata_share", lambda s, p: _share(p.metadata_files, p.files)),
    ("log_code_bytes", lambda s, p: _log(p.code_bytes)),
    ("log_original_bytes", lambda s, p: _log(p.original_bytes)),
    ("original_share", lambda s, p: _share(p.original_bytes, p.code_bytes)),
    ("template_share", lambda s, p: p.template_share),
    ("filler_share", lambda s, p: _share(p.filler_files + p.prose_files, p.files)),
    ("log_script_files", lambda s, p: _log(p.script_files)),
    ("entry_resolves", lambda s, p: float(p.entry is not None)),
    ("entry_missing", lambda s, p: float(p.entry is None and bool(p.entry_declared))),
    ("log_readme_chars", lambda s, p: _log(p.readme_chars)),
    ("has_description", lambda s, p: float(_text(_pj(s).get("description")))),
    ("has_repository", lambda s, p: float(bool(_pj(s).get("repository")))),
    ("has_license_field", lambda s, p: float(_text(_pj(s).get("license")))),
    ("default_test_script", _default_test),
    ("log_dependencies", lambda s, p: _log(len(s.dependencies))),
    ("unused_dependencies", _unused_dependencies),
    ("generated_name", _generated),
    ("name_digits", lambda s, p: min(len(_DIGITS.findall(s.name)), 6) / 6),
    ("name_underscores", lambda s, p: float("_" in s.name)),
)
NAMES: tuple[str, ...] = tuple(n for n, _ in FEATURES)


def extract(s: Subject) -> dict[str, float] | None:
    """The feature vector of a scanned package (None without a tarball)."""
    p = s.profile
    if p is None:
        return None
    return {name: float(f(s, p)) for name, f in FEATURES}
