"""Dependency rings do not depend on fetch order: after every member was recorded, each member's
verdict as served (`Detector.current`) is the same whichever member the proxy saw first."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts, facts_from_case
from proxy.detect.model import Label, Severity, Verdict
from proxy.npm.tarball import TarballFacts
from tests.detect.helpers import case, fake_version
from tests.fakes.packages import REAL_JS, FakeVersion, clean, farm

CLOCK = datetime(2024, 3, 1, tzinfo=UTC)
Looked = tuple[PackageFacts, str, TarballFacts | None]
Served = dict[str, tuple[str, int, tuple[tuple[str, str, str, str], ...]]]


def metadata(name: str, deps: dict[str, str]) -> Looked:
    """A metadata-only look (the proxy's first): a packument with one version, no tarball."""
    doc = {
        "name": name,
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": name, "version": "1.0.0", "dependencies": deps}},
    }
    return PackageFacts.from_packument(doc), "1.0.0", None


def served(packages: Mapping[str, Callable[[], Looked]], order: tuple[str, ...]) -> Served:
    """Assess (and record) the packages in `order`, then serve every verdict."""
    d = Detector(clock=lambda: CLOCK)
    made: list[tuple[PackageFacts, Verdict]] = []
    for name in order:
        package, version, tarball = packages[name]()
        made.append((package, d.assess(package, version, tarball)))
    out: Served = {}
    for package, verdict in made:
        now = d.current(verdict, package)
        findings = tuple(
            (f.signal_id, f.severity.value, f.confidence.value, f.reason) for f in now.findings
        )
        out[package.name] = (now.label.value, now.score, findings)
    return out


def in_every_order(packages: Mapping[str, Callable[[], Looked]]) -> Served:
    """The served verdicts, asserted equal for every order the packages can come in."""
    results = {order: served(packages, order) for order in itertools.permutations(packages)}
    first = next(iter(results.values()))
    for order, result in results.items():
        assert result == first, order
    return first


def ring_finding(result: Served, name: str) -> tuple[str, str, str, str]:
    return next(f for f in result[name][2] if f[0] == "dependency-ring")


RING = {"fg-ring-a": "fg-ring-b", "fg-ring-b": "fg-ring-c", "fg-ring-c": "fg-ring-a"}


def ring_farm(name: str) -> Looked:
    return fake_version(name, farm("1.0.0", dependencies={RING[name]: "^1"}))


def ring_metadata(name: str) -> Looked:
    return metadata(name, {RING[name]: "^1"})


def test_a_cycle_of_farm_packages_is_order_independent() -> None:
    """A -> B -> C -> A, each a farm's (tea.yaml, hello world, the same wallet): every member
    sees the ring, not only the one assessed last."""
    packages = {name: partial(ring_farm, name) for name in RING}
    result = in_every_order(packages)
    for name, dep in RING.items():
        label, _, _ = result[name]
        assert label == Label.SPAM.value
        _, severity, _, reason = ring_finding(result, name)
        assert reason.startswith("it depends on 1 package(s) already flagged as spam: " + dep)
        assert severity == Severity.LOW.value  # one flagged dependency is no ring on its own


def test_a_cycle_seen_by_metadata_alone_is_order_independent() -> None:
    packages = {name: partial(ring_metadata, name) for name in RING}
    result = in_every_order(packages)
    for name in RING:
        _, severity, _, reason = ring_finding(result, name)
        assert reason.startswith(f"its dependencies lead back to it: {name} -> ")
        assert severity == Severity.LOW.value


def test_a_package_depending_on_two_spam_packages_is_order_independent() -> None:
    """Whether the dependent comes before or after its spam dependencies were labelled, it ends
    with the strong ring finding."""
    packages: dict[str, Callable[[], Looked]] = {
        "fg-farm-x": lambda: fake_version("fg-farm-x", farm("1.0.0")),
        "fg-farm-y": lambda: fake_version("fg-farm-y", farm("1.0.0")),
        "fg-user": lambda: metadata("fg-user", {"fg-farm-x": "^1", "fg-farm-y": "^1"}),
    }
    result = in_every_order(packages)
    assert result["fg-farm-x"][0] == Label.SPAM.value
    _, severity, _, reason = ring_finding(result, "fg-user")
    assert severity == Severity.HIGH.value
    assert reason == "it depends on 2 package(s) already flagged as spam: fg-farm-x, fg-farm-y"


def monorepo(name: str, deps: dict[str, str]) -> Looked:
    fv = FakeVersion(
        "1.0.0",
        dependencies=deps,
        files={"index.js": REAL_JS + f"require({next(iter(deps))!r});\n".encode()},
        extra={"repository": "git+https://github.com/acme/mono.git"},
    )
    return fake_version(name, fv)


def test_a_monorepo_cycle_stays_low_in_every_order() -> None:
    """Packages of one project that depend on each other (jest's, babel's) have cycles too: the
    ring finding stays low severity and the verdicts clean, whatever the order."""
    packages = {
        "fg-mono-core": lambda: monorepo("fg-mono-core", {"fg-mono-utils": "^1"}),
        "fg-mono-utils": lambda: monorepo("fg-mono-utils", {"fg-mono-cli": "^1"}),
        "fg-mono-cli": lambda: monorepo("fg-mono-cli", {"fg-mono-core": "^1"}),
    }
    result = in_every_order(packages)
    for name in packages:
        label, _, _ = result[name]
        assert label == Label.CLEAN.value, result[name]
        _, severity, _, reason = ring_finding(result, name)
        assert severity == Severity.LOW.value
        assert reason.startswith("its dependencies lead back to it")


def test_the_epoch_moves_when_a_dependency_is_labelled_or_a_cycle_closes() -> None:
    """Memoised plans are redone when a recorded package can change a dependent's ring finding,
    and not on ordinary records."""
    d = Detector(clock=lambda: CLOCK)
    steady = d.epoch
    d.assess(*fake_version("fg-plain", clean("1.0.0", dependencies={"left-pad": "^1"})))
    d.assess(*metadata("fg-user", {"fg-farm-x": "^1", "fg-farm-y": "^1"}))
    assert d.epoch == steady  # ordinary records
    d.assess(*fake_version("fg-farm-x", farm("1.0.0")))
    assert d.epoch > steady  # fg-user depends on it, and it is spam
    steady = d.epoch
    d.assess(*fake_version("fg-lonely-farm", clean("1.0.0")))
    d.assess(*metadata("fg-ring-a", {"fg-ring-b": "^1"}))
    assert d.epoch == steady
    d.assess(*metadata("fg-ring-b", {"fg-ring-a": "^1"}))
    assert d.epoch > steady  # closes the cycle fg-ring-a saw nothing of
    steady = d.epoch
    d.assess(*metadata("fg-ring-b", {"fg-ring-a": "^1"}))
    assert d.epoch == steady  # the same edges again: nothing new for anyone


def test_a_served_verdict_keeps_its_ring_when_the_dependencies_are_unknown() -> None:
    """Served without the packument (`current(verdict)` alone, as a lockfile audit may), the
    ring findings stored with the verdict are kept rather than dropped."""
    d = Detector(clock=lambda: CLOCK)
    for name in ("fg-farm-x", "fg-farm-y"):
        d.assess(*fake_version(name, farm("1.0.0")))
    verdict = d.assess(*metadata("fg-user", {"fg-farm-x": "^1", "fg-farm-y": "^1"}))
    assert "dependency-ring" in verdict.signal_ids
    assert d.current(verdict) == verdict


def real_clone(name: str) -> Looked:
    """picomatch's real code under a generated name: its own findings make it suspicious at
    most (a generated name); in a campaign of three or more names sharing its files it is
    spam, so the members assessed first are not spam yet when assessed."""
    package, version, tarball = facts_from_case(case("picomatch"))
    return dataclasses.replace(package, name=name), version, tarball


CLONES = ("brisk_otter_k9x", "damp_gayal_z3n", "calm_heron_q2w")


def test_a_dependent_of_clone_only_spam_is_order_independent() -> None:
    """The first copies of a template are in no campaign yet when assessed: if the graph kept
    the labels packages got from their relations when assessed, a dependent's ring would depend
    on which copies came first (it fails so with that rule)."""
    packages: dict[str, Callable[[], Looked]] = {name: partial(real_clone, name) for name in CLONES}
    packages["fg-user"] = lambda: metadata("fg-user", {CLONES[0]: "^1", CLONES[1]: "^1"})
    result = in_every_order(packages)
    for name in CLONES:
        assert result[name][0] == Label.SPAM.value, result[name]


def test_the_plan_salt_moves_when_a_dependency_is_labelled_spam(tmp_path: Path) -> None:
    """The gate's memoised plans (keyed by its salt) are made again once a package that others
    depend on is labelled spam, and not for an ordinary package."""
    from proxy.decisions import DecisionLog
    from proxy.detect.store import VerdictStore
    from proxy.gate import PolicyGate
    from proxy.inspect import Inspector
    from proxy.policy.holder import PolicyHolder, shipped_policy

    detector = Detector(clock=lambda: CLOCK)
    log = DecisionLog(tmp_path / "decisions.sqlite3")
    gate = PolicyGate(
        PolicyHolder(shipped_policy("default")), Inspector(detector, VerdictStore(), None), log
    )
    try:
        before = gate.salt
        detector.assess(*metadata("fg-user", {"fg-farm-x": "^1", "fg-farm-y": "^1"}))
        detector.assess(*fake_version("fg-plain", clean("1.0.0")))
        assert gate.salt == before
        detector.assess(*fake_version("fg-farm-x", farm("1.0.0")))
        assert gate.salt != before
    finally:
        log.close()
