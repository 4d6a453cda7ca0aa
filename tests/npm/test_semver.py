"""`Version`, `Range` and `max_satisfying`, with node-semver's documented behaviour as the oracle.

Expected values in these tables were taken from node-semver (`semver.satisfies`,
`semver.compare`, `new Range(r).range`, `semver.maxSatisfying`) as shipped with npm 10.
"""

from __future__ import annotations

import itertools

import pytest

from proxy.npm.semver import Range, SemverError, Version, max_satisfying

# -- Version -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch", "prerelease"),
    [
        ("1.2.3", 1, 2, 3, ()),
        ("0.0.0", 0, 0, 0, ()),
        ("v1.2.3", 1, 2, 3, ()),
        ("=1.2.3", 1, 2, 3, ()),  # node-semver loose mode
        (" 1.2.3 ", 1, 2, 3, ()),
        ("1.2.3-beta.11", 1, 2, 3, ("beta", 11)),
        ("1.2.3-0a", 1, 2, 3, ("0a",)),
        ("1.2.3-x-y-z.--", 1, 2, 3, ("x-y-z", "--")),
        ("1.2.3-beta+exp.sha.5114f85", 1, 2, 3, ("beta",)),
        ("1.2.3+20240101", 1, 2, 3, ()),
        ("10.20.30", 10, 20, 30, ()),
    ],
)
def test_version_parse(
    text: str, major: int, minor: int, patch: int, prerelease: tuple[int | str, ...]
) -> None:
    v = Version.parse(text)
    assert (v.major, v.minor, v.patch, v.prerelease) == (major, minor, patch, prerelease)
    assert v.is_prerelease is bool(prerelease)
    assert v.release == (major, minor, patch)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-",
        "1.2.3-beta..1",
        "1.2.3-beta_1",
        "1.2.3+",
        "a.b.c",
        "latest",
        "^1.2.3",
        "1.2.3 - 2.0.0",
        "1." * 200 + "0",  # over node-semver's 256-character limit
    ],
)
def test_version_parse_rejects(text: str) -> None:
    with pytest.raises(SemverError):
        Version.parse(text)
    assert Version.try_parse(text) is None


# SemVer 2.0 section 11, in ascending order, plus numeric-before-alphanumeric and numeric order.
ASCENDING = [
    "0.9.9",
    "1.0.0-0",
    "1.0.0-1",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0-a",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.9.0",
    "1.10.0",
    "2.0.0",
]


@pytest.mark.parametrize(("low", "high"), list(itertools.pairwise(ASCENDING)), ids=str)
def test_version_precedence(low: str, high: str) -> None:
    a, b = Version.parse(low), Version.parse(high)
    assert a < b
    assert b > a
    assert a <= b
    assert not b <= a
    assert a != b


def test_sorting_follows_precedence_not_text() -> None:
    shuffled = [
        ASCENDING[i] for i in (5, 17, 0, 11, 13, 2, 16, 8, 3, 10, 15, 1, 12, 4, 9, 14, 6, 7)
    ]
    assert sorted(shuffled, key=Version.parse) == ASCENDING


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("1.0.0+build.1", "1.0.0+build.2", True),  # build metadata has no precedence
        ("v1.0.0", "1.0.0", True),
        ("1.0.0-a-1", "1.0.0-a.1", False),
        ("1.0.0-1", "1.0.0-01a", False),
    ],
)
def test_version_equality(a: str, b: str, equal: bool) -> None:
    assert (Version.parse(a) == Version.parse(b)) is equal


def test_version_str_round_trips_without_build() -> None:
    assert str(Version.parse("v1.2.3-rc.1+sha.abc")) == "1.2.3-rc.1"
    assert str(Version.parse("4.17.21")) == "4.17.21"


def test_versions_do_not_compare_with_other_types() -> None:
    with pytest.raises(TypeError):
        _ = Version.parse("1.0.0") < "2.0.0"


