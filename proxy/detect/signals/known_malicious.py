"""known-malicious: an OSV malicious-packages record names this exact version.

What it detects: the OSV index (OpenSSF malicious-packages, `MAL-` ids, or a compatible feed)
has a record whose `versions` or `ranges` cover this name@version; withdrawn records are not in
the index. A record for `react@35.0.0` does not flag `react@18`. A record the feed classes as
spam yields spam evidence; any other makes the verdict malicious. With an unknown version, only
records that cover every version match.

Known false positives: feed mistakes (records are withdrawn when they are found) and name
reuse: a name freed after a malicious version was removed and later taken by someone else is
still matched by an open-ended range.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Family, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "known-malicious", "in the malicious-packages feed", Severity.CRITICAL, Confidence.HIGH,
    Family.MALWARE, Role.NAME,
)  # fmt: skip
SPAM_CATEGORIES = frozenset({"spam", "pua"})


def check(s: Subject) -> Finding | None:
    hits = s.context.osv
    if not hits:
        return None
    ids = [h.id for h in hits]
    aliases = sorted({a for h in hits for a in h.aliases})
    evidence = {
        "ids": ids,
        "aliases": aliases,
        "summaries": [h.summary for h in hits][:3],
        "categories": sorted({h.category for h in hits if h.category}),
    }
    version = s.version.version if s.version is not None else ""
    what = f"{s.name}@{version}" if version else s.name
    shown = ", ".join(ids[:3] + aliases[:2])
    if all(h.category in SPAM_CATEGORIES for h in hits):
        return Finding(
            SPEC.id,
            Severity.HIGH,
            Confidence.HIGH,
            f"the malicious-packages feed lists {what} as spam ({shown})",
            evidence,
            Family.SPAM,
        )
    return SPEC.finding(
        f"the malicious-packages feed lists {what} as malicious ({shown})", evidence
    )
