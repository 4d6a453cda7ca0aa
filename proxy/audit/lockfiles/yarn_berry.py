"""yarn.lock of yarn 2 and later ("berry"): YAML with a `__metadata` entry.

Entries are keyed by the descriptors they satisfy (`"lodash@npm:^4.17.20, lodash@npm:^4.17.21"`)
and hold `version`, `resolution` (`name@<protocol>:<reference>`, always the real name, so an
alias `my-lodash@npm:lodash@^4` resolves to `lodash@npm:4.17.21`), `dependencies` (`name:
range`, selecting the entry keyed `name@range`), `dependenciesMeta` (optional flags),
`checksum`, `languageName` and `linkType`. Workspaces are entries resolving to
`name@workspace:<folder>`; `workspace:.` is the project, whose dependencies are the root's.

Protocols: `npm:` is the registry. `patch:` wraps another resolution
(`fsevents@patch:fsevents@npm%3A2.3.3#~builtin<compat/fsevents>::…`): the package is judged by
what it wraps, so a patched npm package is a registry package (the patch changes its files,
not which published version it is); `resolved` keeps the whole patch resolution. `workspace:`,
`link:` and `portal:` are links, `file:` is file, git URLs and `#commit=` references are git,
and anything else (`https:` tarballs, `exec:`) is other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from proxy.audit.lockfiles.documents import Invalid, KeyPath, load_yaml, location_of, spot
from proxy.audit.lockfiles.fields import mapping, submapping, text
from proxy.audit.lockfiles.graph import Edge, EdgeKind, Graph, Node, orphan_edges
from proxy.audit.lockfiles.manifest import Manifest
from proxy.audit.lockfiles.specs import source_of, split_name
from proxy.audit.model import Source

_URI_SAFE = "!*'()"  # what JavaScript's encodeURIComponent leaves as is, beyond quote()'s
_PATCH_DEPTH = 4  # patches of patches: a hostile file cannot nest them without limit


def reference_source(reference: str, depth: int = 0) -> Source:
    """Where a package with this resolution reference (the text after `name@`) comes from."""
    protocol = reference.split(":", 1)[0] + ":" if ":" in reference else ""
    if protocol == "npm:":
        return Source.REGISTRY
    if protocol == "patch:" and depth < _PATCH_DEPTH:
        inner = split_name(unquote(reference[len("patch:") :].split("#", 1)[0]))
        return reference_source(inner[1], depth + 1) if inner else Source.OTHER
    if protocol in ("workspace:", "link:", "portal:"):
        return Source.LINK
    if protocol == "file:":
        return Source.FILE
    if "#commit=" in reference or reference.split("#", 1)[0].endswith(".git"):
        return Source.GIT
    source = source_of(reference)
    return Source.OTHER if source is Source.REGISTRY else source  # berry ranges carry protocols


def read_yarn_berry(source: str, manifest: Manifest) -> tuple[str, Graph]:
    """The lockfile's metadata version and dependency graph. Raises `Invalid`."""
    top = mapping(load_yaml(source), ())
    meta = submapping(top, "__metadata", ())
    version = meta.get("version")
    if not isinstance(version, str) or not version:
        raise Invalid("missing lockfile version", ("__metadata", "version"), spot(meta, "version"))
    node_of = _descriptors(top)
    nodes: dict[str, Node] = {}
    root: tuple[str, tuple[Edge, ...]] | None = None  # the project's name and dependencies
    for key, raw in top.items():
        if key == "__metadata":
            continue
        where: KeyPath = (key,)
        entry = mapping(raw, where, top)
        node = _node(key, entry, where, node_of)
        if node.resolved == f"{node.name}@workspace:.":
            root = node.name, node.edges
        else:
            nodes[key] = node
    if root is None:  # not written by yarn; fall back on the manifest, then on guessing
        edges = tuple(
            Edge(dep.name, node_of[f"{dep.name}@{dep.spec}"], dep.kind)
            for dep in manifest.dependencies
            if f"{dep.name}@{dep.spec}" in node_of
        )
        return version, Graph(None, edges or orphan_edges(nodes), nodes)
    # the lockfile does not tell dependencies from devDependencies; the manifest does
    direct = tuple(Edge(edge.name, edge.target, _root_kind(edge, manifest)) for edge in root[1])
    implicit = tuple(
        Edge(node.name, key)
        for key, node in nodes.items()
        if node.resolved and "@workspace:" in node.resolved
    )
    return version, Graph(root[0], (*direct, *implicit), nodes)


def _descriptors(top: Mapping[str, Any]) -> dict[str, str]:
    """Each descriptor (`name@range`) → the key of its entry.

    Yarn binds relative `file:`, `link:` and `portal:` descriptors to their parent
    (`local@file:lib::locator=app%40workspace%3A.`); the unbound form is kept as a fallback.
    """
    descriptors = [
        (descriptor.strip(), key)
        for key in top
        if key != "__metadata"
        for descriptor in key.split(",")
    ]
    node_of: dict[str, str] = {}
    for descriptor, key in descriptors:
        node_of.setdefault(descriptor, key)
    for descriptor, key in descriptors:
        node_of.setdefault(descriptor.split("::", 1)[0], key)
    return node_of


def _root_kind(edge: Edge, manifest: Manifest) -> EdgeKind:
    if edge.kind is EdgeKind.OPTIONAL:
        return edge.kind
    return manifest.kind_of(edge.name) or edge.kind


def _node(key: str, entry: Mapping[str, Any], where: KeyPath, node_of: Mapping[str, str]) -> Node:
    resolution = text(entry, "resolution", where)
    parts = split_name(resolution)
    if parts is None or not parts[1]:
        raise Invalid(
            f"{resolution!r} is not `name@reference`",
            (*where, "resolution"),
            spot(entry, "resolution"),
        )
    name, reference = parts
    source = reference_source(reference)
    installed_as = (split_name(key.split(",", 1)[0].strip()) or (name, ""))[0]
    return Node(
        name=name,
        # a workspace's `0.0.0-use.local` is no version anyone could look up
        version="" if source is Source.LINK else text(entry, "version", where),
        source=source,
        edges=_edges(entry, where, node_of, resolution),
        alias=installed_as if installed_as != name else None,
        # `checksum` is the hash of yarn's zip archive, not the tarball's SRI integrity
        resolved=resolution,
        location=location_of(entry),
    )


def _edges(
    entry: Mapping[str, Any], where: KeyPath, node_of: Mapping[str, str], locator: str
) -> tuple[Edge, ...]:
    """The entry's dependencies; `locator` is its resolution, which binds relative ones."""
    binding = f"::locator={quote(locator, safe=_URI_SAFE)}"
    meta = submapping(entry, "dependenciesMeta", where)
    edges = []
    deps = submapping(entry, "dependencies", where)
    for dep, spec in deps.items():
        if not isinstance(spec, str):
            raise Invalid("expected a range", (*where, "dependencies", dep), spot(deps, dep))
        # yarn 2 (lockfile 4) wrote `^1.0.0` where later versions write `npm:^1.0.0`
        target = (
            node_of.get(f"{dep}@{spec}{binding}")
            or node_of.get(f"{dep}@{spec}")
            or node_of.get(f"{dep}@npm:{spec}")
        )
        if target is not None:
            dep_meta = meta.get(dep)
            optional = isinstance(dep_meta, dict) and dep_meta.get("optional") is True
            edges.append(Edge(dep, target, EdgeKind.OPTIONAL if optional else EdgeKind.PROD))
    return tuple(edges)
