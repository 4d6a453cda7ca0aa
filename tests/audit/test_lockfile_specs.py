"""Dependency specs and the shared graph walk, as tables with positive and negative rows."""

from __future__ import annotations

import pytest

from proxy.audit.lockfiles.graph import Edge, EdgeKind, Graph, Node, locked_packages
from proxy.audit.lockfiles.manifest import Dependency, Manifest, parse_manifest
from proxy.audit.lockfiles.specs import is_registry_tarball, parse_alias, source_of, split_name
from proxy.audit.lockfiles.yarn_berry import reference_source
from proxy.audit.model import Source

SOURCES = [
    # registry: nothing, versions, ranges, aliases, registry tarballs on any host
    (None, Source.REGISTRY),
    ("", Source.REGISTRY),
    ("4.17.21", Source.REGISTRY),
    ("^4.17.21", Source.REGISTRY),
    (">=1.0.0 <2", Source.REGISTRY),
    ("latest", Source.REGISTRY),
    ("npm:lodash@^4.17.21", Source.REGISTRY),
    ("https://registry-host.invalid/lodash/-/lodash-4.17.21.tgz", Source.REGISTRY),
    ("https://yarn-registry-host.invalid/@babel/core/-/core-7.24.0.tgz#8a1b2c", Source.REGISTRY),
    ("https://npm.corp.example/repository/npm/@acme/ui/-/ui-1.0.0.tgz", Source.REGISTRY),
    # git: URLs, hosted shorthands, pnpm 6 keys, GitHub and GitLab archives
    ("git+https://github.com/acme/x.git#0123abc", Source.GIT),
    ("git+ssh://git@github.com/acme/x.git#0123abc", Source.GIT),
    ("git://github.com/acme/x.git", Source.GIT),
    ("github:acme/x#0123abc", Source.GIT),
    ("gitlab:acme/x", Source.GIT),
    ("bitbucket:acme/x", Source.GIT),
    ("acme/x#semver:^1.0.0", Source.GIT),
    ("github.com/acme/x/0123abc", Source.GIT),
    ("https://codeload.github.com/acme/x/tar.gz/0123abc", Source.GIT),
    ("https://gitlab.com/acme/x/-/archive/0123abc/x-0123abc.tar.gz", Source.GIT),
    ("https://github.com/acme/x.git#commit=0123abc", Source.GIT),
    # file and link
    ("file:../local-lib", Source.FILE),
    ("file:vendor/local-lib-1.0.0.tgz", Source.FILE),
    ("../local-lib", Source.FILE),
    ("./vendor/x.tgz", Source.FILE),
    ("link:packages/ui", Source.LINK),
    ("workspace:*", Source.LINK),
    ("portal:../ui", Source.LINK),
    # other: tarballs that are not a registry's, unknown protocols
    ("https://example.com/downloads/x-1.0.0.tgz", Source.OTHER),
    ("https://registry-host.invalid/lodash/-/lodash-4.17.21.zip", Source.OTHER),
    ("ftp://example.com/x/-/x-1.0.0.tgz", Source.OTHER),
    ("exec:./generate.js", Source.OTHER),
]


@pytest.mark.parametrize(("spec", "source"), SOURCES)
def test_source_of(spec: str | None, source: Source) -> None:
    assert source_of(spec) is source


@pytest.mark.parametrize(
    ("url", "registry"),
    [
        ("https://registry-host.invalid/qs/-/qs-6.11.0.tgz", True),
        ("http://localhost:4873/qs/-/qs-6.11.0.tgz", True),
        ("https://registry-host.invalid/qs", False),
        ("https://example.com/qs-6.11.0.tgz", False),
        ("file:qs/-/qs-6.11.0.tgz", False),
        ("https://[broken/qs/-/qs.tgz", False),
    ],
)
def test_is_registry_tarball(url: str, registry: bool) -> None:
    assert is_registry_tarball(url) is registry


