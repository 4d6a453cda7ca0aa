"""`Detector.assess_metadata`: a packument's versions assessed together give exactly the verdicts
each would get alone, and versions that differ only in their identity share the work."""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from proxy.detect.evaluate import Detector, _shape
from proxy.detect.facts import PackageFacts, VersionFacts
from proxy.detect.model import Confidence, Finding, Label, Severity, Verdict
from proxy.detect.osv import OsvIndex
from proxy.npm.names import PackageName
from proxy.npm.packument import parse

CLOCK = datetime(2026, 12, 1, tzinfo=UTC)
DEPS = {"left-pad": "^1.3.0"}


class Counting(Detector):
    def __init__(self, osv: OsvIndex | None = None) -> None:
        super().__init__(osv, clock=lambda: CLOCK)
        self.calls = 0

    def assess(self, *args: Any, **kwargs: Any) -> Verdict:
        self.calls += 1
        return super().assess(*args, **kwargs)


def manifest(name: str, version: str, **fields: Any) -> dict[str, Any]:
    digest = f"sha512-{version.replace('.', '') * 8}=="
    tarball = f"http://127.0.0.1:1/{name}/-/{name}-{version}.tgz"
    dist = {"tarball": tarball, "integrity": digest, "unpackedSize": fields.pop("size", 4096)}
    return {"name": name, "version": version, "dist": dist, **fields}


