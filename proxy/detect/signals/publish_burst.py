"""publish-burst: versions published by automation: bursts minutes apart, random version numbers.

What it detects, from the packument's `time` map (unknown times: no finding):
- a burst: BURST_VERSIONS or more versions within BURST_WINDOW;
- random-looking versions: in publish order, most steps are not a normal bump (patch, minor or
  major by a small amount) but jumps back and forth (`4.2.7` → `1.2.34` → `9.2.60`).

Known false positives: CI pipelines that publish canary or nightly builds of one package in
quick succession (their versions are prereleases, which the random-version check ignores), and
packages that re-published many old lines at once after a registry migration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

from proxy.detect.facts import PackageFacts, Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec
from proxy.npm.semver import Version

SPEC = SignalSpec(
    "publish-burst", "automated publishing", Severity.MEDIUM, Confidence.MEDIUM, role=Role.FARM
)
BURST_VERSIONS = 5
BURST_WINDOW = timedelta(hours=1)
MIN_RANDOM_STEPS = 3  # steps between versions needed to call the numbering random
RANDOM_SHARE = 0.6  # fraction of abnormal steps
SMALL_BUMP = 3


def _normal_step(a: Version, b: Version) -> bool:
    if b <= a:
        return False
    if b.major == a.major and b.minor == a.minor:
        return b.patch - a.patch <= SMALL_BUMP
    if b.major == a.major:
        return b.minor - a.minor <= SMALL_BUMP and b.patch <= SMALL_BUMP
    return b.major - a.major <= SMALL_BUMP and b.minor <= SMALL_BUMP and b.patch <= SMALL_BUMP


@dataclass(frozen=True, slots=True)
class _Analysis:
    busiest_hour: int
    with_times: int
    odd_steps: int
    steps: int


def analyse(package: PackageFacts) -> _Analysis | None:
    """The package's publishing pattern (None without publish times); computed once per package."""
    times = package.publish_times
    if len(times) < 2:
        return None
    best = 0
    start = 0
    for end in range(len(times)):
        while times[end][0] - times[start][0] > BURST_WINDOW:
            start += 1
        best = max(best, end - start + 1)
    releases = [
        (t, v) for t, raw in times if (v := Version.try_parse(raw)) is not None and not v.prerelease
    ]
    steps = list(itertools.pairwise(releases))
    odd = sum(1 for (_, a), (_, b) in steps if not _normal_step(a, b))
    return _Analysis(best, len(times), odd, len(steps))


def check(s: Subject) -> Finding | None:
    found = s.package.memo("publish-burst", analyse)
    if found is None:
        return None
    best, odd, steps = found.busiest_hour, found.odd_steps, found.steps
    random_versions = steps >= MIN_RANDOM_STEPS and odd / steps >= RANDOM_SHARE
    evidence = {
        "versions_in_busiest_hour": best,
        "versions_with_times": found.with_times,
        "abnormal_version_steps": odd,
        "version_steps": steps,
    }
    if best >= BURST_VERSIONS and random_versions:
        return SPEC.finding(
            f"{best} versions were published within an hour, numbered at random",
            evidence,
            confidence=Confidence.HIGH,
        )
    # Either trait alone is common in legitimate packages (release trains, canary builds,
    # re-publishing old lines), so alone it is weak evidence that never flags by itself.
    if best >= BURST_VERSIONS:
        return SPEC.finding(
            f"{best} versions were published within an hour",
            evidence,
            severity=Severity.LOW,
        )
    if random_versions:
        return SPEC.finding(
            f"{odd} of {steps} version steps are jumps, not bumps (random-looking numbers)",
            evidence,
            severity=Severity.LOW,
        )
    return None
