"""learned-score: a small model trained on farm and real packages finds this one farm-like.

What it detects: a logistic model over the package's own features (`proxy.detect.features`:
how much code and how much of it original, template or filler, whether the entry point
resolves, how much README prose, manifest fields, dependencies used or not, name shape) scores
the scanned package; the output is a calibrated probability, and the evidence lists the
features that drove it. The model never sees a tea.yaml: it is trained with tea files dropped
from farm packages and added to real ones, so it scores traits, not the marker. It is trained
offline (`bench/train_model.py`) and shipped as `proxy/detect/learned_model.json`. A
probability of HIGH_P or more is high severity (medium confidence), of MEDIUM_P or more a weak
corroborating finding.

Known false positives: it learned from a few hundred packages, so small real packages that
look like the farms it saw (a first package with a few hundred bytes of code, no README, an
unedited manifest) score high; alone it makes a verdict `suspicious` at most, and with a
medium probability it only corroborates other findings.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.features import extract
from proxy.detect.learned import shipped
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "learned-score", "learned farm score", Severity.HIGH, Confidence.MEDIUM, role=Role.FARM
)
HIGH_P = 0.9
MEDIUM_P = 0.6
SHOWN = 4  # features listed as evidence


def check(s: Subject) -> Finding | None:
    model = shipped()
    if model is None or s.tarball is None or not s.tarball.complete:
        return None
    x = extract(s)
    if x is None:
        return None
    scored = model.score(x)
    p = scored.probability
    if p < MEDIUM_P:
        return None
    drivers = [(n, round(v, 3), round(c, 2)) for n, v, c in scored.contributions if c > 0][:SHOWN]
    evidence = {
        "probability": round(p, 3),
        "drivers": [{"feature": n, "value": v, "weight": c} for n, v, c in drivers],
        "model": model.meta.get("trained", ""),
    }
    reason = (
        f"the learned model gives {p:.0%} that it is a farm package ("
        + ", ".join(n for n, _, _ in drivers)
        + ")"
    )
    if p >= HIGH_P:
        return SPEC.finding(reason, evidence)
    return SPEC.finding(reason, evidence, severity=Severity.MEDIUM, confidence=Confidence.LOW)
