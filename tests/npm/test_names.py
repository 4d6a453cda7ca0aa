"""`PackageName.parse` and `parse_package_path` against npm's own rules and wire spellings.

The oracle for names is validate-npm-package-name's `validForOldPackages` (names that may exist
on a registry: legacy upper case, `~'!()*` and core-module names are warnings, not errors).
"""

from __future__ import annotations

import pytest

from proxy.errors import InvalidPackageName
from proxy.npm.names import PackageName, PackagePath, Target, parse_package_path

# -- PackageName.parse -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "bare"),
    [
        ("some-package", None, "some-package"),
        ("example.com", None, "example.com"),
        ("under_score", None, "under_score"),
        ("123numeric", None, "123numeric"),
        ("crazy!", None, "crazy!"),
        ("it's", None, "it's"),
        ("(paren)~*", None, "(paren)~*"),
        ("JSONStream", None, "JSONStream"),  # legacy upper case
        ("http", None, "http"),  # a core module name: a warning only
        pytest.param("a" * 214, None, "a" * 214, id="214-characters"),
        ("@npm/thingy", "npm", "thingy"),
        ("@jane/foo.js", "jane", "foo.js"),
        ("@Azure/Core-Auth", "Azure", "Core-Auth"),
        ("@types/node", "types", "node"),
        ("@scope/node_modules", "scope", "node_modules"),  # only the bare name is reserved
        # validate-npm-package-name checks a leading `_` only on the whole string (which starts
        # with `@`) and a leading `.` on the part after the slash, so these are valid.
        ("@scope/_private", "scope", "_private"),
        ("@_scope/name", "_scope", "name"),
    ],
)
def test_parse_accepts_names_a_registry_can_hold(text: str, scope: str | None, bare: str) -> None:
    name = PackageName.parse(text)
    assert (name.scope, name.bare) == (scope, bare)
    assert name.name == text
    assert str(name) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (".dot", "'.'"),
        ("..", "'.'"),
        ("_under", "'_'"),
        (" lead", "spaces"),
        ("trail ", "spaces"),
        ("x\n", "spaces"),
        ("node_modules", "reserved"),
        ("Node_Modules", "reserved"),
        ("favicon.ico", "reserved"),
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("na%me", "'%'"),
        ("a@1.0.0", "'@'"),
        ("a:b", "':'"),
        ("naïve", "'ï'"),
        ("@scope", "@scope/name"),
        ("@scope/", "empty"),
        ("@/name", "empty"),
        ("@scope/.dot", "'.'"),
        ("@scope/a/b", "'/'"),
        ("@sc ope/x", "' '"),
        pytest.param("a" * 215, "214", id="215-characters"),
    ],
)
def test_parse_rejects_invalid_names_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidPackageName) as info:
        PackageName.parse(text)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("text", "escaped", "path", "tarball"),
    [
        ("lodash", "lodash", "lodash", "lodash-4.17.21.tgz"),
        ("@babel/core", "@babel%2fcore", "@babel/core", "core-4.17.21.tgz"),
    ],
)
def test_url_spellings(text: str, escaped: str, path: str, tarball: str) -> None:
    name = PackageName.parse(text)
    assert name.escaped == escaped  # npm-package-arg: lowercase %2f, literal @
    assert name.path == path
    assert name.default_tarball_filename("4.17.21") == tarball


def test_names_are_values() -> None:
    assert PackageName.parse("@babel/core") == PackageName("babel", "core")
    assert PackageName.parse("@babel/core") != PackageName.parse("@babel/Core")
    assert len({PackageName.parse("left-pad"), PackageName.parse("left-pad")}) == 1


# -- parse_package_path ------------------------------------------------------------------------

LODASH = PackageName(None, "lodash")
CORE = PackageName("babel", "core")


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        ("/lodash", PackagePath(LODASH, Target.PACKUMENT)),
        ("/lodash/", PackagePath(LODASH, Target.PACKUMENT)),
        ("/lod%61sh", PackagePath(LODASH, Target.PACKUMENT)),
        ("/lodash/4.17.21", PackagePath(LODASH, Target.VERSION, "4.17.21")),
        ("/lodash/latest", PackagePath(LODASH, Target.VERSION, "latest")),
        ("/lodash/-/lodash-4.17.21.tgz", PackagePath(LODASH, Target.TARBALL, "lodash-4.17.21.tgz")),
        (
            "/lodash/-/lodash-1.0.0%2Bbuild.1.tgz",
            PackagePath(LODASH, Target.TARBALL, "lodash-1.0.0+build.1.tgz"),
        ),
        # Every spelling of a scoped name that clients send.
        ("/@babel%2fcore", PackagePath(CORE, Target.PACKUMENT)),
        ("/@babel%2Fcore", PackagePath(CORE, Target.PACKUMENT)),
        ("/@babel/core", PackagePath(CORE, Target.PACKUMENT)),
        ("/%40babel%2fcore", PackagePath(CORE, Target.PACKUMENT)),
        ("/@babel%2fcore/7.24.0", PackagePath(CORE, Target.VERSION, "7.24.0")),
        ("/@babel/core/next", PackagePath(CORE, Target.VERSION, "next")),
        ("/@babel/core/-/core-7.24.0.tgz", PackagePath(CORE, Target.TARBALL, "core-7.24.0.tgz")),
        ("/@babel%2fcore/-/core-7.24.0.tgz", PackagePath(CORE, Target.TARBALL, "core-7.24.0.tgz")),
    ],
)
def test_parse_package_path_accepts_wire_spellings(raw_path: str, expected: PackagePath) -> None:
    assert parse_package_path(raw_path) == expected


@pytest.mark.parametrize(
    "raw_path",
    [
        "",
        "/",
        "//lodash",
        "/lodash//",
        "/.hidden",
        "/%2e%2e",
        "/node_modules",
        "/@babel",  # scope without a name
        "/@babel%2f",
        "/@babel%252fcore",  # double-encoded: the slash never appears
        "/@babel%2fcore%2fextra",
        "/@babel/core%2f7.24.0",
        "/lodash/4.17.21/extra",
        "/lodash/4.17.21%2f..",
        "/lodash/-/notes.txt",
        "/lodash/-/.tgz",
        "/lodash/-/..tgz",
        "/lodash/-/.lodash-4.17.21.tgz",
        "/lodash/-/..%2F..%2Fetc%2Fpasswd.tgz",
        "/lodash/-/sub%2Flodash-4.17.21.tgz",
        "/lodash/-/a/b.tgz",
        "/lodash%00",
        "/lo dash",
    ],
)
def test_parse_package_path_rejects_everything_else(raw_path: str) -> None:
    with pytest.raises(InvalidPackageName):
        parse_package_path(raw_path)
