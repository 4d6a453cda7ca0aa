"""tea-wallet-reuse: the tea.yaml wallet was already registered under other package names.

What it detects: a wallet from this package's tea.yaml that the wallet index has seen in
tea.yaml files of other package names. Farming accounts register one wallet in every package
they publish, so reuse ties a package to a farm. Three or more other names are strong evidence.

Known false positives: a genuine author who registered several of their own real packages with
the same wallet (a monorepo's packages, say); in an established package the reuse is weak.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "tea-wallet-reuse", "tea wallet reused across names", Severity.HIGH, Confidence.HIGH,
    role=Role.REGISTRATION,
)  # fmt: skip
STRONG_NAMES = 3  # other names sharing a wallet that make the evidence strong


def check(s: Subject) -> Finding | None:
    if s.tarball is None or not s.context.wallet_names:
        return None
    wallet, names = max(s.context.wallet_names.items(), key=lambda kv: (len(kv[1]), kv[0]))
    if not names:
        return None
    evidence = {"wallet": wallet, "other_names": list(names), "count": len(names)}
    shown = ", ".join(names[:3]) + ("..." if len(names) > 3 else "")
    reason = f"wallet {wallet} is also registered by {len(names)} other package(s): {shown}"
    if s.package.established:
        # A maintainer registers all their projects with one wallet; farms reuse it on new ones.
        return SPEC.finding(reason + " (an established package)", evidence, severity=Severity.LOW)
    if len(names) >= STRONG_NAMES:
        return SPEC.finding(reason, evidence)
    return SPEC.finding(reason, evidence, severity=Severity.MEDIUM)
