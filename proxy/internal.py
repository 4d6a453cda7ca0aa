"""The organization's own packages: names Floodgate never asks the public upstream for, and the
public names that imitate them (dependency confusion). Pure.

`internal_scopes` (`@acme`) and `internal_names` (`acme-utils`, `@acme/utils`) are internal: a
request for one is answered from the organization's own registry (`internal_upstream`) or from
the packages published to Floodgate itself (`proxy.hosted`), and the public upstream is never
asked, so a public package of the same name can never be installed in its place.

A public package *shadows* an internal name when it is that name's twin: the same letters and
digits once case, the scope's `@` and `/`, and the separators `-`, `_` and `.` are ignored
(`acme_utils`, `acme.utils`, `ACME-utils` and `acmeutils` all shadow `acme-utils`; `acme-utils`
shadows `@acme/utils`). The policy condition `shadows_internal: true` matches those; the shipped
policies block them. Names merely starting with the scope (`acme-client`) are not twins: that
would flag unrelated public packages.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEPARATORS = str.maketrans("", "", "-_./@")


def twin_key(name: str) -> str:
    """What two names share when one is the other's twin (pure)."""
    return name.lower().translate(_SEPARATORS)


@dataclass(frozen=True, slots=True)
class InternalNames:
    """The internal scopes and names of one configuration."""

    scopes: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, scopes: tuple[str, ...], names: tuple[str, ...]) -> InternalNames:
        return cls(frozenset(s.lower() for s in scopes), frozenset(names))

    def __bool__(self) -> bool:
        return bool(self.scopes or self.names)

    def is_internal(self, name: str) -> bool:
        """Whether `name` is the organization's own: never fetched from the upstream."""
        if name in self.names:
            return True
        if name.startswith("@"):
            return name.partition("/")[0].lower() in self.scopes
        return False

    def shadowed(self, name: str) -> str | None:
        """The internal name that the public package `name` imitates, or None."""
        if not self.names or self.is_internal(name):
            return None
        return _twins_of(self.names).get(twin_key(name))

    def describe(self) -> str:
        """The internal scopes and names, for messages ("none" when there are none)."""
        return ", ".join(sorted(self.scopes | self.names)) or "none"

    def refusal(self, name: str) -> str:
        """The 404's message for an internal name."""
        return (
            f"{name} is an internal package of this organization (internal_scopes / "
            "internal_names): Floodgate never fetches it from the public upstream, so a public "
            "package of that name cannot take its place; install it from your internal registry"
        )


_TWIN_MEMO: dict[frozenset[str], dict[str, str]] = {}


def _twins_of(names: frozenset[str]) -> dict[str, str]:
    found = _TWIN_MEMO.get(names)
    if found is None:
        found = {twin_key(n): n for n in sorted(names)}
        if len(_TWIN_MEMO) > 16:
            _TWIN_MEMO.clear()
        _TWIN_MEMO[names] = found
    return found


NO_INTERNAL = InternalNames()
