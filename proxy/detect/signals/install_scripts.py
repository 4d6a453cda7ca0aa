"""install-scripts: the package runs code when it is installed.

What it detects: `preinstall`, `install` or `postinstall` scripts in package.json (from the
tarball when read, else from the packument or its `hasInstallScript` flag). Install scripts are
how most npm malware runs; a script that fetches or evaluates remote code is worse.

Known false positives: native modules that build or download a prebuilt binary
(`node-gyp rebuild`, `prebuild-install`), and packages printing a funding message. This is a
risk signal: it never makes a verdict spam or malicious by itself.
"""

from __future__ import annotations

import re

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Family, Finding, Severity, SignalSpec

SPEC = SignalSpec(
    "install-scripts", "runs code at install", Severity.LOW, Confidence.HIGH, Family.RISK
)
_FETCHING = re.compile(
    r"\b(curl|wget|Invoke-WebRequest|iwr|bash\s+-c|node\s+-e|eval|base64)\b|https?://"
)


def check(s: Subject) -> Finding | None:
    scripts: dict[str, str] = {}
    if s.tarball is not None and s.tarball.package_json is not None:
        scripts = s.tarball.install_scripts
    elif s.version is not None and s.version.scripts is not None:
        scripts = {
            k: v
            for k, v in s.version.scripts.items()
            if k in ("preinstall", "install", "postinstall")
        }
    elif s.version is not None and s.version.has_install_script:
        return SPEC.finding("the registry marks the package as having install scripts", {})
    if not scripts:
        return None
    fetching = {k: v for k, v in scripts.items() if _FETCHING.search(v)}
    evidence = {"scripts": {k: v[:200] for k, v in scripts.items()}}
    if fetching:
        key = sorted(fetching)[0]
        return SPEC.finding(
            f"its {key} script fetches or evaluates code: {fetching[key][:80]!r}",
            evidence,
            severity=Severity.MEDIUM,
        )
    key = sorted(scripts)[0]
    return SPEC.finding(f"it runs a {key} script: {scripts[key][:80]!r}", evidence)
