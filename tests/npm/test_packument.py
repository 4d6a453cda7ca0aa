"""Packuments: negotiate, parse, summarize, abbreviate, edit, rewrite and render."""

from __future__ import annotations

import base64
import copy
import gzip
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from proxy.errors import UpstreamBadResponse
from proxy.npm import packument as pk
from proxy.npm.integrity import expected_digest
from proxy.npm.names import PackageName
from proxy.npm.packument import Edits, Variant
from tests.npm.packuments import PROXY, UPSTREAM, manifest, packument, raw

PACOTE_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
LEFTPAD = PackageName.parse("left-pad")
SCOPED = PackageName.parse("@acme/widget")


def leftpad() -> dict[str, Any]:
    """left-pad with stable releases, a prerelease line and a `next` tag."""
    return packument(
        "left-pad",
        ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0-beta.1"],
        tags={"latest": "1.3.0", "next": "2.0.0-beta.1"},
    )


# -- negotiate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "variant"),
    [
        (PACOTE_ACCEPT, Variant.ABBREVIATED),
        ("application/vnd.npm.install-v1+json", Variant.ABBREVIATED),
        # Media types are case-insensitive (RFC 9110 8.3.1).
        ("Application/VND.npm.install-v1+JSON", Variant.ABBREVIATED),
        (None, Variant.FULL),  # no Accept: full (pacote)
        ("", Variant.FULL),
        ("application/json", Variant.FULL),
        ("*/*", Variant.FULL),
        ("text/html, application/xhtml+xml", Variant.FULL),
        # q=0 means "not acceptable" (RFC 9110 12.4.2).
        ("application/vnd.npm.install-v1+json;q=0, application/json", Variant.FULL),
    ],
)
def test_negotiate(accept: str | None, variant: Variant) -> None:
    assert pk.negotiate(accept) is variant


def test_variant_media_types() -> None:
    assert Variant.ABBREVIATED.media_type == "application/vnd.npm.install-v1+json"
    assert Variant.FULL.media_type == "application/json"


# -- parse -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"name": "left-pad", "versions": {', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b'["left-pad"]', "not a JSON object"),
        (b'"left-pad"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"name": "right-pad", "versions": {}}', "names another package: 'right-pad'"),
        (b'{"name": "left-pad", "versions": ["1.0.0"]}', "versions is not a map"),
        (b'{"name": "left-pad", "dist-tags": "1.0.0"}', "dist-tags is not a map"),
    ],
)
def test_parse_rejects_what_is_not_a_packument(body: bytes, problem: str) -> None:
    with pytest.raises(UpstreamBadResponse) as info:
        pk.parse(body, "left-pad")
    assert "'left-pad'" in str(info.value)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "doc",
    [
        leftpad(),
        {"name": "left-pad", "dist-tags": {}, "versions": {}},
        {"versions": {}},  # some mirrors omit the name
        {},
    ],
)
def test_parse_accepts_packuments(doc: dict[str, Any]) -> None:
    assert pk.parse(raw(doc), "left-pad") == doc


# -- summarize ---------------------------------------------------------------------------------


def test_summarize_maps_versions_tags_and_filenames() -> None:
    doc = packument("@acme/widget", ["1.0.0", "1.1.0"], tags={"latest": "1.1.0", "gone": "0.1.0"})
    summary = pk.summarize(doc, SCOPED)
    assert summary.name == "@acme/widget"
    assert set(summary.versions) == {"1.0.0", "1.1.0"}
    assert summary.dist_tags == {"latest": "1.1.0"}  # a tag without its version is dropped
    assert summary.modified == doc["time"]["modified"]
    ref = summary.versions["1.0.0"]
    dist = doc["versions"]["1.0.0"]["dist"]
    assert ref.tarball == f"{UPSTREAM}/@acme/widget/-/widget-1.0.0.tgz"
    assert ref.filename == "widget-1.0.0.tgz"  # no scope in the file name
    assert ref.integrity == dist["integrity"]
    assert ref.shasum is None  # the integrity names a digest: the shasum could never matter
    assert ref.digest == expected_digest(dist["integrity"], dist["shasum"])
    assert summary.resolve("1.0.0") == ref
    assert summary.resolve("latest") == summary.versions["1.1.0"]
    assert summary.resolve("gone") is None
    assert summary.resolve("2.0.0") is None
    assert summary.for_filename("widget-1.1.0.tgz") == summary.versions["1.1.0"]
    assert summary.for_filename("widget-9.9.9.tgz") is None


