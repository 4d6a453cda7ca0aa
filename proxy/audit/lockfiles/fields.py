"""Typed access to lockfile fields: each raises `Invalid` with the key path and the spot.

Readers go through these instead of indexing, so a field of the wrong type in a hostile or
damaged lockfile is an error that names where it is, never a KeyError or TypeError.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from proxy.audit.lockfiles.documents import Invalid, KeyPath, spot


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def mapping(value: object, where: KeyPath, parent: object = None) -> Mapping[str, Any]:
    """`value` as a mapping with text keys, else `Invalid` at `where`.

    `parent` is the mapping `value` came from (as `parent[where[-1]]`): the error's spot is found
    only when there is an error, because finding a JSON key's line costs a scan.
    """
    if not isinstance(value, dict):
        at = spot(parent, where[-1]) if where else None
        raise Invalid(f"expected a mapping, got {_kind(value)}", where, at)
    for key in value:
        if not isinstance(key, str):
            raise Invalid(f"expected text keys, got {_kind(key)} {key!r}", where, spot(value, key))
    return value


def submapping(parent: Mapping[str, Any], key: str, where: KeyPath) -> Mapping[str, Any]:
    """`parent[key]` as a mapping; absent or null is empty."""
    value = parent.get(key)
    if value is None:
        return {}
    return mapping(value, (*where, key), parent)


def optional_text(parent: Mapping[str, Any], key: str, where: KeyPath) -> str | None:
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Invalid(f"expected a string, got {_kind(value)}", (*where, key), spot(parent, key))


def text(parent: Mapping[str, Any], key: str, where: KeyPath) -> str:
    """A required, non-empty string."""
    value = optional_text(parent, key, where)
    if not value:
        raise Invalid("missing (a non-empty string is required)", (*where, key), spot(parent, key))
    return value


def flag(parent: Mapping[str, Any], key: str, where: KeyPath) -> bool:
    value = parent.get(key, False)
    if isinstance(value, bool):
        return value
    raise Invalid(f"expected true or false, got {_kind(value)}", (*where, key), spot(parent, key))


def entries(
    parent: Mapping[str, Any], key: str, where: KeyPath
) -> Iterator[tuple[str, Mapping[str, Any], KeyPath]]:
    """Each `(name, entry, key path)` of the mapping of mappings at `parent[key]`."""
    items = submapping(parent, key, where)
    for name, value in items.items():
        path = (*where, key, name)
        yield name, mapping(value, path, items), path
