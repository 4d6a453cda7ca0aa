"""Campaigns: name templates, siblings, clusters, order independence, the epoch."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.detect.campaigns import name_keys, normalize_repo, siblings, stem
from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts, facts_from_case
from proxy.detect.model import Label, Verdict
from proxy.npm.tarball import TarballFacts
from tests.detect.helpers import case, fake_version

CLOCK = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("damp_gayal_z3n", ["name:words:damp_*", "name:words:*_z3n"]),
        ("damp_spoonbill_coral-60", ["name:words:damp_*"]),  # one family, two shapes
        ("pepe-0x5f3a9c", ["name:brand-0x:pepe"]),
        ("balladoriel-8396", ["name:word-dddd"]),
        ("iso-3166", ["name:word-dddd"]),  # a template; membership needs a trait of its own
        ("copyright-2024", []),  # years are not a template
        ("lodash", []),
        ("@babel/code-frame", []),
        ("snake_case_words", []),  # no tag
    ],
)
def test_name_keys(name: str, keys: list[str]) -> None:
    assert name_keys(name) == keys


@pytest.mark.parametrize(
    ("a", "b", "repo_a", "repo_b", "same_project"),
    [
        ("@typescript/typescript-linux-x64", "@typescript/typescript-darwin-arm64", "", "", True),
        ("@swc/core-linux-x64-gnu", "@swc/core-win32-arm64-msvc", "", "", True),
        ("@esbuild/linux-x64", "@esbuild/darwin-arm64", "", "", True),
        ("esbuild-linux-64", "esbuild-windows-32", "", "", True),
        ("@img/sharp-linux-x64", "@img/sharp-libvips-linux-x64", "", "", False),
        ("jest-diff", "jest-util", "github.com/jestjs/jest", "github.com/jestjs/jest", True),
        ("xcho", "kopiliong", "", "", False),
        ("lodash", "lodash-es", "", "", False),
        ("@swc/core", "@swc/counter", "", "", False),
    ],
)
def test_siblings(a: str, b: str, repo_a: str, repo_b: str, same_project: bool) -> None:
    assert siblings(a, b, repo_a, repo_b) is same_project
    assert siblings(b, a, repo_b, repo_a) is same_project


def test_stem_and_repo_normalisation() -> None:
    assert stem("@swc/core-linux-x64-gnu") == "@swc/core"
    assert stem("@esbuild/linux-x64") == "@esbuild/"
    assert normalize_repo("git+https://github.com/jestjs/jest.git") == "github.com/jestjs/jest"
    assert normalize_repo("git@github.com:jestjs/jest.git") == "github.com/jestjs/jest"
    assert normalize_repo("github:jestjs/jest") == "github.com/jestjs/jest"
    assert normalize_repo(None) == ""


def member(name: str) -> tuple[PackageFacts, str, TarballFacts | None]:
    """The xcho create-next-app scaffold, under another name (a farm's template)."""
    package, version, tarball = facts_from_case(case("xcho"))
    return dataclasses.replace(package, name=name), version, tarball


def final_verdicts(order: tuple[str, ...]) -> dict[str, tuple[str, int, tuple[str, ...]]]:
    d = Detector(clock=lambda: CLOCK)
    made: list[tuple[PackageFacts, Verdict]] = []
    for name in order:
        package, version, tarball = member(name)
        made.append((package, d.assess(package, version, tarball)))
    out = {}
    for package, verdict in made:
        now = d.current(verdict, package)
        out[package.name] = (now.label.value, now.score, tuple(sorted(now.signal_ids)))
    return out


def test_a_clusters_verdicts_do_not_depend_on_fetch_order() -> None:
    names = ("xcho", "brisk_otter_k9x", "damp_gayal_z3n", "oreo-farm")
    results = {order: final_verdicts(order) for order in itertools.permutations(names)}
    first = next(iter(results.values()))
    assert all(r == first for r in results.values())
    for label, _, signals in first.values():
        assert label == Label.SPAM.value
        assert {"campaign", "cloned-code", "template-code"} <= set(signals)


def test_campaign_finding_names_the_cluster_and_epoch_moves() -> None:
    d = Detector(clock=lambda: CLOCK)
    before = d.epoch
    package, version, tarball = member("xcho")
    d.assess(package, version, tarball)
    assert d.epoch == before  # alone: nothing linked
    for name in ("kopiliong-copy", "third-farm"):
        package, version, tarball = member(name)
        verdict = d.assess(package, version, tarball)
    assert d.epoch > before
    found = next(f for f in verdict.findings if f.signal_id == "campaign")
    assert found.evidence["size"] == 3
    assert found.evidence["members"] == ["kopiliong-copy", "third-farm", "xcho"]
    assert "code" in found.evidence["links"]
    (listed,) = d.campaign_list(min_size=3)
    assert listed.members == ("kopiliong-copy", "third-farm", "xcho")
    steady = d.epoch
    other, v2, t2 = facts_from_case(case("@babel/code-frame"))
    d.assess(other, v2, t2)
    assert d.epoch == steady  # an unrelated real package changes nothing


def platform(name: str) -> tuple[PackageFacts, str, TarballFacts | None]:
    """One real package's files under a platform build's name (the same JS in every build)."""
    package, version, tarball = facts_from_case(case("picomatch"))
    return dataclasses.replace(package, name=name), version, tarball


@pytest.mark.parametrize(
    "names",
    [
        (
            "@typescript/typescript-linux-x64",
            "@typescript/typescript-darwin-arm64",
            "@typescript/typescript-win32-x64",
            "@typescript/typescript-linux-arm64",
        ),
        ("@swc/core-linux-x64-gnu", "@swc/core-darwin-arm64", "@swc/core-win32-x64-msvc"),
    ],
)
def test_sibling_platform_packages_stay_clean_in_any_order(names: tuple[str, ...]) -> None:
    for order in itertools.permutations(names):
        d = Detector(clock=lambda: CLOCK)
        made = []
        for name in order:
            package, version, tarball = platform(name)
            made.append((package, d.assess(package, version, tarball)))
        for package, verdict in made:
            now = d.current(verdict, package)
            assert now.label is Label.CLEAN, now.reasons
            assert "cloned-code" not in now.signal_ids


def test_monorepo_packages_sharing_a_repository_are_not_clones() -> None:
    d = Detector(clock=lambda: CLOCK)
    made = []
    for name in ("mono-core", "mono-cli", "mono-utils"):
        package, version, tarball = platform(name)
        assert tarball is not None
        assert tarball.package_json is not None
        pj = {**tarball.package_json, "repository": "git+https://github.com/acme/mono.git"}
        tarball = dataclasses.replace(tarball, package_json=pj)
        made.append((package, d.assess(package, version, tarball)))
    assert all("cloned-code" not in d.current(v, p).signal_ids for p, v in made)
    # the same files under unrelated names and repositories are clones
    package, version, tarball = platform("unrelated-copy")
    assert "cloned-code" in d.assess(package, version, tarball).signal_ids


def test_swc_counter_shape_and_a_real_package_with_tea_yaml() -> None:
    d = Detector(clock=lambda: CLOCK)
    package, version, tarball = facts_from_case(case("client-only"))
    assert tarball is not None
    entries = tuple(e for e in tarball.entries if not e.path.endswith("error.js"))
    assert tarball.package_json is not None
    counter = dataclasses.replace(
        tarball,
        entries=entries,
        sources={"package/index.js": ""},
        readme_text="# counter\n",
        package_json={**tarball.package_json, "name": "@swc/counter"},
    )
    swc = dataclasses.replace(package, name="@swc/counter")
    assert d.assess(swc, version, counter).label is Label.CLEAN
    # a real package whose maintainer registered it with tea.xyz: a finding, not spam
    real = case("@babel/code-frame")
    tea = "codeOwners:\n  - '0x723332a6f259f8457e71a346566466036a5eb3c8'\nquorum: 1\n"
    real["files"].append({"path": "package/tea.yaml", "size": len(tea), "sha256": "7" * 64})
    real["texts"]["package/tea.yaml"] = tea
    package, version, tarball = facts_from_case(real)
    verdict = d.assess(package, version, tarball)
    assert verdict.label is Label.SUSPICIOUS
    assert "tea-yaml" in verdict.signal_ids


def test_campaigns_cli_lists_clusters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["campaigns", "--cache-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "no detector index" in err
    d = Detector.open(tmp_path / "detector")
    for name in ("xcho", "brisk_otter_k9x", "third-farm"):
        package, version, tarball = member(name)
        d.assess(package, version, tarball)
    other, version, tarball = facts_from_case(case("@babel/code-frame"))
    d.assess(other, version, tarball)
    assert main(["campaigns", "--cache-dir", str(tmp_path), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert listed["members"] == ["brisk_otter_k9x", "third-farm", "xcho"]
    assert listed["size"] == 3
    assert main(["campaigns", "--cache-dir", str(tmp_path), "--min-size", "4"]) == 0
    assert capsys.readouterr().out.strip() == "no campaigns"


def test_the_plan_salt_follows_the_detector_epoch(tmp_path: Path) -> None:
    """A cluster that grows changes the gate's salt, so memoised plans are made again (and
    stored verdicts go through `Detector.current`)."""
    from proxy.decisions import DecisionLog
    from proxy.detect.store import VerdictStore
    from proxy.gate import PolicyGate
    from proxy.inspect import Inspector
    from proxy.policy.holder import PolicyHolder, shipped_policy

    detector = Detector(clock=lambda: CLOCK)
    log = DecisionLog(tmp_path / "decisions.sqlite3")
    inspector = Inspector(detector, VerdictStore(), None)
    gate = PolicyGate(PolicyHolder(shipped_policy("default")), inspector, log)
    try:
        before = gate.salt
        package, version, tarball = member("xcho")
        detector.assess(package, version, tarball)
        assert gate.salt == before
        package, version, tarball = member("xcho-twin")
        detector.assess(package, version, tarball)
        assert gate.salt != before
    finally:
        log.close()


def test_a_huge_cluster_walk_is_bounded() -> None:
    """A template shared by thousands of names: the walk stops at MAX_WALK and says so."""
    from proxy.detect import campaigns

    index = campaigns.CampaignIndex()
    for i in range(campaigns.MAX_WALK + 50):
        index.record(f"farm-{i:04d}", "", ["template-code"], ["code:" + "a" * 64, f"code:{i}"])
    c = index.cluster("farm-0000")
    assert campaigns.MAX_KEY_NAMES <= c.size <= campaigns.MAX_WALK
    assert not c.complete  # the evidence says the cluster is at least this big
    assert c.to_json()["complete"] is False
    assert c.to_json()["members"] == list(c.members[: campaigns.MAX_SHOWN])
    assert index.generation > 0


def test_a_clean_version_is_not_tied_to_a_wallet_another_version_registered() -> None:
    """Wallets are per tarball: `fg-locked@1.0.0` ships no tea.yaml, so the wallet its 1.1.0
    (and two other names) registered says nothing about it, in whatever order they are seen."""
    from tests.fakes.packages import clean, farm

    version = fake_version
    detector = Detector(clock=lambda: CLOCK)
    for name in ("fg-farm", "@fg-scope/farm"):
        detector.assess(*version(name, farm("1.0.0")))
    clean_facts, v, tarball = version("fg-locked", clean("1.0.0"))
    clean_verdict = detector.assess(clean_facts, v, tarball)
    detector.assess(*version("fg-locked", farm("1.1.0")))  # the same name, now with the wallet
    served = detector.current(clean_verdict, clean_facts)
    assert "tea-wallet-reuse" not in served.signal_ids
    assert served.label == clean_verdict.label