def test_tarball_file_names_other_than_the_default_are_found_too() -> None:
    versions = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0"]
    doc = packument("@acme/widget", versions)
    dist = {v: doc["versions"][v]["dist"] for v in versions}
    dist["1.1.0"]["tarball"] = "https://cdn.invalid/blobs/legacy-name.tgz"
    dist["1.2.0"]["tarball"] = f"{UPSTREAM}/@acme/widget/-/widget-2.0.0.tgz"  # 2.0.0's name
    dist["2.1.0"]["tarball"] = f"{UPSTREAM}/@acme/widget/-/widget-2.0.0.tgz"  # and again
    summary = pk.summarize(doc, SCOPED)
    assert summary.for_filename("widget-1.0.0.tgz") == summary.versions["1.0.0"]
    assert summary.for_filename("legacy-name.tgz") == summary.versions["1.1.0"]
    assert summary.versions["1.1.0"].filename == "legacy-name.tgz"
    # Several versions under one name: the last listed has it, as the registry's order says.
    assert summary.for_filename("widget-2.0.0.tgz") == summary.versions["2.1.0"]
    # A version whose tarball has another name is not found under its default one.
    assert summary.for_filename("widget-1.1.0.tgz") is None
    assert summary.for_filename("widget-2.1.0.tgz") is None
    assert summary.for_filename("widget-.tgz") is None
    assert summary.for_filename("other-1.0.0.tgz") is None
    # Only the odd names are kept; the digest is parsed when asked for.
    assert set(summary.odd_filenames) == {"legacy-name.tgz", "widget-2.0.0.tgz"}
    assert summary.versions["1.0.0"].digest == expected_digest(dist["1.0.0"]["integrity"], None)


def test_tarball_urls_are_kept_only_where_they_cannot_be_derived() -> None:
    versions = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"]
    doc = packument("@acme/widget", versions)
    dist = {v: doc["versions"][v]["dist"] for v in versions}
    dist["1.1.0"]["tarball"] = "https://cdn.invalid/blobs/legacy-name.tgz"
    dist["1.2.0"]["tarball"] = "https://mirror.invalid/@acme/widget/-/widget-1.2.0.tgz"
    dist["1.3.0"]["tarball"] = f"{UPSTREAM}/@acme/widget/-/widget%2d1.3.0.tgz"  # quoted
    del dist["2.0.0"]["tarball"]
    refs = pk.summarize(doc, SCOPED).versions
    for version in versions:
        assert refs[version].tarball == dist[version].get("tarball", ""), version
    assert refs["1.0.0"].odd_url is None
    assert {v for v in versions if refs[v].odd_url is not None} == {
        "1.1.0",
        "1.2.0",
        "1.3.0",
        "2.0.0",
    }
    assert refs["1.0.0"].url_base is refs["2.0.0"].url_base  # one string for them all


def test_a_documents_first_url_without_its_file_name_is_the_base() -> None:
    doc = packument("left-pad", ["1.0.0", "1.1.0"])
    doc["versions"]["1.0.0"]["dist"]["tarball"] = "https://cdn.invalid/x/left-pad-1.0.0.tgz"
    refs = pk.summarize(doc, LEFTPAD).versions
    assert refs["1.0.0"].url_base == "https://cdn.invalid/x/"
    assert refs["1.1.0"].tarball == f"{UPSTREAM}/left-pad/-/left-pad-1.1.0.tgz"
    assert refs["1.1.0"].odd_url == refs["1.1.0"].tarball


@pytest.mark.parametrize(
    ("integrity", "kept"),
    [
        (None, True),  # an old package: its sha1 shasum is all there is
        ("", True),
        ("sha512-" + "A" * 86 + "==", False),
        ("sha1-" + base64.b64encode(b"x" * 20).decode(), False),
        ("sha256-" + base64.b64encode(b"x" * 32).decode() + " sha1-@@", False),
        ("sha512-not*base64", True),  # malformed: the shasum is what verifies the tarball
        ("md5-" + base64.b64encode(b"x" * 16).decode(), True),  # no algorithm npm verifies
    ],
)
def test_a_shasum_is_kept_only_when_the_integrity_names_no_digest(
    integrity: str | None, kept: bool
) -> None:
    doc = packument("left-pad", ["1.0.0"])
    dist = doc["versions"]["1.0.0"]["dist"]
    dist["integrity"] = integrity
    ref = pk.summarize(doc, LEFTPAD).versions["1.0.0"]
    assert ref.shasum == (dist["shasum"] if kept else None)
    assert ref.digest == expected_digest(integrity, dist["shasum"])


def test_summarize_tolerates_malformed_versions() -> None:
    doc = leftpad()
    doc["versions"]["0.0.1"] = "not a manifest"
    del doc["versions"]["1.0.0"]["dist"]
    doc["versions"]["1.1.0"]["dist"] = {"integrity": 42, "shasum": None, "tarball": None}
    summary = pk.summarize(doc, LEFTPAD)
    assert "0.0.1" not in summary.versions
    missing = summary.versions["1.0.0"]
    assert (missing.tarball, missing.filename) == ("", "left-pad-1.0.0.tgz")
    assert (missing.integrity, missing.shasum) == (None, None)
    odd = summary.versions["1.1.0"]
    assert (odd.integrity, odd.shasum, odd.filename) == (None, None, "left-pad-1.1.0.tgz")


