"""tea-yaml: the package ships a tea.xyz registration file (`tea.yaml`).

What it detects: a `tea.yaml`/`tea.yml` in the tarball. The file exists only to claim tea.xyz
token rewards for the package: it names the wallets (`codeOwners`, or the older `constitution`
→ `ethereum-addresses`) that the rewards go to. The 2024 token-farming flood put it into
hundreds of thousands of throwaway packages, and public scanners treated its presence as the
campaign's marker. A file at the package root that names a wallet is strong evidence; one
without a wallet is less certain, and one only deep inside the tree is weak.

Known false positives: genuine projects that registered with tea.xyz (brace-expansion 4.0.1 ships
one); they are established (ten versions or more), farms publish new packages, so
in an established package the file is weak evidence; tools that process tea.yaml files and ship
one as a test fixture (deep paths, weaker).
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "tea-yaml", "tea.xyz registration file", Severity.HIGH, Confidence.HIGH,
    role=Role.REGISTRATION,
)  # fmt: skip
_FIXTURE_DIRS = ("test", "tests", "__tests__", "fixtures", "fixture", "examples", "example")


def check(s: Subject) -> Finding | None:
    if s.tarball is None or not s.tarball.tea_files:
        return None
    tea = s.tarball.tea_files[0]  # shallowest first
    rel = s.tarball.relative(tea.path)
    parts = rel.split("/")
    evidence = {
        "path": tea.path,
        "wallets": list(tea.wallets[:5]),
        "quorum": tea.quorum,
        "layout": tea.layout,
        "files": [t.path for t in s.tarball.tea_files],
    }
    if any(p.lower() in _FIXTURE_DIRS for p in parts[:-1]) or len(parts) > 3:
        return SPEC.finding(
            f"a tea.yaml sits deep in the tree at {rel}, as test fixtures do",
            evidence,
            severity=Severity.MEDIUM,
            confidence=Confidence.LOW,
        )
    if not tea.has_wallet:
        return SPEC.finding(
            f"the package ships a tea.xyz registration file ({rel}) without a wallet address",
            evidence,
            confidence=Confidence.MEDIUM,
        )
    if s.package.established:
        return SPEC.finding(
            f"the package ships a tea.xyz registration file ({rel}) naming wallet "
            f"{tea.wallets[0]}, but it is an established package "
            f"({len(s.package.versions)} versions), as maintainers who register their own "
            "projects have",
            evidence,
            severity=Severity.MEDIUM,
            confidence=Confidence.LOW,
        )
    return SPEC.finding(
        f"the package ships a tea.xyz registration file ({rel}) naming wallet {tea.wallets[0]}",
        evidence,
    )
