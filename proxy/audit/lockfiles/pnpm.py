"""pnpm-lock.yaml: lockfileVersion 6.x (pnpm 8) and 9.x (pnpm 9 and 10).

`importers` holds each workspace project (`.` is the root) with `{specifier, version}` per
dependency; a single-project 6.x file may put `dependencies` at the top instead. A dependency's
`version` is a version (`4.18.2`, with a peer suffix `18.2.0(react@18.2.0)`), an alias target
(6.x `/lodash@4.17.21`, 9.x `lodash@4.17.21`), a `link:` to a folder, or a non-registry spec
(`file:…`, a URL, 6.x `github.com/user/repo/<sha>`).

6.x `packages` is keyed `/name@version(peers)` and holds resolution, dev/optional flags and
dependencies. 9.x splits it: `packages` keyed `name@version` holds the resolution, `snapshots`
keyed `name@version(peers)` holds dependencies and the optional flag; dev is derived.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from proxy.audit.lockfiles.documents import Invalid, KeyPath, load_yaml, location_of, spot
from proxy.audit.lockfiles.fields import entries, flag, mapping, optional_text, submapping, text
from proxy.audit.lockfiles.graph import Edge, EdgeKind, Graph, Node
from proxy.audit.lockfiles.manifest import Manifest
from proxy.audit.lockfiles.specs import is_version, source_of, split_name, strip_peers
from proxy.audit.model import Location, Source

SUPPORTED = ("6", "9")  # lockfileVersion majors
_IMPORTER_EDGES = (
    ("dependencies", EdgeKind.PROD),
    ("optionalDependencies", EdgeKind.OPTIONAL),
    ("devDependencies", EdgeKind.DEV),
)
_PACKAGE_EDGES = (("dependencies", EdgeKind.PROD), ("optionalDependencies", EdgeKind.OPTIONAL))
# name, version as written, kind, and where the dependency is written
Spec = tuple[str, str, EdgeKind, Location | None]


class _Resolver:
    """Turns `(name, version)` as written in importers and snapshots into edges to node keys;
    `link:` versions become link nodes, collected in `links` as key → (name, folder)."""

    def __init__(self, keys: Mapping[str, object], prefix: str) -> None:
        self.keys = keys
        self.prefix = prefix  # 6.x keys start with "/"
        self.links: dict[str, tuple[str, str, Location | None]] = {}

    def edges(self, specs: list[Spec], folder: str) -> tuple[Edge, ...]:
        found = (self.edge(*spec, folder) for spec in specs)
        return tuple(edge for edge in found if edge is not None)

    def edge(
        self, name: str, version: str, kind: EdgeKind, at: Location | None, folder: str
    ) -> Edge | None:
        if version.startswith("link:"):
            target = posixpath.normpath(posixpath.join(folder, version[len("link:") :]))
            key = f"link:{name}:{target}"
            self.links.setdefault(key, (name, target, at))
            return Edge(name, key, kind)
        version = version.removeprefix("npm:")
        for key in (f"{self.prefix}{name}@{version}", version, f"{self.prefix}{version}"):
            if key in self.keys:
                return Edge(name, key, kind)
        return None  # an optional dependency skipped on this platform, or a stale entry


def read_pnpm(text_: str, manifest: Manifest) -> tuple[str, Graph]:
    """The lockfile's version and dependency graph. Raises `Invalid`."""
    documents = load_yaml(text_, documents=True)
    # pnpm 10 may write an environment lockfile as a first document; the project's comes last
    top = mapping(documents[-1] if documents else None, ())
    raw = top.get("lockfileVersion")
    major = raw.split(".", 1)[0] if isinstance(raw, str) else None
    if major not in SUPPORTED:
        raise Invalid(
            f"unsupported version {raw!r} (supported: 6.x, 9.x)",
            ("lockfileVersion",),
            spot(top, "lockfileVersion"),
        )
    nodes, specs = _v9_nodes(top) if major == "9" else _v6_nodes(top)
    resolver = _Resolver(nodes, "" if major == "9" else "/")
    for key, node_specs in specs.items():
        nodes[key] = replace(nodes[key], edges=resolver.edges(node_specs, "."))
    importers = {folder: resolver.edges(found, folder) for folder, found in _importers(top)}
    for key, (name, folder, at) in resolver.links.items():
        edges = importers.get(folder, ())
        nodes[key] = Node(name, "", Source.LINK, edges, resolved=f"link:{folder}", location=at)
    # every workspace project is reached from the root, after the root's own dependencies
    implicit = []
    for folder, edges in importers.items():
        if folder != ".":
            nodes[f"importer:{folder}"] = Node(folder, "", Source.LINK, edges, reported=False)
            implicit.append(Edge(folder, f"importer:{folder}"))
    return str(raw), Graph(None, (*importers.get(".", ()), *implicit), nodes)