def test_summarize_reads_modified_of_an_abbreviated_document() -> None:
    doc = {"name": "left-pad", "modified": "2024-05-01T00:00:00.000Z", "versions": {}}
    assert pk.summarize(doc, LEFTPAD).modified == "2024-05-01T00:00:00.000Z"
    assert pk.summarize({"versions": {}}, LEFTPAD).modified is None


@pytest.mark.parametrize(
    ("url", "filename"),
    [
        (f"{UPSTREAM}/left-pad/-/left-pad-1.3.0.tgz", "left-pad-1.3.0.tgz"),
        (f"{UPSTREAM}/@acme/widget/-/widget-1.3.0.tgz", "widget-1.3.0.tgz"),
        (f"{UPSTREAM}/left-pad/-/left-pad-1.3.0%2Bbuild.7.tgz", "left-pad-1.3.0+build.7.tgz"),
        (f"{UPSTREAM}/left-pad/-/left-pad-1.3.0.tgz?token=abc", "left-pad-1.3.0.tgz"),
        ("https://cdn.example/blobs/legacy-name.tgz", "legacy-name.tgz"),
        ("", "left-pad-1.3.0.tgz"),
        (f"{UPSTREAM}/left-pad/-/left-pad-1.3.0.zip", "left-pad-1.3.0.tgz"),
        (f"{UPSTREAM}/left-pad/-/.tgz", "left-pad-1.3.0.tgz"),
        (f"{UPSTREAM}/left-pad/-/..%2F..%2Fpasswd.tgz", "left-pad-1.3.0.tgz"),
    ],
)
def test_tarball_filename(url: str, filename: str) -> None:
    assert pk.tarball_filename(url, LEFTPAD, "1.3.0") == filename


@pytest.mark.parametrize(
    "url",
    [
        "https://registry.invalid/left-pad/-/left-pad-1.3.0.tgz",
        "http://registry.invalid/@acme%2fwidget/-/widget-1.3.0.tgz",
        "HTTPS://Registry.invalid/a/b.tgz",
        "https://registry.invalid/a/b.tgz?x=/c/d.tgz",
        "https://registry.invalid/a/b.tgz#/c/d.tgz",
        "https://registry.invalid/a/b.tgz#frag?q=/e.tgz",
        "https://registry.invalid/a/b.tgz?q#/e.tgz",
        "https://registry.invalid",
        "https://registry.invalid?x=/a.tgz",
        "https://registry.invalid#/a.tgz",
        "https:///a/b.tgz",
        "https://user:pw@registry.invalid:8443/a/b.tgz",
        "https://[::1]:8443/a/b.tgz",
        "https://regístry.invalid/a/b.tgz",
        "https://registry.invalid/a/b\tc.tgz",
        "https://registry.invalid/a/b.tgz ",
        "https://registry.invalid/a/",
        "ftp://registry.invalid/a/b.tgz",
        "//registry.invalid/a/b.tgz",
        "relative/path/b.tgz",
        "b.tgz",
        "http:b.tgz",
    ],
)
def test_url_leaf_is_the_last_segment_of_the_path(url: str) -> None:
    assert pk.url_leaf(url) == urlsplit(url).path.rsplit("/", 1)[-1]


# -- abbreviate --------------------------------------------------------------------------------


def test_abbreviate_keeps_time_and_install_fields_only() -> None:
    doc = leftpad()
    doc["versions"]["1.3.0"].update(
        {
            "deprecated": "use String.prototype.padStart",
            "optionalDependencies": {"fsevents": "^2.3.0"},
            "peerDependencies": {"react": ">=17"},
            "peerDependenciesMeta": {"react": {"optional": True}},
            "bundleDependencies": ["inner"],
            "bin": {"left-pad": "cli.js"},
            "os": ["darwin", "linux"],
            "cpu": ["x64", "arm64"],
            "funding": {"type": "github", "url": "https://github.com/sponsors/kchan"},
            "futureInstallField": {"kept": False},
        }
    )
    before = copy.deepcopy(doc)
    out = pk.abbreviate(doc)
    assert doc == before
    assert set(out) == {"name", "modified", "dist-tags", "versions", "time"}
    assert out["time"] == doc["time"]
    assert out["modified"] == doc["time"]["modified"]
    assert out["dist-tags"] == doc["dist-tags"]
    m = out["versions"]["1.3.0"]
    assert set(m) == {
        "name",
        "version",
        "deprecated",
        "dependencies",
        "optionalDependencies",
        "devDependencies",
        "bundleDependencies",
        "peerDependencies",
        "peerDependenciesMeta",
        "bin",
        "directories",
        "dist",
        "engines",
        "os",
        "cpu",
        "license",
        "funding",
        "_hasShrinkwrap",
    }
    assert m["dist"] == doc["versions"]["1.3.0"]["dist"]
    assert m["deprecated"] == "use String.prototype.padStart"


