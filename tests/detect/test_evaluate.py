"""The Detector and its scoring: labels from findings, determinism, index growth, the store."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxy.detect.evaluate import DETECTOR_VERSION, GRAPH, RELATIONAL, Detector, combine
from proxy.detect.facts import PackageFacts, Subject, facts_from_case
from proxy.detect.model import Confidence, Family, Finding, Label, Severity, SignalSpec
from proxy.detect.osv import OsvIndex
from proxy.detect.signals import Check
from proxy.detect.store import VerdictStore
from tests.detect.helpers import case

H, M, L, C = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.CRITICAL
HC, MC, LC = Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW
S, W, R = Family.SPAM, Family.MALWARE, Family.RISK
CLOCK = datetime(2024, 3, 1, tzinfo=UTC)


def f(sev: Severity, conf: Confidence, fam: Family = S, sid: str = "x") -> Finding:
    return Finding(sid, sev, conf, "test", {}, fam)


@pytest.mark.parametrize(
    ("findings", "label"),
    [
        ([], Label.CLEAN),
        ([f(L, HC, R)], Label.CLEAN),
        ([f(M, MC)], Label.SUSPICIOUS),  # weak evidence alone
        ([f(M, MC), f(M, LC)], Label.SUSPICIOUS),
        ([f(H, MC), f(L, HC, R)], Label.SUSPICIOUS),
        ([f(M, LC), f(L, LC)], Label.CLEAN),  # two weak hints (generated name, unused dep)
        ([f(M, LC), f(M, LC), f(L, MC)], Label.SUSPICIOUS),  # weak hints that add up to 25+
        ([f(H, HC)], Label.SPAM),  # strong evidence
        ([f(M, MC, sid="a"), f(M, MC, sid="b"), f(M, MC, sid="c")], Label.SPAM),  # corroborated
        ([f(H, MC, sid="a"), f(M, MC, sid="b")], Label.SPAM),
        ([f(H, MC), f(M, MC)], Label.SUSPICIOUS),  # one trait, however often, is one trait
        # tea.yaml is registration: spam needs a trait of no function or of farming beside it
        ([f(H, HC, sid="tea-yaml")], Label.SUSPICIOUS),
        ([f(H, HC, sid="tea-yaml"), f(H, HC, sid="tea-wallet-reuse")], Label.SUSPICIOUS),
        ([f(H, HC, sid="tea-yaml"), f(M, LC, sid="boilerplate-manifest")], Label.SPAM),
        ([f(H, HC, sid="tea-yaml"), f(M, MC, sid="generated-name")], Label.SPAM),
        ([f(H, HC, sid="tea-yaml"), f(L, MC, sid="trivial-code")], Label.SUSPICIOUS),  # mime-db
        # a repository uploaded as it is (a template's private root manifest): how farms publish
        ([f(H, HC, sid="tea-yaml"), f(M, LC, sid="foreign-manifest")], Label.SPAM),
        ([f(M, LC, sid="foreign-manifest")], Label.CLEAN),
        ([f(M, LC, sid="foreign-manifest"), f(M, LC, sid="missing-entry")], Label.SUSPICIOUS),
        ([f(M, LC, sid="tea-yaml"), f(M, MC, sid="template-code")], Label.SUSPICIOUS),  # old
        # the traits together make spam without the file
        ([f(H, MC, sid="template-code"), f(H, MC, sid="cloned-code")], Label.SPAM),
        ([f(H, MC, sid="missing-entry"), f(M, LC, sid="unused-dependencies")], Label.SPAM),
        ([f(M, MC, sid="template-code"), f(M, LC, sid="missing-entry")], Label.SUSPICIOUS),
        ([f(H, HC, sid="empty-package")], Label.SPAM),  # not even a package.json
        ([f(M, LC, sid="trivial-code")], Label.CLEAN),  # @swc/counter's empty index.js
        # weak traits of no function, three or more of them together and worth SPAM_SCORE
        (
            [
                f(M, LC, sid="boilerplate-manifest"),
                f(M, LC, sid="script-entry"),
                f(M, LC, sid="unused-dependencies"),
                f(M, MC, sid="trivial-code"),
            ],
            Label.SPAM,
        ),
        (
            [
                f(M, LC, sid="boilerplate-manifest"),
                f(M, LC, sid="script-entry"),
                f(M, MC, sid="trivial-code"),
            ],
            Label.SUSPICIOUS,  # 43.75 points: not enough
        ),
        ([f(M, HC, R), f(M, HC, R), f(M, HC, R)], Label.SUSPICIOUS),  # risk never makes spam
        ([f(C, HC, W)], Label.MALICIOUS),
        ([f(H, HC, W), f(H, HC)], Label.MALICIOUS),
        ([f(H, MC, W)], Label.SUSPICIOUS),
    ],
)
def test_combine(findings: list[Finding], label: Label) -> None:
    score, got = combine(findings)
    assert got is label
    assert 0 <= score <= 100
    assert combine(reversed(findings)) == (score, got)  # order-independent


def assess_case(detector: Detector, name: str) -> Label:
    package, version, tarball = facts_from_case(case(name))
    return detector.assess(package, version, tarball).label


def test_corpus_shapes_get_the_expected_labels() -> None:
    d = Detector(clock=lambda: CLOCK)
    assert assess_case(d, "uniset") is Label.SPAM
    assert assess_case(d, "stankpoll") is Label.SPAM  # no-wallet tea.yaml + no code
    assert assess_case(d, "@babel/code-frame") is Label.CLEAN
    assert assess_case(d, "client-only") is Label.CLEAN  # tiny code alone is weak (a marker)


def test_a_foreign_manifest_alone_is_no_verdict() -> None:
    """A real package whose tarball carries another name and "private" stays clean: the trait
    corroborates (a tea.yaml, no function), it never decides."""
    package, version, tarball = facts_from_case(case("@babel/code-frame"))
    assert tarball is not None
    assert tarball.package_json is not None
    foreign = {**tarball.package_json, "name": "monorepo-root", "private": True}
    tarball = dataclasses.replace(tarball, package_json=foreign)
    verdict = Detector(clock=lambda: CLOCK).assess(package, version, tarball)
    assert "foreign-manifest" in verdict.signal_ids
    assert verdict.label is Label.CLEAN


def test_clone_index_grows_and_links_names() -> None:
    d = Detector(clock=lambda: CLOCK)
    package, version, tarball = facts_from_case(case("xcho"))
    first = d.assess(package, version, tarball)
    assert "cloned-code" not in first.signal_ids
    clone = PackageFacts("xcho-copy", package.dist_tags, package.versions)
    second = d.assess(clone, version, tarball)
    cloned = next(x for x in second.findings if x.signal_id == "cloned-code")
    assert cloned.evidence["other_names"] == ["xcho"]


def test_wallet_reuse_and_flagged_dependency() -> None:
    d = Detector(clock=lambda: CLOCK)
    package, version, tarball = facts_from_case(case("uniset"))
    d.assess(package, version, tarball)
    other = d.assess(PackageFacts("uniset-2"), "", tarball)
    assert "tea-wallet-reuse" in other.signal_ids
    doc = {"name": "ring", "versions": {"1.0.0": {"dependencies": {"uniset": "^1"}}}}
    ring = d.assess(PackageFacts.from_packument(doc), "1.0.0")
    assert "dependency-ring" in ring.signal_ids
    assert not ring.tarball_scanned


def test_cycle_through_seen_packages() -> None:
    d = Detector(clock=lambda: CLOCK)
    a = {"name": "ring-a", "versions": {"1.0.0": {"dependencies": {"ring-b": "1"}}}}
    b = {"name": "ring-b", "versions": {"1.0.0": {"dependencies": {"ring-a": "1"}}}}
    assert "dependency-ring" not in d.assess(PackageFacts.from_packument(a), "1.0.0").signal_ids
    verdict = d.assess(PackageFacts.from_packument(b), "1.0.0")
    ring = next(x for x in verdict.findings if x.signal_id == "dependency-ring")
    assert ring.evidence["cycles"] == [["ring-b", "ring-a", "ring-b"]]


def test_deterministic_for_same_input_and_state() -> None:
    package, version, tarball = facts_from_case(case("kopiliong"))
    one = Detector(clock=lambda: CLOCK).assess(package, version, tarball)
    two = Detector(clock=lambda: CLOCK).assess(package, version, tarball)
    assert one == two
    assert one.detector_version == DETECTOR_VERSION


def test_osv_version_precision() -> None:
    osv = OsvIndex([{"id": "MAL-1", "affected": [
        {"package": {"ecosystem": "npm", "name": "react"}, "versions": ["35.0.0"]}]}])  # fmt: skip
    d = Detector(osv, clock=lambda: CLOCK)
    bad = d.assess(PackageFacts.name_only("react", "35.0.0"), "35.0.0")
    assert bad.label is Label.MALICIOUS
    assert bad.osv_ids == ("MAL-1",)
    assert d.assess(PackageFacts.name_only("react", "18.2.0"), "18.2.0").label is Label.CLEAN


def test_a_stored_verdict_follows_the_current_feed() -> None:
    # A tarball verdict stored before the feed listed the version, and after it was withdrawn.
    package, version, tarball = facts_from_case(case("@babel/code-frame"))
    before = Detector(clock=lambda: CLOCK).assess(package, version, tarball)
    assert before.label is Label.CLEAN
    affected = {"package": {"ecosystem": "npm", "name": "@babel/code-frame"}, "versions": [version]}
    record = {"id": "MAL-9", "affected": [affected]}
    listed = Detector(OsvIndex([record]), clock=lambda: CLOCK).current(before, package)
    assert listed.label is Label.MALICIOUS
    assert listed.osv_ids == ("MAL-9",)
    assert listed.tarball_scanned
    assert Detector(OsvIndex(), clock=lambda: CLOCK).current(listed, package) == before


def counting_signals() -> tuple[list[str], tuple[tuple[SignalSpec, Check], ...]]:
    from proxy.detect.signals import SIGNALS

    ran: list[str] = []

    def counted(spec: SignalSpec, check: Check) -> Check:
        def run(s: Subject) -> Finding | None:
            ran.append(spec.id)
            return check(s)

        return run

    return ran, tuple((spec, counted(spec, check)) for spec, check in SIGNALS)


def test_a_metadata_look_runs_each_signal_once() -> None:
    ran, signals = counting_signals()
    d = Detector(signals=signals, clock=lambda: CLOCK)
    package, version, _ = facts_from_case(case("@babel/code-frame"))
    verdict = d.assess(package, version, record=False)
    assert verdict.label is Label.CLEAN
    assert not verdict.tarball_scanned
    # Every signal but the relational ones, once: with no tarball and no campaign traits
    # nothing relates the version to other packages, so they have nothing to read; the graph
    # is read (the version has dependencies), so the ring signal runs too.
    assert package.version(version).dependencies  # type: ignore[union-attr]
    expected = [s.id for s, _ in signals if s.id not in RELATIONAL or s.id in GRAPH]
    assert sorted(ran) == sorted(expected)
    ran.clear()
    # Served later, it is brought up to date running no signal but the feed's and the ring's.
    assert d.current(verdict, package) == verdict
    assert ran == sorted(GRAPH)


def test_relational_signals_run_when_something_relates() -> None:
    ran, signals = counting_signals()
    d = Detector(signals=signals, clock=lambda: CLOCK)
    package, version, tarball = facts_from_case(case("uniset"))  # tea.yaml with a wallet
    d.assess(package, version, tarball)
    # all of them but the ring's: uniset has no dependencies, so the graph has nothing to say
    every = sorted(s.id for s, _ in signals if s.id not in GRAPH)
    assert sorted(ran) == every
    ran.clear()
    other = d.assess(PackageFacts("uniset-2"), "", tarball)
    assert "tea-wallet-reuse" in other.signal_ids
    assert sorted(ran) == every


def test_a_failing_signal_is_skipped_not_raised() -> None:
    def broken(_: object) -> None:
        raise RuntimeError("bug")

    from proxy.detect.signals import SIGNALS

    d = Detector(signals=((SIGNALS[0][0], broken), *SIGNALS[1:]), clock=lambda: CLOCK)
    package, version, tarball = facts_from_case(case("uniset"))
    assert d.assess(package, version, tarball).label is Label.SPAM


def test_indexes_persist_on_disk(tmp_path: Path) -> None:
    package, version, tarball = facts_from_case(case("uniset"))
    Detector.open(tmp_path).assess(package, version, tarball)
    again = Detector.open(tmp_path).assess(PackageFacts("uniset-3"), "", tarball)
    assert "tea-wallet-reuse" in again.signal_ids


def test_verdict_store_round_trip(tmp_path: Path) -> None:
    package, _version, tarball = facts_from_case(case("uniset"))
    verdict = Detector(clock=lambda: CLOCK).assess(package, "1.0.0", tarball)
    path = tmp_path / "verdicts.sqlite3"
    store = VerdictStore(path)
    store.put(verdict, "sha512-abc")
    store.close()
    reopened = VerdictStore(path)
    assert reopened.get(verdict.name, "1.0.0", "sha512-abc") == verdict
    assert reopened.get(verdict.name, "1.0.0", "sha512-other") is None
    assert reopened.get(verdict.name, "1.0.0", "sha512-abc", detector_version="0") is None
    # a metadata-only verdict never replaces one made with the tarball
    meta = Detector(clock=lambda: CLOCK).assess(package, "1.0.0")
    reopened.put(meta, "sha512-abc")
    assert reopened.get(verdict.name, "1.0.0", "sha512-abc") == verdict
    reopened.put(meta, "sha512-meta")
    assert reopened.get(verdict.name, "1.0.0", "sha512-meta") == meta
    assert reopened.get(verdict.name, "1.0.0", "sha512-meta", need_tarball=True) is None


def test_store_from_threads(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "v.sqlite3")
    d = Detector(clock=lambda: CLOCK)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            v = d.assess(PackageFacts.name_only(f"p{i}", "1.0.0"), "1.0.0")
            store.put(v, f"sha512-{i}")
            assert store.get(f"p{i}", "1.0.0", f"sha512-{i}") == v
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