# -- Range -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rng", "version", "inside"),
    [
        # caret
        ("^1.2.3", "1.2.3", True),
        ("^1.2.3", "1.9.9", True),
        ("^1.2.3", "1.2.2", False),
        ("^1.2.3", "2.0.0", False),
        ("^1.2.3", "2.0.0-0", False),
        ("^1.2.3", "1.3.0-beta", False),  # prerelease of another [major, minor, patch]
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),  # := >=0.0.3 <0.0.4-0
        ("^0.0.3", "0.0.4", False),
        ("^0.0.3", "0.0.4-0", False),
        ("^0.0.0", "0.0.0", True),
        ("^0.0.0", "0.0.1", False),
        ("^0.0", "0.0.9", True),
        ("^0.0", "0.1.0", False),
        ("^0.x", "0.9.9", True),
        ("^0.x", "1.0.0", False),
        ("^0.0.x", "0.0.7", True),
        ("^0.0.x", "0.1.0", False),
        ("^1.2.x", "1.9.0", True),
        ("^1.2.x", "1.1.9", False),
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        ("^1.2.3-beta.2", "1.2.3-beta.1", False),
        ("^1.2.3-beta.2", "1.2.4-beta.2", False),
        ("^1.2.3-beta.2", "1.2.4", True),
        ("^1.0.0-0", "1.0.0-alpha", True),
        ("^ 1.2.3", "1.3.0", True),
        # tilde
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("~1.2", "1.2.0", True),
        ("~1.2", "1.3.0", False),
        ("~1", "1.9.0", True),
        ("~1", "2.0.0", False),
        ("~0.2.3", "0.2.5", True),
        ("~0.2.3", "0.3.0", False),
        ("~0.0.0", "0.0.9", True),
        ("~0.0.0", "0.1.0", False),
        ("~>1.2", "1.2.7", True),
        ("~>1.2", "1.3.0", False),
        ("~1.2.3-beta.2", "1.2.3-beta.3", True),
        ("~1.2.3-beta.2", "1.2.4-beta.3", False),
        ("~ 1.2.3", "1.3.0", False),
        # hyphen ranges
        ("1.2.3 - 2.3.4", "2.3.4", True),
        ("1.2.3 - 2.3.4", "2.3.5", False),
        ("1.2.3 - 2.3", "2.3.9", True),  # := >=1.2.3 <2.4.0-0
        ("1.2.3 - 2.3", "2.4.0", False),
        ("1.2.3 - 2", "2.9.9", True),
        ("1.2.3 - 2", "3.0.0", False),
        ("1.2 - 2.3.4", "1.2.0", True),
        ("1.2 - 2.3.4", "1.1.9", False),
        ("1.2.3 - 1.2.3", "1.2.3", True),
        ("1.2.3 - 2.3.4-beta", "2.3.4-alpha", True),
        ("1.2.3 - 2.3.4-beta", "2.3.4", False),
        ("1.2.3 - 2.3.4-beta", "2.0.0-beta", False),
        ("1.2.3-rc.1 - 2", "1.2.3-rc.2", True),
        # x-ranges, with and without operators
        ("1.2.x", "1.2.5", True),
        ("1.2.x", "1.3.0", False),
        ("1.x", "1.0.0", True),
        ("1.x", "2.0.0", False),
        ("1.X", "1.2.3", True),
        ("1.*", "1.2.3", True),
        ("x.x.x", "1.2.3", True),
        ("1", "1.5.0", True),
        ("=1.2", "1.2.9", True),
        ("=1.2", "1.3.0", False),
        (">1.2", "1.2.9", False),  # := >=1.3.0
        (">1.2", "1.3.0", True),
        (">1", "1.9.9", False),
        (">1", "2.0.0", True),
        ("<1.2", "1.1.9", True),
        ("<1.2", "1.2.0", False),
        ("<1.2", "1.2.0-alpha", False),
        ("<=1.2", "1.2.9", True),
        ("<=1.2", "1.3.0", False),
        ("<=1", "1.9.9", True),
        ("<=1", "2.0.0-0", False),
        (">=1.2", "1.2.0", True),
        (">=1.2", "1.1.9", False),
        ("*", "0.0.1", True),
        ("*", "1.0.0-beta", False),
        ("", "2.0.0", True),
        ("x", "3.0.0", True),
        (">*", "1.0.0", False),
        ("<x", "0.0.0", False),
        # plain comparators and node-semver's prerelease rule
        ("1.2.3", "1.2.3", True),
        ("=1.2.3", "1.2.3", True),
        ("v1.2.3", "1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("1.2.3-beta", "1.2.3-beta", True),
        ("1.2.3+build", "1.2.3", True),
        (">=1.2.3", "1.2.4-beta", False),
        (">=1.2.3-alpha", "1.2.3-beta", True),
        (">=1.2.3-alpha", "1.2.4-beta", False),
        (">=1.2.3-alpha <1.2.4", "1.2.3", True),
        (">=0.0.0", "0.0.0-0", False),
        ("<2.0.0", "2.0.0-rc.1", False),
        ("<2.0.0", "1.9.9", True),
        ("<=2.0.0-rc.1", "2.0.0-rc.1", True),
        ("<1.2.3-beta", "1.2.3-alpha", True),
        ("<1.2.3-beta", "1.2.3", False),
        (">1.2.3-beta", "1.2.3", True),
        (">1.2.3-beta", "1.2.3-beta", False),
        (">1.0.0-beta.2 <2.0.0", "1.0.0-beta.3", True),
        (">1.0.0-beta.2 <2.0.0", "1.0.1-beta.3", False),
        (">=1.2.3 <1.2.3", "1.2.3", False),
        (">= 1.2.3 < 2", "1.5.0", True),
        (">= 1.2.3 < 2", "2.0.0", False),
        # unions
        ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "2.4.0", False),
        ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "2.5.0", True),
        ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "1.9.9", True),
        ("~1.2.3 || ^2", "2.9.0", True),
        ("~1.2.3 || ^2", "1.3.0", False),
        (">1.2.3 <1.2.5 || 2.0.0-rc.1", "2.0.0-rc.1", True),
        (">1.2.3 <1.2.5 || 2.0.0-rc.1", "1.2.4", True),
        (">1.2.3 <1.2.5 || 2.0.0-rc.1", "1.2.4-rc.1", False),
        # a candidate that is not a version is never inside
        ("^1.2.3", "not-a-version", False),
        ("*", "latest", False),
    ],
)
def test_range_contains(rng: str, version: str, inside: bool) -> None:
    r = Range.parse(rng)
    assert r.contains(version) is inside
    parsed = Version.try_parse(version)
    if parsed is not None:
        assert r.contains(parsed) is inside
    assert str(r) == rng


