"""young-package: the package was created very recently.

What it detects: the packument's `time.created` is less than YOUNG_DAYS before the detector's
clock. Farms and malware alike are typically days old when they are found; age alone proves
nothing, so this is low severity and serves to corroborate other findings.

Known false positives: every new legitimate package. Unknown creation times give no finding.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Family, Finding, Severity, SignalSpec

SPEC = SignalSpec("young-package", "very young package", Severity.LOW, Confidence.HIGH, Family.RISK)
YOUNG_DAYS = 7


def check(s: Subject) -> Finding | None:
    created, now = s.package.created, s.context.now
    if created is None or now is None:
        return None
    age = now - created
    if age.total_seconds() < 0 or age.days >= YOUNG_DAYS:
        return None
    hours = age.total_seconds() / 3600
    return SPEC.finding(
        f"the package was created {hours:.0f} hours ago",
        {"created": created.isoformat(), "age_hours": round(hours, 1)},
    )