@pytest.mark.parametrize(
    ("spec", "parts"),
    [
        ("lodash@^4.17.21", ("lodash", "^4.17.21")),
        ("@babel/core@7.24.0", ("@babel/core", "7.24.0")),
        ("my-lodash@npm:lodash@^4", ("my-lodash", "npm:lodash@^4")),
        ("x@git+ssh://git@github.com/a/x.git", ("x", "git+ssh://git@github.com/a/x.git")),
        ("react-dom@18.2.0(react@18.2.0)", ("react-dom", "18.2.0(react@18.2.0)")),
        ("left-pad@", ("left-pad", "")),
        ("lodash", None),
        ("@babel/core", None),
        ("", None),
    ],
)
def test_split_name(spec: str, parts: tuple[str, str] | None) -> None:
    assert split_name(spec) == parts


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        ("npm:lodash@4.17.21", ("lodash", "4.17.21")),
        ("npm:@scope/pkg@^1.0.0", ("@scope/pkg", "^1.0.0")),
        ("npm:lodash", ("lodash", "")),
        ("npm:", None),
        ("npm:@", None),
        ("4.17.21", None),
        ("lodash@4.17.21", None),
    ],
)
def test_parse_alias(spec: str, target: tuple[str, str] | None) -> None:
    assert parse_alias(spec) == target


@pytest.mark.parametrize(
    ("reference", "source"),
    [
        ("npm:4.17.21", Source.REGISTRY),
        ("npm:4.17.21::__archiveUrl=https%3A%2F%2Fnpm.corp.example%2Fx.tgz", Source.REGISTRY),
        # a patched npm package is judged as the npm package it patches
        (
            "patch:fsevents@npm%3A2.3.3#optional!builtin<compat/fsevents>::version=2.3.3",
            Source.REGISTRY,
        ),
        ("patch:x@https%3A%2F%2Fgithub.com%2Fa%2Fx.git%23commit%3Dabc#./x.patch", Source.GIT),
        ("patch:x@file%3A../x#./x.patch", Source.FILE),
        ("patch:nothing#./x.patch", Source.OTHER),
        ("workspace:.", Source.LINK),
        ("workspace:packages/ui", Source.LINK),
        ("link:../ui::locator=app%40workspace%3A.", Source.LINK),
        ("portal:../ui::locator=app%40workspace%3A.", Source.LINK),
        ("file:vendor/x#vendor/x::hash=4a1f0e", Source.FILE),
        ("https://github.com/acme/x.git#commit=0123abc", Source.GIT),
        ("git+ssh://git@github.com/acme/x.git#commit=0123abc", Source.GIT),
        ("https://example.com/x-1.0.0.tgz", Source.OTHER),
        ("exec:./build.js", Source.OTHER),
        ("1.0.0", Source.OTHER),  # berry references always carry a protocol
    ],
)
def test_berry_reference_source(reference: str, source: Source) -> None:
    assert reference_source(reference) is source


def test_patches_nested_without_end_are_other() -> None:
    reference = "npm:1.0.0"
    for _ in range(10):
        reference = "patch:x@" + reference.replace("%", "%25").replace(":", "%3A") + "#p"
    assert reference_source(reference) is Source.OTHER


# -- package.json ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "manifest"),
    [
        ('{"name": "app"}', Manifest("app")),
        (
            '{"dependencies": {"a": "^1", "b": "^2"}, "devDependencies": {"a": "^1", "c": "*"},'
            ' "optionalDependencies": {"b": "^2"}}',
            Manifest(
                None,
                (
                    Dependency("a", "^1", EdgeKind.PROD),
                    Dependency("b", "^2", EdgeKind.OPTIONAL),
                    Dependency("c", "*", EdgeKind.DEV),
                ),
            ),
        ),
        ('{"name": 7, "dependencies": ["a"], "devDependencies": {"a": 1}}', Manifest()),
        ('{"name": ""}', Manifest()),
        ("[]", Manifest()),
        ("{not json", Manifest()),
        ("[" * 100_000, Manifest()),
    ],
)
def test_parse_manifest_is_lenient(text: str, manifest: Manifest) -> None:
    assert parse_manifest(text) == manifest


# -- the graph walk --------------------------------------------------------------------------------


def _graph(edges: tuple[Edge, ...], **nodes: Node) -> Graph:
    return Graph("app", edges, nodes)


def _summary(graph: Graph) -> list[tuple[str, str, tuple[str, ...], bool, bool]]:
    return [(p.name, p.version, p.path, p.dev, p.optional) for p in locked_packages(graph, "app")]


