"""empty-package: the package holds nothing: no code, no data, no documentation.

What it detects, from the tarball: every file is metadata (package.json, README, licence,
tea.yaml, dotfiles) and the README is absent or a stub (a title, a line of a few words: less
than STUB_README_CHARS characters of prose). Such a package can do nothing and tells nobody
anything; its name is all it has. Token farms published them by the hundred thousand (a
`# name` README beside a tea.yaml), and name squatters do the same. A tarball without even a
package.json (npm cannot install it) and nothing else is the strongest form.

Known false positives: registry placeholders (`0.0.1-security` holding packages) and
deprecated type stubs (`@types/x` whose library now ships its own types): both carry a README
that explains them, so they are not stubs here; deliberately empty packages reserved by a
project for later use, which are stubs, so alone a package with a package.json is medium
confidence and the verdict needs another trait to be spam.
"""

from __future__ import annotations

from proxy.detect.code import STUB_README_CHARS
from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "empty-package", "empty package", Severity.HIGH, Confidence.MEDIUM, role=Role.FUNCTION
)


def check(s: Subject) -> Finding | None:
    t = s.tarball
    if t is None or not t.complete:
        return None
    p = s.profile
    if p is None or not p.metadata_only or p.readme_chars >= STUB_README_CHARS:
        return None
    evidence = {
        "files": [t.relative(e.path) for e in t.files][:20],
        "readme_chars": p.readme_chars,
        "package_json": t.package_json is not None,
    }
    what = f"{p.files} file(s)" if p.files else "no files"
    readme = "no README" if t.readme_path is None else f"a {p.readme_chars}-character README"
    if t.package_json is None:
        return SPEC.finding(
            f"the package has {what}: no package.json, no code, no data, {readme}",
            evidence,
            confidence=Confidence.HIGH,
        )
    return SPEC.finding(
        f"the package has {what}: only metadata, no code, no data, {readme}", evidence
    )
