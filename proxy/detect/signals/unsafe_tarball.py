"""unsafe-tarball: the tarball is built to attack an extractor, or could not be read in full.

What it detects, from the safe reader's problems: member paths that escape the package folder
(absolute, `..`) and device or FIFO members, which `npm pack` never produces (malicious
evidence); symbolic and hard links (recorded, never followed); and archives the reader stopped
on: not gzip, corrupt, truncated, over the entry, size, compression-ratio or time caps. The
latter mean the detector saw only part of the package, so its other findings may be
incomplete.

Known false positives: very large legitimate packages (icon sets with tens of thousands of
files, native binaries over the per-file cap) hitting a size or entry cap, and big packages
read on a busy machine hitting the time cap, which are therefore low severity, and old
tarballs packed with links by hand-rolled tools.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Family, Finding, Severity, SignalSpec
from proxy.npm.tarball import ProblemKind

SPEC = SignalSpec(
    "unsafe-tarball", "hostile or unreadable tarball", Severity.HIGH, Confidence.HIGH,
    Family.MALWARE,
)  # fmt: skip
MAX_SHOWN = 10


def check(s: Subject) -> Finding | None:
    t = s.tarball
    if t is None or not t.problems:
        return None
    problems = [p.to_json() for p in t.problems[:MAX_SHOWN]]
    kinds = sorted({p.kind.value for p in t.problems})
    evidence = {"problems": problems, "kinds": kinds, "count": len(t.problems)}
    hostile = [p for p in t.problems if p.kind.hostile]
    if hostile:
        p = hostile[0]
        return SPEC.finding(
            f"the tarball has a {p.kind.value.replace('_', ' ')} member {p.path!r}", evidence
        )
    first = t.problems[0]
    if first.kind is ProblemKind.LINK:
        return Finding(
            SPEC.id, Severity.LOW, Confidence.HIGH,
            f"the tarball contains links ({first.detail}); they were not followed",
            evidence, Family.RISK,
        )  # fmt: skip
    # Size caps are hit by big legitimate packages (native binaries over the per-file cap in
    # @next/swc-*), and the time cap by any big package on a busy machine (`next`'s 100 MB of
    # files): the detector saw less, which is worth saying, not suspecting. A broken or
    # bomb-like archive (ratio, corrupt, truncated, not gzip, too many entries) is telling.
    size_only = (
        ProblemKind.FILE_TOO_LARGE, ProblemKind.TOO_LARGE, ProblemKind.TIMEOUT, ProblemKind.LINK,
    )  # fmt: skip
    worst = next((p for p in t.problems if p.kind not in size_only), first)
    return Finding(
        SPEC.id, Severity.LOW if worst.kind in size_only else Severity.MEDIUM, Confidence.HIGH,
        f"the tarball could not be read in full: {worst.kind.value.replace('_', ' ')} "
        f"({worst.detail})",
        evidence, Family.RISK,
    )  # fmt: skip