def test_duplicates_keep_the_shortest_path_and_merge_flags() -> None:
    graph = _graph(
        (Edge("a", "a"), Edge("d", "d", EdgeKind.DEV)),
        a=Node("a", "1.0.0", edges=(Edge("b", "b"),)),
        b=Node("b", "1.0.0", edges=(Edge("qs", "qs-deep"),)),
        d=Node("d", "1.0.0", edges=(Edge("qs", "qs-dev"),)),
        **{"qs-deep": Node("qs", "6.11.0"), "qs-dev": Node("qs", "6.11.0")},
    )
    assert _summary(graph) == [
        ("a", "1.0.0", ("app", "a"), False, False),
        ("b", "1.0.0", ("app", "a", "b"), False, False),
        ("d", "1.0.0", ("app", "d"), True, False),
        # one qs: the path through the dev dependency is shorter; a prod copy makes it prod
        ("qs", "6.11.0", ("app", "d", "qs"), False, False),
    ]


def test_same_name_and_version_from_different_sources_stay_apart() -> None:
    graph = _graph(
        (Edge("x", "reg"), Edge("y", "git")),
        reg=Node("x", "1.0.0"),
        git=Node("x", "1.0.0", Source.GIT, alias="y"),
    )
    assert [(p.spec, p.source, p.alias) for p in locked_packages(graph, "app")] == [
        ("x@1.0.0", Source.GIT, "y"),  # sorted by name, version, then source
        ("x@1.0.0", Source.REGISTRY, None),
    ]


def test_unreached_packages_hang_off_the_root_under_their_installed_name() -> None:
    graph = _graph(
        (Edge("a", "a"),),
        a=Node("a", "1.0.0"),
        orphan=Node("lodash", "4.17.21", alias="my-lodash"),
        reached_too=Node("b", "1.0.0"),
        hidden=Node("folder", "", Source.LINK, edges=(Edge("b", "reached_too"),), reported=False),
    )
    packages = {p.spec: p for p in locked_packages(graph, "app")}
    assert packages["lodash@4.17.21"].path == ("app", "my-lodash")
    assert packages["lodash@4.17.21"].alias == "my-lodash"
    assert packages["b@1.0.0"].path == ("app", "b")  # nothing reaches the folder either
    assert "folder" not in {p.name for p in packages.values()}


def test_derived_flags_follow_every_path() -> None:
    graph = _graph(
        (Edge("p", "p"), Edge("o", "o", EdgeKind.OPTIONAL), Edge("d", "d", EdgeKind.DEV)),
        p=Node("p", "1", edges=(Edge("shared", "shared"), Edge("opt", "opt", EdgeKind.OPTIONAL))),
        o=Node("o", "1", edges=(Edge("only-opt", "only-opt"),)),
        d=Node("d", "1", edges=(Edge("shared", "shared"), Edge("only-dev", "only-dev"))),
        shared=Node("shared", "1"),
        opt=Node("opt", "1"),
        **{"only-opt": Node("only-opt", "1"), "only-dev": Node("only-dev", "1")},
        recorded=Node("recorded", "1", dev=True, optional=True),
    )
    flags = {p.name: (p.dev, p.optional) for p in locked_packages(graph, "app")}
    assert flags == {
        "p": (False, False),
        "o": (False, True),
        "d": (True, False),
        "shared": (False, False),
        "opt": (False, True),
        "only-opt": (False, True),
        "only-dev": (True, False),
        "recorded": (True, True),  # a node's own flags win over the graph's
    }


def test_cycles_and_dangling_edges_are_harmless() -> None:
    graph = _graph(
        (Edge("a", "a"), Edge("gone", "missing")),
        a=Node("a", "1", edges=(Edge("b", "b"),)),
        b=Node("b", "1", edges=(Edge("a", "a"), Edge("b", "b"))),
    )
    assert [p.path for p in locked_packages(graph, "app")] == [("app", "a"), ("app", "a", "b")]


def test_ties_go_to_the_first_path_in_lockfile_order() -> None:
    graph = _graph(
        (Edge("z", "z"), Edge("a", "a")),
        z=Node("z", "1", edges=(Edge("x", "x"),)),
        a=Node("a", "1", edges=(Edge("x", "x"),)),
        x=Node("x", "1"),
    )
    assert {p.name: p.path for p in locked_packages(graph, "app")}["x"] == ("app", "z", "x")
