"""package-lock.json and npm-shrinkwrap.json: lockfileVersion 1, 2 and 3.

Versions 2 and 3 keep a `packages` map keyed by install location (`node_modules/a`,
`node_modules/a/node_modules/b`, workspace folders such as `packages/ui`); `""` is the project.
A dependency name resolves the way Node finds modules: the nearest `node_modules` folder up
from the dependent. Version 2 also carries version 1's tree for old npm clients; the `packages`
map is the truth, and the tree is read only when the map is absent.

Version 1 nests `dependencies` under each package, with `requires` naming what each needs;
aliases are written into `version` (`npm:lodash@4.17.21`), and so are git and file specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from proxy.audit.lockfiles.documents import Invalid, KeyPath, load_json, location_of, spot
from proxy.audit.lockfiles.fields import flag, mapping, optional_text, submapping, text
from proxy.audit.lockfiles.graph import Edge, EdgeKind, Graph, Node, orphan_edges
from proxy.audit.lockfiles.manifest import Manifest
from proxy.audit.lockfiles.specs import parse_alias, source_of
from proxy.audit.model import Source

SUPPORTED = (1, 2, 3)
_NODE_MODULES = "node_modules/"
# edge fields of an installed package; a project or workspace also installs its devDependencies
_PACKAGE_EDGES = (
    ("dependencies", EdgeKind.PROD),
    ("optionalDependencies", EdgeKind.OPTIONAL),
    ("peerDependencies", EdgeKind.PROD),
)
_PROJECT_EDGES = (*_PACKAGE_EDGES, ("devDependencies", EdgeKind.DEV))


def read_npm(text_: str, manifest: Manifest) -> tuple[str, Graph]:
    """The lockfile's version and dependency graph. Raises `Invalid`."""
    top = mapping(load_json(text_), ())
    version = top.get("lockfileVersion", 1)  # npm 4's shrinkwrap predates the field
    if isinstance(version, bool) or version not in SUPPORTED:
        raise Invalid(
            f"unsupported version {version!r} (supported: 1, 2, 3)",
            ("lockfileVersion",),
            spot(top, "lockfileVersion"),
        )
    name = optional_text(top, "name", ())
    if version >= 2 and "packages" in top:
        return str(version), _from_packages(submapping(top, "packages", ()), name)
    if version == 3:
        raise Invalid("missing: lockfileVersion 3 keeps its packages here", ("packages",))
    return str(version), _from_tree(top, name, manifest)


# -- lockfileVersion 2 and 3 ---------------------------------------------------------------------


def _installed(key: str) -> bool:
    return key.startswith(_NODE_MODULES) or f"/{_NODE_MODULES}" in key


def _parent(location: str) -> str:
    """The install location whose node_modules holds `location`'s package ("" at the top)."""
    cut = location.rfind(f"/{_NODE_MODULES}")
    return location[:cut] if cut >= 0 and _installed(location) else ""


def _lookup(location: str, name: str, packages: Mapping[str, Any]) -> str | None:
    """Where Node would find `name` required from `location`: nearest node_modules upwards."""
    base = location
    while True:
        candidate = f"{base}/{_NODE_MODULES}{name}" if base else f"{_NODE_MODULES}{name}"
        if candidate in packages:
            return candidate
        if not base:
            return None
        base = _parent(base)


def _edges(
    entry: Mapping[str, Any],
    location: str,
    packages: Mapping[str, Any],
    where: KeyPath,
    fields: tuple[tuple[str, EdgeKind], ...],
) -> tuple[Edge, ...]:
    edges = []
    for field, kind in fields:
        for name in submapping(entry, field, where):
            target = _lookup(location, name, packages)
            if target is not None:  # an optional or peer dependency that was not installed
                edges.append(Edge(name, target, kind))
    return tuple(edges)


def _installed_node(
    key: str, entry: Mapping[str, Any], where: KeyPath, packages: Mapping[str, Any]
) -> Node:
    folder = key.rsplit(_NODE_MODULES, 1)[1]
    if not folder:
        raise Invalid("an install location without a package name", where, location_of(entry))
    name = optional_text(entry, "name", where) or folder
    resolved = optional_text(entry, "resolved", where)
    dev, optional = flag(entry, "dev", where), flag(entry, "optional", where)
    # devOptional: a dev dependency that production installs need only as an optional one
    optional = optional or flag(entry, "devOptional", where)
    if flag(entry, "link", where):  # `resolved` is the linked folder; its entry has the edges
        return Node(
            name=name,
            version="",
            source=Source.LINK,
            dev=dev,
            optional=optional,
            resolved=resolved,
            location=location_of(entry),
        )
    return Node(
        name=name,
        version=text(entry, "version", where),
        source=source_of(resolved),
        edges=_edges(entry, key, packages, where, _PACKAGE_EDGES),
        alias=folder if folder != name else None,
        dev=dev,
        optional=optional,
        resolved=resolved,
        integrity=optional_text(entry, "integrity", where),
        location=location_of(entry),
    )


