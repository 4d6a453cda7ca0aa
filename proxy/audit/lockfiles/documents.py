"""Lockfile documents: JSON and YAML loaded into mappings that know where they start.

Lockfile readers need two things the stdlib and PyYAML do not give together: the parsed data
and, for every entry, the line it starts on (SARIF results point at it). Both loaders here
return plain Python data whose mappings are `Located` dicts, and report syntax errors as
`Invalid` with the line and column; `fields` reads them with the same care.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from json.decoder import JSONObject, scanstring  # type: ignore[attr-defined]
from json.scanner import py_make_scanner  # type: ignore[attr-defined]
from typing import Any

import yaml

from proxy.audit.model import Location

try:  # libyaml's parser when PyYAML was built with it: several times faster on big lockfiles
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

KeyPath = tuple[str | int, ...]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class Invalid(Exception):
    """A spot in a lockfile that cannot be read; the caller adds the file name."""

    def __init__(self, message: str, where: KeyPath = (), at: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.at = at


class Located(dict[Any, Any]):
    """A mapping from a lockfile that remembers where its entry starts (its key, if it has one).

    `key_locations` holds where each key is: filled by the YAML loader, and for JSON found in
    the object's text (`span`) the first time an error needs it.
    """

    __slots__ = ("key_locations", "location", "span")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.location: Location | None = None
        self.key_locations: dict[Any, Location] | None = None
        self.span: tuple[_JsonText, int, int] | None = None


def location_of(value: object) -> Location | None:
    return value.location if isinstance(value, Located) else None


def spot(parent: object, key: object) -> Location | None:
    """Where `parent[key]` is: the key's line, else its value's, else the parent's."""
    if not isinstance(parent, Located):
        return None
    if parent.key_locations is None and parent.span is not None:
        parent.key_locations = parent.span[0].keys(*parent.span[1:])
    if parent.key_locations is not None and key in parent.key_locations:
        return parent.key_locations[key]
    return location_of(parent.get(key)) or parent.location


def dotted(where: KeyPath) -> str:
    """`("packages", "node_modules/qs", "version")` → `packages["node_modules/qs"].version`."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


# -- JSON --------------------------------------------------------------------------------------


class _JsonText:
    """A JSON document's text: offsets → 1-based line and column, and where an object's keys are."""

    _SPECIAL = re.compile(r'["{}\[\]]')
    _COLON = re.compile(r"[ \t\r\n]*:")

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def at(self, offset: int) -> Location:
        index = bisect.bisect_right(self.starts, offset) - 1
        return Location(index + 1, offset - self.starts[index] + 1)

    def keys(self, start: int, end: int) -> dict[Any, Location]:
        """The keys of the object spanning `text[start:end]` (from its `{`), and where each is."""
        found: dict[Any, Location] = {}
        depth = 0
        special = self._SPECIAL.search(self.text, start, end)
        while special is not None:
            char, following = special.group(), special.end()
            if char == '"':
                key, following = scanstring(self.text, following)
                if depth == 1 and self._COLON.match(self.text, following):
                    found[key] = self.at(special.start())
            else:
                depth += 1 if char in "{[" else -1
            special = self._SPECIAL.search(self.text, following, end)
        return found


def _key_start(text: str, brace: int) -> int:
    """The offset of the key whose value is the object opening at `brace`, else `brace`."""
    i = brace - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    if i < 0 or text[i] != ":":
        return brace
    i -= 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    if i < 0 or text[i] != '"':
        return brace
    # the opening quote is the nearest one before that is not escaped by an odd run of `\`
    quote = text.rfind('"', 0, i)
    while quote >= 0:
        j = quote - 1
        while j >= 0 and text[j] == "\\":
            j -= 1
        if (quote - 1 - j) % 2 == 0:
            return quote
        quote = text.rfind('"', 0, quote)
    return brace


class _LocatingDecoder(json.JSONDecoder):
    """The stdlib decoder with the pure-Python scanner, so each object can record its offset."""

    def __init__(self, document: _JsonText) -> None:
        super().__init__(object_pairs_hook=Located)
        self._document = document
        self.parse_object = self._parse_object
        self.scan_once = py_make_scanner(self)

    def _parse_object(self, s_and_end: tuple[str, int], *args: Any) -> tuple[Located, int]:
        text, end = s_and_end
        obj, after = JSONObject(s_and_end, *args)
        obj.location = self._document.at(_key_start(text, end - 1))
        obj.span = (self._document, end - 1, after)
        return obj, after


def load_json(text: str) -> Any:
    """Parse JSON text; every object is a `Located`. Raises `Invalid` with line and column."""
    try:
        return _LocatingDecoder(_JsonText(text)).decode(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"not valid JSON: {exc.msg}", at=Location(exc.lineno, exc.colno)) from None
    except RecursionError:
        raise Invalid("not valid JSON: nested too deeply") from None


# -- YAML --------------------------------------------------------------------------------------


class _YamlLoader(_BaseLoader):
    """Safe loading where every scalar but booleans and null stays text.

    Lockfiles hold versions (`1.10`, `6.0`) and hashes that YAML 1.1 would turn into floats,
    ints or dates; a lockfile reader wants the text exactly as written.
    """


_KEEP_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag in _KEEP_TAGS]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


def _mark(mark: yaml.Mark) -> Location:
    return Location(mark.line + 1, mark.column + 1)


def _construct_map(loader: _YamlLoader, node: yaml.MappingNode) -> Iterator[Located]:
    data = Located()
    data.location = _mark(node.start_mark)
    yield data
    data.update(loader.construct_mapping(node))
    data.key_locations = {}
    for key_node, value_node in node.value:
        key = loader.constructed_objects.get(key_node, key_node.value)
        if isinstance(key, str | bool) or key is None:
            data.key_locations[key] = _mark(key_node.start_mark)
        child = loader.constructed_objects.get(value_node)
        if isinstance(child, Located):
            child.location = _mark(key_node.start_mark)


_YamlLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def load_yaml(text: str, *, documents: bool = False) -> Any:
    """Parse one YAML document safely (or, with `documents`, the list of all of them); mappings
    are `Located`. Raises `Invalid` with the line and column."""
    try:
        if documents:
            return list(yaml.load_all(text, Loader=_YamlLoader))  # a safe loader
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (_YamlLoader is a safe loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "cannot parse"
        raise Invalid(f"not valid YAML: {reason}", at=_mark(mark) if mark else None) from None
    except yaml.YAMLError as exc:
        raise Invalid(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise Invalid("not valid YAML: nested too deeply") from None
