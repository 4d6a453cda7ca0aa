"""What the detector says: findings with evidence, and a verdict that combines them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from proxy.records import record


class Label(StrEnum):
    """The detector's conclusion about one package version, from best to worst."""

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    SPAM = "spam"
    MALICIOUS = "malicious"

    @property
    def flagged(self) -> bool:
        """Spam and malicious are "flagged": what the evaluation counts as a detection."""
        return self in (Label.SPAM, Label.MALICIOUS)


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Confidence(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Family(StrEnum):
    """What a finding is evidence of: spam (token farming, SEO), malware, or a plain risk.

    Only spam evidence can make a verdict `spam` and only malware evidence `malicious`; risk
    findings (install scripts, a tarball not fully read) raise the score but never the label
    past `suspicious`.
    """

    SPAM = "spam"
    MALWARE = "malware"
    RISK = "risk"


class Role(StrEnum):
    """What part a spam-family signal plays when findings are combined (see `combine`).

    - registration: tea.xyz registration (tea.yaml, a reused wallet): evidence that rewards are
      claimed, not that the package is a farm's;
    - function: a trait of no real function (empty, template, filler, trivial or cloned code, an
      entry point that resolves to nothing);
    - farm: a trait of how farms publish (generated names, rings, bursts, campaigns, the model);
    - name: the name alone is the spam (SEO names, feed records);
    - other: risk and malware signals, which the spam rules do not count.
    """

    REGISTRATION = "registration"
    FUNCTION = "function"
    FARM = "farm"
    NAME = "name"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A signal's identity: stable id (used in policies), title, severity and confidence."""

    id: str
    title: str
    severity: Severity
    confidence: Confidence
    family: Family = Family.SPAM
    role: Role = Role.OTHER

    def finding(
        self,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        *,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
    ) -> Finding:
        """A finding of this signal; severity and confidence default to the spec's."""
        return Finding(
            self.id,
            severity or self.severity,
            confidence or self.confidence,
            reason,
            dict(evidence or {}),
            self.family,
        )


@record
class Finding:
    """One signal that fired: a one-sentence reason and the evidence behind it (JSON-able)."""

    signal_id: str
    severity: Severity
    confidence: Confidence
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    family: Family = Family.SPAM

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal_id,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "family": self.family.value,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            str(data["signal"]),
            Severity(data["severity"]),
            Confidence(data["confidence"]),
            str(data["reason"]),
            dict(data.get("evidence") or {}),
            Family(data.get("family", Family.SPAM.value)),
        )


@record
class Verdict:
    """The detector's verdict on `name@version`: score 0-100, label, and the findings behind it."""

    name: str
    version: str
    score: int
    label: Label
    findings: tuple[Finding, ...]
    detector_version: str
    osv_ids: tuple[str, ...] = ()
    tarball_scanned: bool = False

    @property
    def signal_ids(self) -> frozenset[str]:
        return frozenset(f.signal_id for f in self.findings)

    def for_version(self, version: str) -> Verdict:
        """This verdict, on another version of the package (a shared assessment; the
        constructor, at a third of `dataclasses.replace`'s cost, for thousands of versions)."""
        return Verdict(
            self.name,
            version,
            self.score,
            self.label,
            self.findings,
            self.detector_version,
            self.osv_ids,
            self.tarball_scanned,
        )

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.reason for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "score": self.score,
            "label": self.label.value,
            "findings": [f.to_json() for f in self.findings],
            "detector_version": self.detector_version,
            "osv_ids": list(self.osv_ids),
            "tarball_scanned": self.tarball_scanned,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            str(data["name"]),
            str(data["version"]),
            int(data["score"]),
            Label(data["label"]),
            tuple(Finding.from_json(f) for f in data.get("findings") or ()),
            str(data["detector_version"]),
            tuple(str(i) for i in data.get("osv_ids") or ()),
            bool(data.get("tarball_scanned", False)),
        )
