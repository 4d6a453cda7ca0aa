"""yarn.lock of yarn 1 (`# yarn lockfile v1`): its own syntax, and the graph it describes.

The syntax is not YAML: two-space indentation, `key value` pairs, `key:` opening a block, and
double-quoted strings with JSON escapes. A top-level block is keyed by every pattern it
satisfies (`"@babel/core@^7.0.0", "@babel/core@^7.1.0":`) and holds `version`, `resolved`,
`integrity`, `dependencies` and `optionalDependencies`, whose `name "range"` pairs select the
block keyed `name@range`. Aliases are patterns like `my-lodash@npm:lodash@^4.17.21`.

The lockfile does not say what the project itself depends on, nor lock `link:` and workspace
dependencies: those come from the package.json beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from proxy.audit.lockfiles.documents import Invalid, KeyPath, Located, spot
from proxy.audit.lockfiles.fields import optional_text, text
from proxy.audit.lockfiles.graph import Edge, EdgeKind, Graph, Node, orphan_edges
from proxy.audit.lockfiles.manifest import Manifest
from proxy.audit.lockfiles.specs import parse_alias, source_of, split_name
from proxy.audit.model import Location, Source

FORMAT_VERSION = "1"
_TOKEN = re.compile(
    r"""[ \t]*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<comment>\#.*)
      | (?P<punct>[:,])
      | (?P<word>[^\s:,"]+)
    )""",
    re.VERBOSE,
)
_EDGE_FIELDS = (("dependencies", EdgeKind.PROD), ("optionalDependencies", EdgeKind.OPTIONAL))


Token = tuple[str, str]  # (kind, text): kind is "text", ":" or ","


def _tokens(line: str, number: int, column: int) -> list[Token]:
    """A line's tokens; quoted strings are unquoted, comments dropped."""
    found: list[Token] = []
    position = 0
    while position < len(line):
        match = _TOKEN.match(line, position)
        if match is None or match.end() == position:
            rest = line[position:]
            if rest.strip():
                blank = len(rest) - len(rest.lstrip(" \t"))
                raise Invalid("cannot read this", at=Location(number, column + position + blank))
            break
        position = match.end()
        if match["string"] is not None:
            try:
                found.append(("text", json.loads(match["string"])))
            except ValueError:
                at = Location(number, column + match.start("string"))
                raise Invalid("a string with a bad escape", at=at) from None
        elif match["punct"] is not None:
            found.append((match["punct"], match["punct"]))
        elif match["word"] is not None:
            found.append(("text", match["word"]))
    return found


def _store(block: Located, key: str, value: str | Located, at: Location) -> None:
    block[key] = value
    if block.key_locations is None:
        block.key_locations = {}
    block.key_locations[key] = at


def parse_syntax(source: str) -> dict[str, Located]:
    """The top-level blocks by pattern (one shared `Located` per block). Raises `Invalid`."""
    top = Located()
    stack: list[Located] = [top]
    for number, raw in enumerate(source.splitlines(), 1):
        content = raw.lstrip(" ")
        if not content.strip() or content.startswith("#"):
            continue
        indent = len(raw) - len(content)
        at = Location(number, indent + 1)
        if content[0] == "\t" or indent % 2:
            raise Invalid("indent with two spaces per level", at=at)
        level = indent // 2
        if level >= len(stack):
            raise Invalid("indented deeper than the block it is in", at=at)
        del stack[level + 1 :]
        tokens = _tokens(content, number, indent + 1)
        kinds = [kind for kind, _ in tokens]
        if kinds and kinds[-1] == ":":  # `key:` or `pattern, pattern:` opens a block
            block = Located()
            block.location = at
            for key in _keys(tokens[:-1], at):
                _store(stack[level], key, block, at)
            stack.append(block)
        elif kinds in (["text", "text"], ["text", ":", "text"]):  # `key value`
            if level == 0:
                raise Invalid("expected a `pattern:` block at the top level", at=at)
            _store(stack[level], tokens[0][1], tokens[-1][1], at)
        else:
            raise Invalid("expected `key value` or `key:`", at=at)
    return top


def _keys(tokens: list[Token], at: Location) -> list[str]:
    """`a, b, c` → [a, b, c]."""
    keys = [text_ for kind, text_ in tokens[0::2] if kind == "text"]
    commas = [kind for kind, _ in tokens[1::2]]
    if not keys or len(keys) != len(tokens[0::2]) or any(kind != "," for kind in commas):
        raise Invalid("expected `key:` or `pattern, pattern:`", at=at)
    return keys


def read_yarn_classic(source: str, manifest: Manifest) -> tuple[str, Graph]:
    """The lockfile's version and dependency graph. Raises `Invalid`."""
    blocks = parse_syntax(source)
    keys: dict[int, str] = {}  # a block's node key: its first pattern
    for pattern, block in blocks.items():
        keys.setdefault(id(block), pattern)
    node_of = {pattern: keys[id(block)] for pattern, block in blocks.items()}
    nodes: dict[str, Node] = {}
    for pattern, block in blocks.items():
        if keys[id(block)] == pattern:
            nodes[pattern] = _node(pattern, block, node_of)
    # workspaces (yarn locks none) are links reached from the root, after its own dependencies
    members = {member.name: member for member in manifest.members if member.name}
    for name, member in members.items():
        nodes[f"workspace:{name}"] = Node(name, "", Source.LINK, resolved=member.folder)
    for name, member in members.items():
        edges = _manifest_edges(member, node_of, nodes)
        nodes[f"workspace:{name}"] = replace(nodes[f"workspace:{name}"], edges=edges)
    edges = _manifest_edges(manifest, node_of, nodes)
    implicit = tuple(Edge(name, f"workspace:{name}") for name in members)
    return FORMAT_VERSION, Graph(None, (*edges, *implicit) or orphan_edges(nodes), nodes)


def _manifest_edges(
    manifest: Manifest, node_of: Mapping[str, str], nodes: dict[str, Node]
) -> tuple[Edge, ...]:
    """The edges of a package.json's dependencies: to locked packages, to workspaces, and to
    `link:` folders (which yarn does not lock: they are added to `nodes`)."""
    edges = []
    for dep in manifest.dependencies:
        key = node_of.get(f"{dep.name}@{dep.spec}")
        if key is None and f"workspace:{dep.name}" in nodes:
            key = f"workspace:{dep.name}"
        if key is None and source_of(dep.spec) is Source.LINK:
            key = f"link:{dep.name}"
            nodes.setdefault(key, Node(dep.name, "", Source.LINK, resolved=dep.spec))
        if key is not None:
            edges.append(Edge(dep.name, key, dep.kind))
    return tuple(edges)


def _node(pattern: str, block: Mapping[str, Any], node_of: Mapping[str, str]) -> Node:
    where: KeyPath = (pattern,)
    parts = split_name(pattern)
    installed_as, spec = parts if parts else (pattern, "")
    version = text(block, "version", where)
    resolved = optional_text(block, "resolved", where)
    target = parse_alias(spec)
    name = target[0] if target else installed_as
    source = source_of(spec)
    if source is Source.REGISTRY:
        source = source_of(resolved)
    edges = []
    for field, kind in _EDGE_FIELDS:
        deps = block.get(field, {})
        if not isinstance(deps, dict):
            raise Invalid(
                "expected a block of `name range` lines", (*where, field), spot(block, field)
            )
        for dep, dep_spec in deps.items():
            if not isinstance(dep_spec, str):
                raise Invalid(
                    "expected a range, got a block", (*where, field, dep), spot(deps, dep)
                )
            key = node_of.get(f"{dep}@{dep_spec}")
            if key is not None:
                edges.append(Edge(dep, key, kind))
    return Node(
        name=name,
        version=version,
        source=source,
        edges=tuple(edges),
        alias=installed_as if name != installed_as else None,
        resolved=resolved,
        integrity=optional_text(block, "integrity", where),
        location=block.location if isinstance(block, Located) else None,
    )
