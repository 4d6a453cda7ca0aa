"""The dependency graph every lockfile reader produces, and the one walk that turns it into
`LockedPackage`s: shortest dependency paths, derived dev/optional flags, de-duplication, order."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from proxy.audit.model import Location, LockedPackage, Source

log = logging.getLogger(__name__)


class EdgeKind(Enum):
    PROD = "prod"
    DEV = "dev"  # a project's (or workspace's) devDependencies
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency: installed as `name` (an alias, if it differs from the target's name)."""

    name: str
    target: str  # a key of Graph.nodes
    kind: EdgeKind = EdgeKind.PROD


@dataclass(frozen=True, slots=True)
class Node:
    """One package in the lockfile. `dev`/`optional` None: derive them from the graph."""

    name: str
    version: str
    source: Source = Source.REGISTRY
    edges: tuple[Edge, ...] = ()
    alias: str | None = None  # the installed-as name when the lockfile records one
    dev: bool | None = None
    optional: bool | None = None
    resolved: str | None = None
    integrity: str | None = None
    location: Location | None = None
    reported: bool = True  # False for path-only nodes, such as workspace folders


@dataclass(frozen=True, slots=True)
class Graph:
    root: str | None  # the project name the lockfile records, if it does
    edges: tuple[Edge, ...]  # the root project's dependencies
    nodes: Mapping[str, Node]


def orphan_edges(nodes: Mapping[str, Node]) -> tuple[Edge, ...]:
    """Edges to every node no other node depends on: the best guess at the root's dependencies
    when neither the lockfile nor a package.json names them."""
    targets = {edge.target for node in nodes.values() for edge in node.edges}
    return tuple(
        Edge(node.alias or node.name, key) for key, node in nodes.items() if key not in targets
    )


def _reach(graph: Graph, follow: Callable[[Edge], bool]) -> set[str]:
    seen: set[str] = set()
    todo = [edge.target for edge in graph.edges if follow(edge)]
    while todo:
        key = todo.pop()
        node = graph.nodes.get(key)
        if node is None or key in seen:
            continue
        seen.add(key)
        todo.extend(edge.target for edge in node.edges if follow(edge))
    return seen


def shortest_paths(graph: Graph, root: str) -> dict[str, tuple[str, ...]]:
    """Each reachable node's dependency path, root first; breadth-first, so the shortest, and
    among equally short ones the first in lockfile order."""
    paths: dict[str, tuple[str, ...]] = {}
    queue: deque[tuple[Edge, tuple[str, ...]]] = deque((edge, (root,)) for edge in graph.edges)
    while queue:
        edge, parent = queue.popleft()
        node = graph.nodes.get(edge.target)
        if node is None or edge.target in paths:
            continue
        path = (*parent, edge.name)
        paths[edge.target] = path
        queue.extend((child, path) for child in node.edges if child.target not in paths)
    return paths


def _best(copies: list[tuple[LockedPackage, bool]]) -> LockedPackage:
    """One package from its copies: the shortest path among the reached ones (else among all),
    dev or optional only if every one of those copies is."""
    pool = [package for package, reached in copies if reached] or [p for p, _ in copies]
    best = min(pool, key=lambda package: (len(package.path), package.path))
    dev = all(package.dev for package in pool)
    optional = all(package.optional for package in pool)
    return replace(best, dev=dev, optional=optional)


def locked_packages(graph: Graph, root: str) -> tuple[LockedPackage, ...]:
    """The graph's reported nodes as `LockedPackage`s, one per (name, version, source).

    A node nothing reaches gets the path `(root, installed-as name)`. Where the node leaves
    `dev`/`optional` open, it is dev when only devDependencies edges reach it and optional
    when every path to it passes an optional edge. Duplicates keep the shortest path (reached
    before unreached) and are dev or optional only if every such copy is. Sorted by name, then
    version text.
    """
    paths = shortest_paths(graph, root)
    prod = _reach(graph, lambda edge: edge.kind is not EdgeKind.DEV)
    required = _reach(graph, lambda edge: edge.kind is not EdgeKind.OPTIONAL)
    copies: dict[tuple[str, str, Source], list[tuple[LockedPackage, bool]]] = {}
    for key, node in graph.nodes.items():
        if not node.reported:
            continue
        reached = key in paths
        path = paths[key] if reached else (root, node.alias or node.name)
        dev = node.dev if node.dev is not None else reached and key not in prod
        optional = node.optional if node.optional is not None else reached and key not in required
        package = LockedPackage(
            name=node.name,
            version=node.version,
            path=path,
            source=node.source,
            alias=path[-1] if path[-1] != node.name else None,
            dev=dev,
            optional=optional,
            resolved=node.resolved,
            integrity=node.integrity,
            location=node.location,
        )
        copies.setdefault((node.name, node.version, node.source), []).append((package, reached))
    unreached = sum(1 for key, node in graph.nodes.items() if node.reported and key not in paths)
    if unreached:
        log.debug("%d locked packages nothing leads to from %s", unreached, root)
    return tuple(_best(copies[identity]) for identity in sorted(copies, key=_sort_key))


def _sort_key(identity: tuple[str, str, Source]) -> tuple[str, str, str]:
    name, version, source = identity
    return (name, version, source.value)
