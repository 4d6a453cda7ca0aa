"""template-code: the package's code is an unmodified project scaffold, not a library.

What it detects: the code files are a known template's, as generated: a create-next-app,
Create React App, Vite or Vue CLI starter ("Get started by editing", "Learn React",
"count is", "Welcome to Your Vue.js App"), a MetaMask snap or Hardhat sample, an Express hello
world, plus the config files such scaffolds write (`next.config.mjs`, `postcss.config.js`,
`tailwind.config.ts`); and the package adds less than ORIGINAL_MIN_BYTES of code of its own.
An app scaffold whose pages were edited a little (MIN_CONFIGS scaffold configs, no entry
point, little own code) is the medium form.
Farms published the same starter under hundreds of names: it costs nothing and looks like a
project.

Known false positives: scaffolding tools (`create-next-app`, `create-vite`) ship templates,
but beside their own CLI code, which is original code far over the threshold; a starter kit
published on purpose as a template package (its README says so; still no library); an
application published to npm by mistake right after `create-next-app`. Alone it makes a
verdict `suspicious` (high severity, medium confidence); with a tea.yaml, a generated name or
clones it is spam.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "template-code", "unmodified scaffold", Severity.HIGH, Confidence.MEDIUM, role=Role.FUNCTION
)
ORIGINAL_MIN_BYTES = 2048  # own code beside the template that makes it a real package
MIN_CONFIGS = 2  # scaffold config files that make an app scaffold without a marker


def check(s: Subject) -> Finding | None:
    p = s.profile
    if p is None or p.original_bytes >= ORIGINAL_MIN_BYTES:
        return None
    if not p.template_families:
        # An app scaffold's config files (next.config.mjs, postcss.config.js, ...) with the app
        # edited a little, and no entry point: an application pushed to npm, not a library.
        if p.template_files < MIN_CONFIGS or p.entry is not None or not p.code_files:
            return None
        return SPEC.finding(
            f"it is an application scaffold ({p.template_files} scaffold config files) with "
            f"{p.original_bytes} bytes of its own code and no entry point",
            {"template_files": p.template_files, "original_bytes": p.original_bytes},
            severity=Severity.MEDIUM,
        )
    evidence = {
        "templates": list(p.template_families),
        "template_files": p.template_files,
        "code_files": p.code_files,
        "original_bytes": p.original_bytes,
    }
    return SPEC.finding(
        f"its code is a {', '.join(p.template_families)} scaffold ({p.template_files} of "
        f"{p.code_files} code files) with {p.original_bytes} bytes of its own code",
        evidence,
    )