@pytest.mark.parametrize(
    ("scripts", "has_install_script"),
    [
        ({"preinstall": "node check.js"}, True),
        ({"install": "node-gyp rebuild"}, True),
        ({"postinstall": "node setup.js", "test": "tap"}, True),
        ({"test": "tap", "build": "tsc", "prepare": "tsc", "prepublish": "tsc"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_abbreviate_flags_install_scripts(
    scripts: dict[str, str] | None, has_install_script: bool
) -> None:
    m = manifest("left-pad", "1.3.0", scripts=scripts)
    if scripts is None:
        del m["scripts"]
    out = pk.abbreviate(packument("left-pad", ["1.3.0"], manifests={"1.3.0": m}))
    version = out["versions"]["1.3.0"]
    assert "scripts" not in version
    assert version.get("hasInstallScript", False) is has_install_script


def test_abbreviate_passes_policy_restrictions_through() -> None:
    restrictions = {"message": "blocked", "versions": {"1.0.0": {"version": "1.0.0"}}}
    out = pk.abbreviate({**leftpad(), "policyRestrictions": restrictions})
    assert out["policyRestrictions"] == restrictions


# -- repair_dist_tags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "kept", "expected"),
    [
        pytest.param(
            {"latest": "1.3.0", "next": "2.0.0-beta.1"},
            ["1.0.0", "1.3.0", "2.0.0-beta.1"],
            {"latest": "1.3.0", "next": "2.0.0-beta.1"},
            id="untouched-when-targets-kept",
        ),
        pytest.param(
            {"latest": "2.0.0"},
            ["1.0.0", "1.5.0", "2.1.0-beta.1", "3.0.0"],
            {"latest": "1.5.0"},
            id="down-to-highest-stable-below-not-up",
        ),
        pytest.param(
            {"latest": "1.2.0"},
            ["1.1.0", "1.2.0-rc.1"],
            {"latest": "1.1.0"},
            id="stable-never-to-prerelease-below",
        ),
        pytest.param(
            {"latest": "1.0.0"},
            ["1.0.1", "2.0.0-rc.1"],
            {"latest": "1.0.1"},
            id="latest-up-only-when-nothing-below",
        ),
        pytest.param(
            {"latest": "1.0.0"},
            ["0.9.0-beta", "2.0.0-rc.1"],
            {},
            id="latest-dropped-when-only-prereleases-left",
        ),
        pytest.param(
            {"lts": "1.0.0", "latest": "2.0.0"},
            ["1.0.1", "2.0.0"],
            {"latest": "2.0.0"},
            id="other-stable-tag-never-moves-up",
        ),
        pytest.param(
            {"next": "2.0.0-rc.2"},
            ["1.0.0", "2.0.0-rc.1", "2.0.0-rc.3"],
            {"next": "2.0.0-rc.1"},
            id="prerelease-tag-to-prerelease-below",
        ),
        pytest.param(
            {"next": "2.0.0-rc.1"},
            ["1.0.0", "3.0.0-alpha"],
            {"next": "1.0.0"},
            id="prerelease-tag-to-stable-below",
        ),
        pytest.param(
            {"next": "2.0.0-rc.1"},
            ["3.0.0"],
            {},
            id="prerelease-tag-dropped-with-nothing-below",
        ),
        pytest.param(
            {"latest": "1.10.0"},
            ["1.9.0", "1.2.0", "1.10.1"],
            {"latest": "1.9.0"},
            id="semver-order-not-text-order",
        ),
        pytest.param(
            {"latest": "1.3.0", "canary": "not-a-version"},
            ["1.0.0", "legacy-build"],
            {"latest": "1.0.0"},
            id="unparseable-targets-and-kept-ignored",
        ),
        pytest.param({"latest": "1.3.0"}, [], {}, id="nothing-kept"),
    ],
)
def test_repair_dist_tags(tags: dict[str, str], kept: list[str], expected: dict[str, str]) -> None:
    before = dict(tags)
    assert pk.repair_dist_tags(tags, kept) == expected
    assert tags == before


# -- apply_edits -------------------------------------------------------------------------------


def test_apply_edits_hides_restricts_and_deprecates_without_mutating() -> None:
    doc = leftpad()
    before = copy.deepcopy(doc)
    edits = Edits(
        hidden=frozenset({"1.3.0"}),
        restricted=frozenset({"1.2.0"}),
        message="left-pad 1.2.0 is blocked: token-farming (FG001)",
        deprecated=(("1.1.0", "flagged by Floodgate: weak signal"),),
    )
    out = pk.apply_edits(doc, edits)
    assert doc == before
    # The blocked version stays (clients that pick it must hear why), deprecated with the reason.
    assert set(out["versions"]) == {"1.0.0", "1.1.0", "1.2.0", "2.0.0-beta.1"}
    assert set(out["time"]) == {"created", "modified", "1.0.0", "1.1.0", "1.2.0", "2.0.0-beta.1"}
    assert out["dist-tags"] == {"latest": "1.1.0", "next": "2.0.0-beta.1"}
    assert out["versions"]["1.1.0"]["deprecated"] == "flagged by Floodgate: weak signal"
    assert (
        out["versions"]["1.2.0"]["deprecated"] == "left-pad 1.2.0 is blocked: token-farming (FG001)"
    )
    assert "deprecated" not in out["versions"]["1.0.0"]
    restrictions = out["policyRestrictions"]
    assert restrictions["message"] == "left-pad 1.2.0 is blocked: token-farming (FG001)"
    assert set(restrictions["versions"]) == {"1.2.0"}
    restricted = restrictions["versions"]["1.2.0"]
    assert restricted["version"] == "1.2.0"
    assert restricted["dist"]["integrity"] == doc["versions"]["1.2.0"]["dist"]["integrity"]
    assert "readme" not in restricted
    assert "_npmUser" not in restricted
    # Everything a policy does not touch is passed through.
    for key in ("_id", "_rev", "name", "readme", "maintainers", "users", "repository"):
        assert out[key] == doc[key]


ALL_FOUR = {"1.0.0", "1.1.0", "1.2.0", "1.3.0"}


@pytest.mark.parametrize(
    ("edits", "versions", "restricted"),
    [
        (Edits(hidden=frozenset({"1.0.0", "9.9.9"})), ALL_FOUR - {"1.0.0"}, None),
        (Edits(restricted=frozenset({"9.9.9"}), message="m"), ALL_FOUR, None),
        (Edits(restricted=frozenset({"1.0.0"}), message="m"), ALL_FOUR, {"1.0.0"}),
        (  # hidden wins: a removed version is not listed
            Edits(hidden=frozenset({"1.0.0"}), restricted=frozenset({"1.0.0", "1.1.0"})),
            ALL_FOUR - {"1.0.0"},
            {"1.1.0"},
        ),
        (Edits(deprecated=(("1.2.0", "old"),)), ALL_FOUR, None),
    ],
)
def test_apply_edits_table(edits: Edits, versions: set[str], restricted: set[str] | None) -> None:
    doc = packument("left-pad", sorted(ALL_FOUR))
    out = pk.apply_edits(doc, edits)
    assert set(out["versions"]) == versions
    assert set(out["time"]) == versions | {"created", "modified"}
    if restricted is None:
        assert "policyRestrictions" not in out
    else:
        assert set(out["policyRestrictions"]["versions"]) == restricted


@pytest.mark.parametrize(
    ("tags", "kept", "restricted", "served"),
    [
        # A clean version is left: tags move off the blocked one, never to a prerelease.
        ({"latest": "1.1.0"}, ["1.0.0", "1.1.0"], ["1.1.0"], {"latest": "1.0.0"}),
        # Never from a stable version to a prerelease: then it stays on the blocked one.
        ({"latest": "1.1.0", "next": "2.0.0-rc.1"}, ["1.1.0", "2.0.0-rc.1"], ["1.1.0"],
         {"latest": "1.1.0", "next": "2.0.0-rc.1"}),
        # Nothing clean: the tag stays on the blocked version, whose tarball URL says why.
        ({"latest": "1.0.0"}, ["1.0.0"], ["1.0.0"], {"latest": "1.0.0"}),
        # A tag on a hidden (not kept) version with nothing below goes.
        ({"beta": "0.1.0"}, ["1.0.0"], [], {}),
        ({"latest": "1.2.0"}, ["1.0.0", "1.2.0"], [], {"latest": "1.2.0"}),
    ],
)  # fmt: skip
def test_served_dist_tags(
    tags: dict[str, str], kept: list[str], restricted: list[str], served: dict[str, str]
) -> None:
    assert pk.served_dist_tags(tags, kept, restricted) == served


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        (
            "Floodgate blocked fg-farm@1.0.0 (policy 'default', rule 'token-farming'): a tea.xyz "
            "file. Details: floodgate why fg-farm@1.0.0",
            "Floodgate-blocked-fg-farm@1.0.0-policy-default-rule-token-farming-a-tea.xyz-file."
            "-Details-floodgate-why-fg-farm@1.0.0",
        ),
        ("@scope/pkg: bad/évil?x=1#y", "@scope-pkg-bad-vil-x-1-y"),
        ("...", "blocked"),
        ("a" * 500, "a" * 320 + "--" + "a" * 78),
    ],
)
def test_reason_slug(text: str, slug: str) -> None:
    assert pk.reason_slug(text) == slug
    assert len(slug) <= pk.MAX_SLUG


def test_blocked_versions_point_at_a_blocked_url_that_spells_the_reason() -> None:
    doc = packument("@fg/left-pad", ["1.0.0", "1.1.0"])
    package = PackageName.parse("@fg/left-pad")
    edits = Edits(
        restricted=frozenset({"1.1.0"}),
        message="all: blocked",
        blocked=(("1.1.0", "Floodgate blocked @fg/left-pad@1.1.0: spam"),),
    )
    raw = orjson.dumps(doc)
    for variant in pk.Variant:
        out = orjson.loads(pk.render(raw, package, variant, "http://fg.invalid", edits).gzip_plain)
        assert out["versions"]["1.0.0"]["dist"]["tarball"] == (
            "http://fg.invalid/@fg/left-pad/-/left-pad-1.0.0.tgz"
        )
        blocked = (
            "http://fg.invalid/-/blocked/Floodgate-blocked-@fg-left-pad@1.1.0-spam"
            "/@fg/left-pad/-/left-pad-1.1.0.tgz"
        )
        assert out["versions"]["1.1.0"]["dist"]["tarball"] == blocked
        assert out["policyRestrictions"]["versions"]["1.1.0"]["dist"]["tarball"] == blocked
        assert (
            out["versions"]["1.1.0"]["deprecated"] == "Floodgate blocked @fg/left-pad@1.1.0: spam"
        )
        assert out["dist-tags"]["latest"] == "1.0.0"
    version = pk.render_version(raw, package, "1.1.0", "http://fg.invalid", edits)
    assert version is not None
    assert orjson.loads(version)["dist"]["tarball"] == blocked


def test_deprecating_a_removed_version_does_not_bring_it_back() -> None:
    out = pk.apply_edits(
        leftpad(), Edits(hidden=frozenset({"1.0.0"}), deprecated=(("1.0.0", "bad"),))
    )
    assert "1.0.0" not in out["versions"]
    assert "1.0.0" not in out["time"]


def test_no_edits_change_nothing() -> None:
    doc = leftpad()
    assert pk.apply_edits(doc, pk.NO_EDITS) == leftpad()


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (
            Edits(hidden=frozenset({"1.0.0", "1.1.0"})),
            Edits(hidden=frozenset({"1.1.0", "1.0.0"})),
            True,
        ),
        (Edits(hidden=frozenset({"1.0.0"})), Edits(restricted=frozenset({"1.0.0"})), False),
        (
            Edits(restricted=frozenset({"1.0.0"}), message="a"),
            Edits(restricted=frozenset({"1.0.0"}), message="b"),
            False,
        ),
        (Edits(deprecated=(("1.0.0", "x"),)), Edits(deprecated=(("1.0.0", "y"),)), False),
        (Edits(), pk.NO_EDITS, True),
    ],
)
def test_edits_digest(a: Edits, b: Edits, same: bool) -> None:
    assert (a.digest == b.digest) is same


