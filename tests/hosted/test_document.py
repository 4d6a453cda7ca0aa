"""The write side of the registry protocol, as pure functions over real-shaped documents."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import pytest

from proxy.errors import BadRequest, Forbidden, NotFound, RequestTooLarge
from proxy.hosted import document as d
from proxy.npm.names import PackageName
from proxy.npm.tarball import read_tarball
from tests.fakes.packages import FakeVersion, clean, make_tarball, publish_body

NAME = PackageName.parse("@acme/greeter")
MB = 1024 * 1024
T0 = "2026-12-01T10:00:00.000Z"
T1 = "2026-12-01T11:00:00.000Z"


def published(*versions: str) -> dict[str, Any]:
    """The stored document after publishing `versions` in order."""
    doc: dict[str, Any] | None = None
    for v in versions:
        pub, _ = d.parse_publication(publish_body(NAME.name, clean(v)), NAME, MB)
        doc, _ = d.apply_publish(doc, pub, NAME, T0)
    assert doc is not None
    return doc


def test_a_publish_fills_in_dist_and_the_document() -> None:
    body = publish_body(NAME.name, clean("1.0.0"))
    pub, tarball = d.parse_publication(body, NAME, MB)
    doc, changes = d.apply_publish(None, pub, NAME, T0)
    manifest = doc["versions"]["1.0.0"]
    assert manifest["dist"]["integrity"] == body["versions"]["1.0.0"]["dist"]["integrity"]
    assert manifest["dist"]["tarball"] == "floodgate-hosted:/@acme/greeter/-/greeter-1.0.0.tgz"
    assert manifest["_id"] == "@acme/greeter@1.0.0"
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    assert doc["time"] == {"created": T0, "modified": T0, "1.0.0": T0}
    assert doc["description"] == "test package @acme/greeter"
    assert [c.event for c in changes] == ["publish"]
    assert tarball == base64.b64decode(body["_attachments"]["greeter-1.0.0.tgz"]["data"])


def test_a_first_publish_under_another_tag_still_gets_latest() -> None:
    pub, _ = d.parse_publication(publish_body(NAME.name, clean("1.0.0"), ("beta",)), NAME, MB)
    doc, _ = d.apply_publish(None, pub, NAME, T0)
    assert doc["dist-tags"] == {"beta": "1.0.0", "latest": "1.0.0"}
    pub2, _ = d.parse_publication(publish_body(NAME.name, clean("2.0.0"), ("next",)), NAME, MB)
    doc2, _ = d.apply_publish(doc, pub2, NAME, T1)
    assert doc2["dist-tags"] == {"beta": "1.0.0", "latest": "1.0.0", "next": "2.0.0"}
    assert doc == published("1.0.0") | {"dist-tags": {"beta": "1.0.0", "latest": "1.0.0"}}


def edit(body: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


BODY = publish_body(NAME.name, clean("1.0.0"))
ATT = ("_attachments", "greeter-1.0.0.tgz")
HOSTILE_BODIES = [
    ("another name in the body", edit(BODY, ("name",), "@acme/other"), BadRequest, "names"),
    ("no versions", edit(BODY, ("versions",), {}), BadRequest, "exactly one version"),
    ("bad base64", edit(BODY, (*ATT, "data"), "!!not base64!!"), BadRequest, "base64"),
    ("length lies", edit(BODY, (*ATT, "length"), 3), BadRequest, "says it is 3 bytes"),
    ("no attachment data", edit(BODY, (*ATT, "data"), None), BadRequest, "no base64"),
    (
        "manifest of another version",
        edit(BODY, ("versions", "1.0.0", "version"), "1.0.1"),
        BadRequest,
        "not @acme/greeter@1.0.0",
    ),
    (
        "integrity of another tarball",
        edit(BODY, ("versions", "1.0.0", "dist", "integrity"), "sha512-" + "A" * 86 + "=="),
        BadRequest,
        "integrity does not match",
    ),
    (
        "shasum of another tarball",
        edit(BODY, ("versions", "1.0.0", "dist", "shasum"), "0" * 40),
        BadRequest,
        "sha1",
    ),
    (
        "a tag pointing elsewhere",
        edit(BODY, ("dist-tags",), {"latest": "9.9.9"}),
        BadRequest,
        "points at",
    ),
    (
        "a tag that is a version",
        edit(BODY, ("dist-tags",), {"v1.0.0": "1.0.0"}),
        BadRequest,
        "looks like a version",
    ),
    ("not semver", edit(BODY, ("versions",), {"one": {}}), BadRequest, "semver"),
]


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [row[1:] for row in HOSTILE_BODIES],
    ids=[row[0] for row in HOSTILE_BODIES],
)
def test_hostile_publish_bodies_are_refused_with_the_reason(
    body: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        d.parse_publication(body, NAME, MB)


def test_an_oversized_tarball_is_refused_before_it_is_decoded() -> None:
    big = publish_body(NAME.name, clean("1.0.0"), tarball=b"\0" * (2 * MB))
    with pytest.raises(RequestTooLarge, match="over 1 MB"):
        d.parse_publication(big, NAME, MB)


TRAVERSAL = make_tarball({"package.json": b'{"name":"@acme/greeter","version":"1.0.0"}'})
TARBALLS = [
    ("not gzip", b"just text", "not_gzip"),
    ("traversal", make_tarball({"../../etc/evil": b"x"}, prefix=""), "path_traversal"),
    ("no package.json", make_tarball({"index.js": b"1"}), "no package/package.json"),
    (
        "package.json of another package",
        make_tarball({"package.json": b'{"name":"@acme/other","version":"1.0.0"}'}),
        "'@acme/other'@'1.0.0'",
    ),
]


@pytest.mark.parametrize(
    ("tarball", "words"), [r[1:] for r in TARBALLS], ids=[r[0] for r in TARBALLS]
)
def test_a_tarball_that_is_not_this_package_is_refused(tarball: bytes, words: str) -> None:
    pub, data = d.parse_publication(
        publish_body(NAME.name, clean("1.0.0"), tarball=tarball), NAME, MB
    )
    with pytest.raises(BadRequest, match=words):
        d.check_tarball(pub, read_tarball(data))


def test_the_packed_tarball_of_the_same_version_passes() -> None:
    pub, data = d.parse_publication(BODY, NAME, MB)
    d.check_tarball(pub, read_tarball(data))
    d.check_tarball(pub, read_tarball(TRAVERSAL))


def test_a_version_is_immutable_even_after_it_is_unpublished() -> None:
    doc = published("1.0.0", "1.1.0")
    again, _ = d.parse_publication(publish_body(NAME.name, clean("1.1.0")), NAME, MB)
    with pytest.raises(
        Forbidden,
        match=re.escape("You cannot publish over the previously published versions: 1.1.0."),
    ):
        d.apply_publish(doc, again, NAME, T1)
    removed, changes = d.remove_version(doc, "1.1.0", T1)
    assert [(c.event, c.version) for c in changes] == [("unpublish", "1.1.0")]
    assert "1.1.0" not in removed["versions"]
    assert "1.1.0" in removed["time"]
    with pytest.raises(Forbidden):
        d.apply_publish(removed, again, NAME, T1)


def test_unpublishing_latest_moves_it_to_the_highest_release_left() -> None:
    doc = published("1.0.0", "1.1.0", "2.0.0-rc.1")
    assert doc["dist-tags"]["latest"] == "2.0.0-rc.1"
    left, _ = d.remove_version(doc, "2.0.0-rc.1", T1)
    assert left["dist-tags"] == {"latest": "1.1.0"}
    last, _ = d.remove_version(d.remove_version(left, "1.1.0", T1)[0], "1.0.0", T1)
    assert last["versions"] == {}
    assert last["time"]["unpublished"]["versions"] == ["1.0.0"]
    with pytest.raises(NotFound):
        d.remove_version(last, "1.0.0", T1)


def test_npm_deprecate_writes_the_document_back_with_only_deprecated_changed() -> None:
    doc = published("1.0.0", "1.1.0")
    sent = copy.deepcopy(doc)
    sent["versions"]["1.0.0"]["deprecated"] = "use 1.1.0"
    sent["versions"]["1.1.0"]["main"] = "evil.js"  # other edits are ignored
    sent["description"] = "rewritten"
    new, changes = d.apply_update(doc, sent, T1, unpublish=True)
    assert [(c.event, c.version, c.detail) for c in changes] == [
        ("deprecate", "1.0.0", "use 1.1.0")
    ]
    assert new["versions"]["1.0.0"]["deprecated"] == "use 1.1.0"
    assert new["versions"]["1.1.0"]["main"] == "index.js"
    assert new["description"] == doc["description"]
    undo = copy.deepcopy(new)
    undo["versions"]["1.0.0"]["deprecated"] = ""  # npm deprecate pkg@1.0.0 ""
    back, changes = d.apply_update(new, undo, T1, unpublish=True)
    assert "deprecated" not in back["versions"]["1.0.0"]
    assert [c.detail for c in changes] == ["undeprecated"]


def test_npm_unpublish_of_one_version_writes_the_document_back_without_it() -> None:
    doc = published("1.0.0", "1.1.0")
    sent = copy.deepcopy(doc)
    del sent["versions"]["1.1.0"]
    sent["dist-tags"] = {"latest": "1.0.0"}
    new, changes = d.apply_update(doc, sent, T1, unpublish=True)
    assert [(c.event, c.version) for c in changes] == [("unpublish", "1.1.0")]
    assert list(new["versions"]) == ["1.0.0"]
    assert new["dist-tags"] == {"latest": "1.0.0"}


def test_a_version_cannot_be_added_by_writing_the_document() -> None:
    doc = published("1.0.0")
    sent = copy.deepcopy(doc)
    sent["versions"]["6.6.6"] = dict(sent["versions"]["1.0.0"], version="6.6.6")
    with pytest.raises(
        BadRequest, match=re.escape("6.6.6: a new version is published with its tarball")
    ):
        d.apply_update(doc, sent, T1, unpublish=True)


TAGS = [
    ("beta", "1.0.0", None),
    ("latest", "1.0.0", None),
    ("v2", "1.0.0", None),
    ("1.0.0", "1.0.0", "not a valid dist-tag"),
    ("v1.0.0", "1.0.0", "looks like a version"),
    ("../x", "1.0.0", "not a valid dist-tag"),
    ("beta", "9.9.9", "is not published"),
    ("beta", 7, "is not published"),
]


@pytest.mark.parametrize(("tag", "version", "error"), TAGS)
def test_dist_tags_point_at_published_versions(
    tag: str, version: object, error: str | None
) -> None:
    doc = published("1.0.0")
    if error is None:
        new, _ = d.set_tag(doc, tag, version, T1)
        assert new["dist-tags"][tag] == version
    else:
        with pytest.raises(BadRequest, match=error):
            d.set_tag(doc, tag, version, T1)


def test_latest_cannot_be_removed_and_other_tags_can() -> None:
    doc, _ = d.set_tag(published("1.0.0"), "beta", "1.0.0", T1)
    with pytest.raises(BadRequest, match="latest tag cannot be removed"):
        d.remove_tag(doc, "latest", T1)
    new, changes = d.remove_tag(doc, "beta", T1)
    assert new["dist-tags"] == {"latest": "1.0.0"}
    assert changes[0].detail == "beta removed"
    with pytest.raises(NotFound):
        d.remove_tag(new, "beta", T1)


def test_revisions_count_up() -> None:
    assert d.next_rev(None, b"{}").startswith("1-")
    assert d.next_rev("41-abc", b"{}").startswith("42-")
    assert d.next_rev("41-abc", b"{}") != d.next_rev("41-abc", b"[]")


def test_a_farm_version_body_is_still_a_valid_publish() -> None:
    # The document is well formed: refusing farmed packages is the policy's job, not the parser's.
    farmed = publish_body(NAME.name, FakeVersion("1.0.0", files={"tea.yaml": b"x"}))
    pub, data = d.parse_publication(farmed, NAME, MB)
    d.check_tarball(pub, read_tarball(data))


def test_no_function_changes_the_stored_document() -> None:
    stored = published("1.0.0", "1.1.0")
    stored["versions"]["1.0.0"]["deprecated"] = "old"
    snapshot = copy.deepcopy(stored)
    sent = copy.deepcopy(stored)
    sent["versions"]["1.0.0"]["deprecated"] = ""
    sent["versions"]["1.1.0"]["deprecated"] = "use 2"
    del sent["versions"]["1.0.0"]
    d.apply_update(stored, sent, T1, unpublish=True)
    d.remove_version(stored, "1.1.0", T1)
    d.set_tag(stored, "beta", "1.0.0", T1)
    d.remove_tag(d.set_tag(stored, "beta", "1.0.0", T1)[0], "beta", T1)
    pub, _ = d.parse_publication(publish_body(NAME.name, clean("2.0.0")), NAME, MB)
    d.apply_publish(stored, pub, NAME, T1)
    assert stored == snapshot


CONFUSION = [
    ("the same", {"dependencies": {"a": "^1"}}, {"dependencies": {"a": "^1"}}, ""),
    ("an added dependency", {"dependencies": {"evil": "1"}}, {}, "dependencies entry evil@1"),
    ("another range", {"dependencies": {"a": "^2"}}, {"dependencies": {"a": "^1"}}, "a@^2"),
    (
        "optional also listed as a dependency (npm does this)",
        {"dependencies": {"fsevents": "^2"}, "optionalDependencies": {"fsevents": "^2"}},
        {"optionalDependencies": {"fsevents": "^2"}},
        "",
    ),
    (
        "an added install script",
        {"scripts": {"postinstall": "curl x|sh"}},
        {},
        "scripts.postinstall",
    ),
    ("npm's node-gyp default", {"scripts": {"install": "node-gyp rebuild"}}, {}, ""),
    ("a build script only in the document", {"scripts": {"build": "tsc"}}, {}, ""),
]


@pytest.mark.parametrize(
    ("document", "package_json", "found"), [r[1:] for r in CONFUSION], ids=[r[0] for r in CONFUSION]
)
def test_manifest_confusion(
    document: dict[str, Any], package_json: dict[str, Any], found: str
) -> None:
    result = d.manifest_confusion(document, package_json)
    assert (found in result) if found else result == ""


def test_a_document_with_a_dependency_the_tarball_does_not_declare_is_refused() -> None:
    body = publish_body(NAME.name, clean("1.0.0"))
    body["versions"]["1.0.0"]["dependencies"] = {"left-pad": "1.0.0"}
    pub, data = d.parse_publication(body, NAME, MB)
    with pytest.raises(BadRequest, match="manifest confusion"):
        d.check_tarball(pub, read_tarball(data))


def test_a_write_back_without_versions_or_rev_is_refused_not_read_as_remove_all() -> None:
    doc = published("1.0.0", "1.1.0")
    with pytest.raises(BadRequest, match="npm star and npm owner are not supported"):
        d.apply_update(doc, {"_id": NAME.name, "users": {"x": True}}, T1, unpublish=True)
    with pytest.raises(BadRequest, match="no _rev"):
        d.written_rev({"versions": {}}, None)
    assert d.written_rev({"_rev": "3-a"}, None) == "3-a"
    assert d.written_rev({"_rev": "3-a"}, "4-b") == "4-b"
    sent = copy.deepcopy(doc)
    del sent["versions"]["1.1.0"]
    with pytest.raises(
        BadRequest, match=re.escape("1.1.0: versions are removed with npm unpublish")
    ):
        d.apply_update(doc, sent, T1, unpublish=False)