def _from_packages(packages: Mapping[str, Any], name: str | None) -> Graph:
    nodes: dict[str, Node] = {}
    folders: dict[str, tuple[Edge, ...]] = {}  # the project and workspace (or linked) folders
    for key, raw in packages.items():
        where = ("packages", key)
        entry = mapping(raw, where, packages)
        if _installed(key):
            nodes[key] = _installed_node(key, entry, where, packages)
        else:
            folders[key] = _edges(entry, key, packages, where, _PROJECT_EDGES)
            if key == "":
                name = name or optional_text(entry, "name", where)
    # a link installs its target folder's dependencies, reached through the link; the project's
    # `file:` directories are links too, but report them as the file dependencies they are
    specs = _project_specs(packages.get(""))
    for key, node in nodes.items():
        if node.source is Source.LINK:
            is_file = source_of(specs.get(key)) is Source.FILE
            source = Source.FILE if is_file else Source.LINK
            nodes[key] = replace(node, source=source, edges=folders.get(node.resolved or "", ()))
    # workspaces are linked at the top, but the project need not depend on them: reach them
    # (and folders nothing links) from the root after its own dependencies
    direct = folders.pop("", ())
    implicit = [
        Edge(key[len(_NODE_MODULES) :], key)
        for key, node in nodes.items()
        if node.source is Source.LINK and _parent(key) == "" and key.startswith(_NODE_MODULES)
    ]
    for folder, edges in folders.items():
        nodes[f"folder:{folder}"] = Node(folder, "", Source.LINK, edges=edges, reported=False)
        implicit.append(Edge(folder, f"folder:{folder}"))
    return Graph(name, (*direct, *implicit), nodes)


def _project_specs(root: object) -> dict[str, str]:
    """The project's dependency specs by install location (`node_modules/<name>`)."""
    if not isinstance(root, dict):
        return {}
    specs: dict[str, str] = {}
    for field, _ in _PROJECT_EDGES:
        deps = root.get(field)
        if isinstance(deps, dict):
            specs.update(
                (_NODE_MODULES + name, spec) for name, spec in deps.items() if isinstance(spec, str)
            )
    return specs


# -- lockfileVersion 1 ---------------------------------------------------------------------------

TreePath = tuple[str, ...]


def _tree_key(path: TreePath) -> str:
    return _NODE_MODULES + f"/{_NODE_MODULES}".join(path)


def _tree_entries(top: Mapping[str, Any]) -> dict[TreePath, tuple[Mapping[str, Any], KeyPath]]:
    """Every entry of the nested `dependencies` tree by its path of names (iteratively)."""
    found: dict[TreePath, tuple[Mapping[str, Any], KeyPath]] = {}
    stack: list[tuple[TreePath, Mapping[str, Any], KeyPath]] = [((), top, ())]
    while stack:
        path, parent, where = stack.pop()
        deps = submapping(parent, "dependencies", where)
        for dep, raw in deps.items():
            entry_where = (*where, "dependencies", dep)
            entry = mapping(raw, entry_where, deps)
            found[(*path, dep)] = (entry, entry_where)
            stack.append(((*path, dep), entry, entry_where))
    return found


def _tree_lookup(path: TreePath, name: str, found: Mapping[TreePath, object]) -> TreePath | None:
    for depth in range(len(path), -1, -1):
        candidate = (*path[:depth], name)
        if candidate in found:
            return candidate
    return None


def _tree_node(
    path: TreePath, entry: Mapping[str, Any], where: KeyPath, found: Mapping[TreePath, object]
) -> Node:
    installed_as = path[-1]
    version = text(entry, "version", where)
    resolved = optional_text(entry, "resolved", where)
    name, alias, source = installed_as, None, source_of(resolved)
    target = parse_alias(version)
    if target is not None:
        name, version = target
        alias = installed_as
    elif source_of(version) is not Source.REGISTRY:  # git+…, github:…, file:…, a tarball URL
        source, resolved, version = source_of(version), resolved or version, ""
    edges = []
    for dep in submapping(entry, "requires", where):
        found_at = _tree_lookup(path, dep, found)
        if found_at is not None:
            edges.append(Edge(dep, _tree_key(found_at)))
    return Node(
        name=name,
        version=version,
        source=source,
        edges=tuple(edges),
        alias=alias,
        dev=flag(entry, "dev", where),
        optional=flag(entry, "optional", where),
        resolved=resolved,
        integrity=optional_text(entry, "integrity", where),
        location=location_of(entry),
    )


def _from_tree(top: Mapping[str, Any], name: str | None, manifest: Manifest) -> Graph:
    found = _tree_entries(top)
    nodes = {_tree_key(path): _tree_node(path, *found[path], found) for path in found}
    edges = tuple(
        Edge(dep.name, _tree_key((dep.name,)), dep.kind)
        for dep in manifest.dependencies
        if (dep.name,) in found
    )
    return Graph(name, edges or orphan_edges(nodes), nodes)