def test_empty_edits_are_falsy_with_a_fixed_digest() -> None:
    assert not Edits()
    assert Edits().digest == "-"
    assert Edits(deprecated=(("1.0.0", "x"),))
    assert Edits(hidden=frozenset({"1.0.0"})).removed == frozenset({"1.0.0"})


# -- rewrite_tarballs / proxy_tarball_url ------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "filename", "url"),
    [
        (LEFTPAD, "left-pad-1.3.0.tgz", f"{PROXY}/left-pad/-/left-pad-1.3.0.tgz"),
        (SCOPED, "widget-1.0.0.tgz", f"{PROXY}/@acme/widget/-/widget-1.0.0.tgz"),
        (LEFTPAD, "left-pad-1.3.0+build.7.tgz", f"{PROXY}/left-pad/-/left-pad-1.3.0+build.7.tgz"),
        (LEFTPAD, "left pad#1.tgz", f"{PROXY}/left-pad/-/left%20pad%231.tgz"),
    ],
)
def test_proxy_tarball_url(package: PackageName, filename: str, url: str) -> None:
    assert pk.proxy_tarball_url(PROXY, package, filename) == url


def test_rewrite_tarballs_changes_only_dist_tarball() -> None:
    doc = packument("@acme/widget", ["1.0.0", "2.0.0"])
    doc["versions"]["0.0.1-nodist"] = {"name": "@acme/widget", "version": "0.0.1-nodist"}
    before = copy.deepcopy(doc)
    out = pk.rewrite_tarballs(doc, PROXY, SCOPED)
    assert doc == before
    for version in ("1.0.0", "2.0.0"):
        new, old = out["versions"][version], doc["versions"][version]
        assert new["dist"]["tarball"] == f"{PROXY}/@acme/widget/-/widget-{version}.tgz"
        assert {**new["dist"], "tarball": None} == {**old["dist"], "tarball": None}
        assert {**new, "dist": None} == {**old, "dist": None}
    assert out["versions"]["0.0.1-nodist"] == doc["versions"]["0.0.1-nodist"]
    assert {k: v for k, v in out.items() if k != "versions"} == {
        k: v for k, v in doc.items() if k != "versions"
    }