def facts(
    name: str, versions: dict[str, dict[str, Any]], minutes: int = 60 * 24 * 30
) -> PackageFacts:
    """Facts as the proxy reads them: through its parser, versions published `minutes` apart."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = {
        v: (start + timedelta(minutes=minutes * i)).isoformat() for i, v in enumerate(versions)
    }
    doc = {
        "name": name,
        "dist-tags": {"latest": list(versions)[-1]},
        "versions": {v: manifest(name, v, **m) for v, m in versions.items()},
        "time": {"created": start.isoformat(), **times},
    }
    return PackageFacts.from_packument(parse(orjson.dumps(doc), PackageName.parse(name).name))


SAME = {"dependencies": DEPS, "size": 4096}
SCRIPT = {"dependencies": DEPS, "size": 4096, "scripts": {"postinstall": "node setup.js"}}
FEED = OsvIndex(
    [
        {
            "id": "MAL-2026-1",
            "modified": "2026-11-30T00:00:00Z",
            "affected": [
                {"package": {"ecosystem": "npm", "name": "fg-named"}, "versions": ["1.0.1"]}
            ],
        }
    ]
)

BURST = {v: SAME for v in ("4.2.7", "1.2.34", "9.2.60", "3.1.9", "7.7.41", "2.0.88")}

# (name, versions, minutes between publishes, feed, assessments expected)
CASES = [
    ("fg-same", {f"1.0.{i}": SAME for i in range(6)}, 43_200, None, 1),
    # an install script in one version, other dependencies in another: three shapes
    (
        "fg-shapes",
        {"1.0.0": SAME, "1.0.1": SCRIPT, "1.0.2": SAME, "1.1.0": {"size": 4096}, "1.1.1": SAME},
        43_200,
        None,
        3,
    ),
    (
        "fg-sizes",
        {f"1.0.{i}": {"dependencies": DEPS, "size": 100 + i} for i in range(4)},
        43_200,
        None,
        4,
    ),
    # the same dependencies under other ranges, as a package's releases have them: one shape
    (
        "fg-ranges",
        {f"1.{i}.0": {"dependencies": {"left-pad": f"^1.{i}.0"}, "size": 4096} for i in range(5)},
        43_200,
        None,
        1,
    ),
    # versions the feed names a package by: each looked up on its own
    ("fg-named", {f"1.0.{i}": SAME for i in range(4)}, 43_200, FEED, 4),
    # a burst with random numbers (a farm trait: campaign keys carry the publish time)
    ("fg-burst", BURST, 1, None, 6),
]


@pytest.mark.parametrize(("name", "versions", "minutes", "feed", "expected"), CASES)
def test_versions_assessed_together_get_what_each_gets_alone(
    name: str,
    versions: dict[str, dict[str, Any]],
    minutes: int,
    feed: OsvIndex | None,
    expected: int,
) -> None:
    package = facts(name, versions, minutes)
    together = Counting(feed)
    made = together.assess_metadata(package, list(versions))
    alone = Counting(feed)
    each = {v: alone.assess(package, v, record=False) for v in versions}
    assert made == each
    assert together.calls == expected


def test_ranges_are_shared_where_the_dependencies_are_a_ring() -> None:
    """Versions that differ in their ranges only share an assessment, and it is what each
    gets alone while its dependencies are labelled spam (the ring reads their names)."""
    ring = {f"fg-ring-{i}": f"^{i}.0.0" for i in range(3)}
    versions = {
        f"2.0.{i}": {"dependencies": {d: r + str(i) for d, r in ring.items()}} for i in range(4)
    }
    package = facts("fg-ring-host", versions)
    together, alone = Counting(), Counting()
    for d in (together, alone):
        for name in ring:
            d.graph.record(name, [], Label.SPAM)
    made = together.assess_metadata(package, list(versions))
    each = {v: alone.assess(package, v, record=False) for v in versions}
    assert made == each
    assert all("dependency-ring" in v.signal_ids for v in made.values())
    assert together.calls < alone.calls


def test_a_burst_is_a_farm_trait_here() -> None:
    """The burst case above is unshared because of its member traits, not by accident."""
    package = facts("fg-burst", BURST, minutes=1)
    verdict = Counting().assess(package, "4.2.7", record=False)
    assert "publish-burst" in verdict.signal_ids


def test_every_field_but_the_identity_is_in_the_shape() -> None:
    """A field added to VersionFacts is part of the shape unless it names the version."""
    base = VersionFacts("1.0.0", dependencies={"a": "1"}, description="x", file_count=3)
    changed: dict[str, Any] = {
        "dependencies": {"b": "1"},  # by their names (ranges: below)
        "optional_dependencies": {"b": "1"},
        "scripts": {"test": "jest"},
        "has_install_script": True,
        "bin": {"x": "cli.js"},
        "file_count": 4,
        "unpacked_size": 10,
        "deprecated": True,
        "repository": "github.com/a/b",
        "description": "y",
        "platform": True,
    }
    identity = {"version", "integrity", "published"}
    assert {f.name for f in dataclasses.fields(VersionFacts)} == set(changed) | identity
    for name, value in changed.items():
        assert _shape(dataclasses.replace(base, **{name: value})) != _shape(base), name
    same: dict[str, Any] = {
        "version": "2.0.0",
        "integrity": "sha512-x",
        "dependencies": {"a": "^2"},  # another range of the same dependency
    }
    for name, value in same.items():
        assert _shape(dataclasses.replace(base, **{name: value})) == _shape(base), name


def test_a_shared_verdict_on_another_version_keeps_every_field_but_the_version() -> None:
    """`Verdict.for_version` spells out the fields (for speed): one added to Verdict and not
    to it would silently fall back to its default on every shared verdict."""
    finding = Finding("tea-yaml", Severity.HIGH, Confidence.HIGH, "names a wallet", {"n": 1})
    verdict = Verdict(
        "fg-x", "1.0.0", 80, Label.SPAM, (finding,), "test", ("MAL-1",), tarball_scanned=True
    )
    defaults = {f.name: f.default for f in dataclasses.fields(Verdict) if f.default is not MISSING}
    assert defaults.keys() == {"osv_ids", "tarball_scanned"}  # each set otherwise, above
    assert all(getattr(verdict, name) != default for name, default in defaults.items())
    assert verdict.for_version("2.0.0") == dataclasses.replace(verdict, version="2.0.0")
