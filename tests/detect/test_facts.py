"""Facts from packuments (full, abbreviated, malformed) and from corpus cases."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.detect.facts import PackageFacts, facts_from_case
from tests.detect.helpers import case

FULL: dict[str, Any] = {
    "name": "demo",
    "dist-tags": {"latest": "1.1.0"},
    "versions": {
        "1.0.0": {"name": "demo", "version": "1.0.0", "scripts": {"postinstall": "node x"},
                  "dist": {"integrity": "sha512-x", "fileCount": 3, "unpackedSize": 900}},
        "1.1.0": {"name": "demo", "version": "1.1.0", "dependencies": {"a": "^1"}, "bin": "cli.js",
                  "repository": {"url": "git+https://example.invalid/demo.git"}},
    },
    "time": {"created": "2024-01-01T00:00:00.000Z", "1.0.0": "2024-01-01T00:00:00.000Z",
             "1.1.0": "2024-01-02T00:00:00Z", "modified": "2024-01-02T00:00:00Z"},
    "maintainers": [{"name": "alice"}],
}  # fmt: skip


def test_full_packument() -> None:
    p = PackageFacts.from_packument(FULL)
    assert p.name == "demo"
    assert p.maintainers == ("alice",)
    assert p.created is not None
    assert p.created.year == 2024
    v0, v1 = p.versions["1.0.0"], p.versions["1.1.0"]
    assert v0.has_install_script is True
    assert v0.file_count == 3
    assert v0.integrity == "sha512-x"
    assert v1.dependencies == ("a",)  # by name: no signal reads a range
    assert v1.bin == {"demo": "cli.js"}
    assert v1.repository == "git+https://example.invalid/demo.git"
    assert p.version("latest") is v1
    assert [v for _, v in p.publish_times] == ["1.0.0", "1.1.0"]


def test_abbreviated_packument_leaves_unknowns_unknown() -> None:
    doc = {"name": "demo", "versions": {"1.0.0": {"hasInstallScript": True, "dist": {}}}}
    p = PackageFacts.from_packument(doc)
    v = p.versions["1.0.0"]
    assert v.scripts is None
    assert v.has_install_script is True
    assert p.maintainers is None
    assert p.created is None
    assert p.publish_times == ()


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"name": 5, "versions": [], "time": "x", "dist-tags": None, "maintainers": "bob"},
        {"name": "x", "versions": {"1.0.0": "not a manifest", "2.0.0": {"dist": [], "bin": 3}}},
        {
            "name": "x",
            "time": {"created": "yesterday"},
            "versions": {"1.0.0": {"dependencies": {"a": 1}}},
        },
    ],
)
def test_malformed_packuments_do_not_crash(doc: dict[str, Any]) -> None:
    p = PackageFacts.from_packument(doc)
    assert isinstance(p.versions, type(p.versions))


def test_corpus_case_with_subfolder_package_json() -> None:
    package, version, tarball = facts_from_case(case("xcho"))
    assert package.name == "xcho"
    assert version == "0.1.0"
    assert tarball is not None
    assert tarball.package_json_path == "package/xcho/package.json"
    assert tarball.tea_files[0].path == "package/tea.yaml"
    assert not tarball.sources_complete  # no source code comes with a case
    assert package.maintainers is None  # [] in the corpus means unknown


def test_corpus_name_only_case() -> None:
    package, _version, tarball = facts_from_case({"name": "free-robux", "version": "1.0.0"})
    assert tarball is None
    assert package.version("1.0.0") is not None


def test_a_time_map_without_created_is_not_trusted() -> None:
    # A mirror that synthesises `time` (random dates, no `created`): publishing signals
    # must not read bursts or random numbering out of it.
    times = {"0.1.0": "2025-10-02T07:13:37.852Z", "0.10.0": "2024-12-07T08:03:45.988Z"}
    doc: dict[str, Any] = {"name": "lodash", "versions": {"0.1.0": {}, "0.10.0": {}}, "time": times}
    facts = PackageFacts.from_packument(doc)
    assert facts.publish_times == ()
    assert facts.versions["0.1.0"].published is None
    with_created = {**doc, "time": {**times, "created": "2024-12-07T08:00:00.000Z"}}
    assert len(PackageFacts.from_packument(with_created).publish_times) == 2


def test_versions_of_one_packument_share_equal_values() -> None:
    from proxy.detect.facts import PackageFacts

    manifest = {
        "dependencies": {"left-pad": "^1.3.0"},
        "scripts": {"test": "node test.js"},
        "repository": {"url": "git+https://example.invalid/fg/shared.git"},
        "description": "the same words in every version",
    }
    versions: dict[str, dict[str, object]] = {
        f"1.{i}.0": {"version": f"1.{i}.0", **manifest} for i in range(3)
    }
    versions["1.2.0"]["dependencies"] = {"left-pad": "^1.3.1", "right-pad": "^1.0.0"}
    versions["1.1.0"]["dependencies"] = {"left-pad": "^1.4.0"}  # another range, the same name
    doc = {"name": "fg-shared", "versions": versions}
    facts = PackageFacts.from_packument(doc)
    a, b, c = (facts.versions[f"1.{i}.0"] for i in range(3))
    assert a.dependencies is b.dependencies  # one copy for the same names ...
    assert a.dependencies == ("left-pad",)
    assert c.dependencies == ("left-pad", "right-pad")  # ... and its own for other names
    assert a.scripts is b.scripts is c.scripts
    assert a.repository is c.repository
    assert a.description is c.description
    assert c.repository == "git+https://example.invalid/fg/shared.git"


@pytest.mark.parametrize(
    ("dependencies", "names"),
    [
        ({"a": "^1", "b": "~2.0.0"}, ("a", "b")),
        ({"a": "^1", "b": 2, "c": None, "d": {"x": 1}}, ("a",)),  # only string ranges count
        ({}, ()),
        (["a", "b"], ()),  # not a map
        ("a", ()),
        (None, ()),
    ],
)
def test_dependencies_are_kept_by_name(dependencies: object, names: tuple[str, ...]) -> None:
    doc = {
        "name": "fg-x",
        "versions": {"1.0.0": {"version": "1.0.0", "dependencies": dependencies}},
    }
    assert PackageFacts.from_packument(doc).versions["1.0.0"].dependencies == names