def test_rewrite_keeps_an_upstream_file_name_that_is_not_the_default() -> None:
    m = manifest("left-pad", "1.0.0")
    m["dist"]["tarball"] = "https://registry-host.invalid/left-pad/-/leftpad-1.0.0.tgz"
    out = pk.rewrite_manifest(m, PROXY, LEFTPAD)
    assert out["dist"]["tarball"] == f"{PROXY}/left-pad/-/leftpad-1.0.0.tgz"


# -- render ------------------------------------------------------------------------------------


def test_render_full_and_abbreviated() -> None:
    upstream = raw(leftpad())
    full = pk.render(upstream, LEFTPAD, Variant.FULL, PROXY)
    abbreviated = pk.render(upstream, LEFTPAD, Variant.ABBREVIATED, PROXY)
    for rendered in (full, abbreviated):
        assert gzip.decompress(rendered.gzip) == rendered.body
        assert rendered.etag.startswith('W/"')
        assert rendered.size == len(rendered.gzip_plain) + len(rendered.gzip)
        assert rendered.gzip_only().size == len(rendered.gzip)
        assert rendered.gzip_only().with_body() == rendered
    full_doc = orjson.loads(full.gzip_plain)
    abbreviated_doc = orjson.loads(abbreviated.gzip_plain)
    assert full_doc["readme"] == leftpad()["readme"]
    assert "readme" not in abbreviated_doc
    assert abbreviated_doc["time"] == leftpad()["time"]
    for doc in (full_doc, abbreviated_doc):
        for version, m in doc["versions"].items():
            assert m["dist"]["tarball"] == f"{PROXY}/left-pad/-/left-pad-{version}.tgz"
    assert full.etag != abbreviated.etag