@pytest.mark.parametrize(
    "rng",
    ["foo", "1.2.3 -", "^", "~", "=", "1.2.3.4", ">=1.2.3 junk", "a.b.c", ">=01.2.3x", "1" * 300],
)
def test_range_parse_rejects(rng: str) -> None:
    with pytest.raises(SemverError):
        Range.parse(rng)


@pytest.mark.parametrize(
    ("versions", "rng", "best"),
    [
        (["1.2.3", "1.2.4", "1.3.0-beta", "2.0.0"], "^1.2.3", "1.2.4"),
        (["1.2.3", "1.2.4-beta", "1.2.4"], "~1.2.3", "1.2.4"),
        (["1.0.0", "2.0.0"], "^3", None),
        (["0.0.3", "0.0.4", "0.1.0"], "^0.0.3", "0.0.3"),
        (["1.0.0-rc.1", "1.0.0-rc.2", "0.9.0"], ">=1.0.0-rc.1", "1.0.0-rc.2"),
        (["1.2.3-beta.1", "1.2.3-beta.2"], "^1.2.3-beta.1", "1.2.3-beta.2"),
        (["v1.2.4", "1.2.3", "junk"], "^1.2.3", "v1.2.4"),  # the caller's spelling comes back
        (["1.10.0", "1.9.0", "1.2.0"], "1.x", "1.10.0"),  # numeric, not text, order
        ([], "*", None),
    ],
)
def test_max_satisfying(versions: list[str], rng: str, best: str | None) -> None:
    assert max_satisfying(versions, Range.parse(rng)) == best