def _importers(top: Mapping[str, Any]) -> Iterator[tuple[str, list[Spec]]]:
    if "importers" not in top:  # a single project's 6.x lockfile
        yield ".", _importer_specs(top, ())
        return
    for folder, entry, where in entries(top, "importers", ()):
        yield posixpath.normpath(folder), _importer_specs(entry, where)


def _importer_specs(entry: Mapping[str, Any], where: KeyPath) -> list[Spec]:
    found: list[Spec] = []
    for field, kind in _IMPORTER_EDGES:
        deps = submapping(entry, field, where)
        for name, value in deps.items():
            dep_where = (*where, field, name)
            at = spot(deps, name)
            if isinstance(value, str):  # the 5.x shape, seen in hand-edited files
                found.append((name, value, kind, at))
            else:
                dep = mapping(value, dep_where, deps)
                found.append((name, text(dep, "version", dep_where), kind, at))
    return found


def _package_specs(entry: Mapping[str, Any], where: KeyPath) -> list[Spec]:
    found: list[Spec] = []
    for field, kind in _PACKAGE_EDGES:
        deps = submapping(entry, field, where)
        for name, value in deps.items():
            if not isinstance(value, str):
                raise Invalid("expected a version string", (*where, field, name), spot(deps, name))
            found.append((name, value, kind, spot(deps, name)))
    return found


def _v6_nodes(top: Mapping[str, Any]) -> tuple[dict[str, Node], dict[str, list[Spec]]]:
    nodes: dict[str, Node] = {}
    specs: dict[str, list[Spec]] = {}
    for key, entry, where in entries(top, "packages", ()):
        # `dev` absent: both a dev and a production dependency; derive it from the graph
        dev = None if entry.get("dev") is None else flag(entry, "dev", where)
        nodes[key] = _node(key, entry, where, dev=dev, optional=flag(entry, "optional", where))
        specs[key] = _package_specs(entry, where)
    return nodes, specs


def _v9_nodes(top: Mapping[str, Any]) -> tuple[dict[str, Node], dict[str, list[Spec]]]:
    packages = {key: (entry, where) for key, entry, where in entries(top, "packages", ())}
    nodes: dict[str, Node] = {}
    specs: dict[str, list[Spec]] = {}
    described: set[str] = set()
    for key, snapshot, where in entries(top, "snapshots", ()):
        base = _base_key(key)
        described.add(base)
        entry, entry_where = packages.get(base, (snapshot, where))
        optional = flag(snapshot, "optional", where)
        node = _node(key, entry, entry_where, dev=None, optional=optional)
        nodes[key] = replace(node, location=node.location or location_of(snapshot))
        specs[key] = _package_specs(snapshot, where)
    for key, (entry, where) in packages.items():
        if key not in described:  # no snapshot: nothing installs it, but it is locked
            nodes[key] = _node(key, entry, where, dev=None, optional=False)
    return nodes, specs


def _base_key(key: str) -> str:
    """A 9.x snapshot key without its peer suffix: the key of its `packages` entry."""
    parts = split_name(key)
    return f"{parts[0]}@{strip_peers(parts[1])}" if parts else key


def _node(
    key: str, entry: Mapping[str, Any], where: KeyPath, *, dev: bool | None, optional: bool
) -> Node:
    """A package from its key (`/name@1.0.0(peers)`, `name@1.0.0`, `name@file:…`) and entry;
    non-registry entries record `name` and `version` themselves."""
    stem = key.removeprefix("/")
    parts = split_name(stem)
    key_name, key_version = (parts[0], strip_peers(parts[1])) if parts else (None, "")
    name = optional_text(entry, "name", where) or key_name
    if not name:
        raise Invalid("no package name in the key, and no `name` field", where, spot(entry, "name"))
    resolution = submapping(entry, "resolution", where)
    source, resolved = _source(key_version or stem, resolution, (*where, "resolution"))
    version = optional_text(entry, "version", where) or (
        key_version if is_version(key_version) else ""
    )
    if source is Source.REGISTRY and not version:
        raise Invalid("no version in the key, and no `version` field", where, location_of(entry))
    return Node(
        name=name,
        version=version,
        source=source,
        dev=dev,
        optional=optional,
        resolved=resolved,
        integrity=optional_text(resolution, "integrity", (*where, "resolution")),
        location=location_of(entry),
    )


def _source(spec: str, resolution: Mapping[str, Any], where: KeyPath) -> tuple[Source, str | None]:
    """Where the package comes from, and its `resolved` text, from its resolution and key."""
    kind = optional_text(resolution, "type", where)
    if kind == "git":
        repo = text(resolution, "repo", where)
        commit = optional_text(resolution, "commit", where)
        return Source.GIT, f"{repo}#{commit}" if commit else repo
    if kind == "directory":
        return Source.FILE, f"file:{text(resolution, 'directory', where)}"
    tarball = optional_text(resolution, "tarball", where)
    if tarball:
        return source_of(tarball), tarball
    source = source_of(spec)
    return source, None if source is Source.REGISTRY else spec