def test_render_is_deterministic() -> None:
    a = pk.render(raw(leftpad()), LEFTPAD, Variant.ABBREVIATED, PROXY, salt="policy-1")
    b = pk.render(raw(leftpad()), LEFTPAD, Variant.ABBREVIATED, PROXY, salt="policy-1")
    assert a == b  # body, gzip bytes (no mtime) and ETag


@pytest.mark.parametrize(
    ("variant", "base", "edits", "salt"),
    [
        (Variant.ABBREVIATED, PROXY, pk.NO_EDITS, ""),  # another representation
        (Variant.FULL, PROXY, pk.NO_EDITS, "policy-2"),  # another policy or intel version
        (Variant.FULL, "https://npm.example.com", pk.NO_EDITS, ""),  # another public URL
        (Variant.FULL, PROXY, Edits(hidden=frozenset({"1.0.0"})), ""),  # another verdict
    ],
)
def test_render_etag_changes_with_what_is_served(
    variant: Variant, base: str, edits: Edits, salt: str
) -> None:
    reference = pk.render(raw(leftpad()), LEFTPAD, Variant.FULL, PROXY)
    other = pk.render(raw(leftpad()), LEFTPAD, variant, base, edits, salt)
    assert other.etag != reference.etag


def test_render_same_body_different_salt_different_etag() -> None:
    a = pk.render(raw(leftpad()), LEFTPAD, Variant.FULL, PROXY, salt="a")
    b = pk.render(raw(leftpad()), LEFTPAD, Variant.FULL, PROXY, salt="b")
    assert a.body == b.body
    assert a.etag != b.etag


@pytest.mark.parametrize(
    ("variant", "salt", "same"),
    [
        (Variant.FULL, "", True),
        (Variant.ABBREVIATED, "", False),  # pnpm #14925: never one ETag for both
        (Variant.FULL, "policy-2", False),
    ],
)
def test_etag_for_mixes_in_variant_and_salt(variant: Variant, salt: str, same: bool) -> None:
    body = b'{"name":"left-pad"}'
    assert (pk.etag_for(body, variant, salt) == pk.etag_for(body, Variant.FULL, "")) is same


def test_render_abbreviated_with_edits_keeps_time_consistent() -> None:
    edits = Edits(hidden=frozenset({"1.3.0"}), restricted=frozenset({"1.2.0"}), message="no")
    out = orjson.loads(
        pk.render(raw(leftpad()), LEFTPAD, Variant.ABBREVIATED, PROXY, edits).gzip_plain
    )
    assert set(out["versions"]) == {"1.0.0", "1.1.0", "1.2.0", "2.0.0-beta.1"}
    # pnpm needs `time` for every served version and nothing else (pnpm #13741).
    assert set(out["time"]) - {"created", "modified"} == set(out["versions"])
    assert out["dist-tags"]["latest"] == "1.1.0"
    assert set(out["policyRestrictions"]["versions"]) == {"1.2.0"}


def test_render_rejects_bad_upstream_bytes() -> None:
    with pytest.raises(UpstreamBadResponse):
        pk.render(b"<html>", LEFTPAD, Variant.FULL, PROXY)


