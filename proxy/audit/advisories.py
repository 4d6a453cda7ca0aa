"""Floodgate's findings in the shape of the registry's bulk advisory endpoint, so that `npm audit`
in a project that installs through Floodgate lists them (npm-protocol 3.1 and 3.7)."""

from __future__ import annotations

import hashlib
from typing import Any

from proxy.detect.model import Verdict
from proxy.policy.model import Action, Decision

ID_BASE = 900_000_000  # far above the registry's own advisory ids
TITLE_MAX = 200


def advisory_id(name: str, version: str, rule: str) -> int:
    digest = hashlib.sha256(f"{name}@{version}:{rule}".encode()).digest()
    return ID_BASE + int.from_bytes(digest[:4], "big") % 99_000_000


def advisory(
    name: str, version: str, verdict: Verdict | None, decision: Decision, url: str
) -> dict[str, Any] | None:
    """The advisory for one version, or None when the policy lets it through unremarked
    (allowed, or waived)."""
    if decision.action is Action.ALLOW:
        return None
    label = verdict.label.value if verdict is not None else "flagged"
    title = f"Floodgate: {label} package (rule {decision.rule}): {decision.reason}"
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1] + "…"
    return {
        "id": advisory_id(name, version, decision.rule),
        "url": url,
        "title": title,
        "severity": decision.severity.value,
        "vulnerable_versions": version,
        "cwe": [],
        "cvss": {"score": 0, "vectorString": None},
    }


def merge(upstream: Any, ours: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The upstream's answer (when it is a JSON object) with Floodgate's advisories added."""
    out: dict[str, Any] = dict(upstream) if isinstance(upstream, dict) else {}
    for name, items in ours.items():
        existing = out.get(name)
        out[name] = [*(existing if isinstance(existing, list) else []), *items]
    return out