# -- render_version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        ("1.2.0", "1.2.0"),
        ("latest", "1.2.0"),  # latest was 1.3.0, hidden: re-pointed
        ("next", "2.0.0-beta.1"),
        ("1.1.0", "1.1.0"),
        ("1.3.0", None),  # hidden
        ("1.0.0", "1.0.0"),  # restricted: served, pointing at its blocked URL
        ("9.9.9", None),
        ("beta", None),
    ],
)
def test_render_version(spec: str, version: str | None) -> None:
    edits = Edits(
        hidden=frozenset({"1.3.0"}),
        restricted=frozenset({"1.0.0"}),
        message="blocked",
        deprecated=(("1.1.0", "please upgrade"),),
    )
    body = pk.render_version(raw(leftpad()), LEFTPAD, spec, PROXY, edits)
    if version is None:
        assert body is None
        return
    assert body is not None
    m = orjson.loads(body)
    assert m["version"] == version
    assert m["_id"] == f"left-pad@{version}"
    tarball = f"{PROXY}/left-pad/-/left-pad-{version}.tgz"
    if version == "1.0.0":
        tarball = f"{PROXY}/-/blocked/blocked/left-pad/-/left-pad-1.0.0.tgz"
    assert m["dist"]["tarball"] == tarball
    assert m["dist"]["integrity"] == leftpad()["versions"][version]["dist"]["integrity"]
    deprecated = {"1.1.0": "please upgrade", "1.0.0": "blocked"}
    assert m.get("deprecated") == deprecated.get(version)


def test_inspect_parses_and_summarizes() -> None:
    summary = pk.inspect(raw(leftpad()), LEFTPAD)
    assert summary.dist_tags == {"latest": "1.3.0", "next": "2.0.0-beta.1"}
    with pytest.raises(UpstreamBadResponse):
        pk.inspect(raw({"name": "other"}), LEFTPAD)


# -- render in one pass ------------------------------------------------------------------------


def odd_document() -> dict[str, Any]:
    """A packument with what the one-pass render must keep straight: an install script, a
    version that is already deprecated, one without `dist`, one whose `dist` is not a map, a
    malformed entry, a tarball name that needs escaping, a scoped name."""
    doc = packument(
        "@acme/widget",
        ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "2.0.0", "2.1.0"],
        tags={"latest": "2.1.0", "next": "2.0.0-rc.1", "legacy": "1.2.0"},
        manifests={
            "1.1.0": manifest("@acme/widget", "1.1.0", scripts={"postinstall": "node x.js"}),
            "1.2.0": manifest("@acme/widget", "1.2.0", extra={"deprecated": "use 2"}),
        },
    )
    versions = doc["versions"]
    versions["2.0.0"]["dist"]["tarball"] = f"{UPSTREAM}/@acme/widget/-/widget 2.0.0+b%C3%A9.tgz"
    del versions["2.0.0-rc.1"]["dist"]
    versions["1.0.0"]["dist"] = "not a map"
    versions["0.0.1"] = "malformed"
    return doc


EDITS = [
    pk.NO_EDITS,
    Edits(hidden=frozenset({"1.0.0"})),
    Edits(deprecated=(("1.1.0", "warned"), ("1.2.0", "warned too"), ("9.9.9", "absent"))),
    Edits(
        hidden=frozenset({"2.1.0"}),
        restricted=frozenset({"1.2.0", "2.0.0", "9.9.9"}),
        message="blocked, see why",
        deprecated=(("1.1.0", "warned"), ("2.0.0", "warned but blocked")),
        blocked=(("2.0.0", "Floodgate blocked @acme/widget@2.0.0: spam"),),
    ),
    Edits(restricted=frozenset({"2.1.0", "2.0.0", "1.2.0", "1.1.0", "1.0.0", "2.0.0-rc.1"})),
]


@pytest.mark.parametrize("variant", list(Variant))
@pytest.mark.parametrize("edits", EDITS)
def test_the_one_pass_render_equals_the_three_steps(variant: Variant, edits: Edits) -> None:
    package = PackageName.parse("@acme/widget")
    doc = odd_document()
    before = copy.deepcopy(doc)
    edited = pk.apply_edits(doc, edits)
    if variant is Variant.ABBREVIATED:
        edited = pk.abbreviate(edited)
    expected = orjson.dumps(pk.rewrite_tarballs(edited, PROXY, package, edits))
    served = pk.served_document(doc, package, variant, PROXY, edits)
    assert orjson.dumps(served) == expected  # same bytes: same keys, values and order
    assert doc == before  # the parsed document is never modified
    assert pk.render(raw(doc), package, variant, PROXY, edits).gzip_plain == expected


@pytest.mark.parametrize(
    "filename",
    ["left-pad-1.3.0.tgz", "x-1.0.0+build.7.tgz", "a b.tgz", "b%C3%A9.tgz", "é.tgz", "a~(b)!*.tgz"],
)
def test_proxy_tarball_url_escapes_as_quote_does(filename: str) -> None:
    from urllib.parse import quote

    url = pk.proxy_tarball_url(PROXY, LEFTPAD, filename)
    assert url == f"{PROXY}/left-pad/-/{quote(filename, safe='-._~!*()+')}"
