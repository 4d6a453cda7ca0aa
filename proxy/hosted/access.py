"""Who may read and who may change the packages Floodgate hosts (pure).

Rules come from settings, keyed by a package name (`acme-utils`), a scope (`@acme`) or `*`
(every hosted name); the most specific key wins:

- `internal_readers`: the groups that may install a hosted package. A scope without an entry
  may be read by every token holder. Anonymous callers may read only with
  `internal_anonymous_read`, and only where no rule names groups (internal code is not for
  anyone who can reach the port).
- `internal_publishers`: the groups that may publish, deprecate, tag and unpublish (among
  those that may read it: no group changes what it may not read). A scope without an entry
  may be changed by the admin groups only; admin groups may always.
- Unpublishing: a publisher may unpublish a version within `unpublish_hours` of its publish
  (72, as npm); after that only an admin group may, since others may depend on it by now.

Refusals say which groups may, so the person refused knows whom to ask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from proxy.errors import Forbidden, Unauthenticated
from proxy.identity import Identity
from proxy.npm.names import PackageName

ANY_TOKEN = "*"  # noqa: S105 (a wildcard group, not a secret)


def groups_of(text: str) -> frozenset[str]:
    """`developers+ci` or `developers ci` as a set of groups (pure)."""
    return frozenset(g for g in text.replace("+", " ").split() if g)


def _rule(rules: Iterable[tuple[str, frozenset[str]]], name: PackageName) -> frozenset[str] | None:
    found = dict(rules)
    for key in (name.name, f"@{name.scope}" if name.scope else None, ANY_TOKEN):
        if key is not None and key in found:
            return found[key]
    return None


@dataclass(frozen=True, slots=True)
class HostedAccess:
    readers: tuple[tuple[str, frozenset[str]], ...] = ()
    publishers: tuple[tuple[str, frozenset[str]], ...] = ()
    anonymous_read: bool = False
    admin_groups: frozenset[str] = frozenset({"admin"})
    unpublish_hours: float = 72.0

    @classmethod
    def of(
        cls,
        readers: Iterable[tuple[str, str]],
        publishers: Iterable[tuple[str, str]],
        *,
        anonymous_read: bool,
        admin_groups: Iterable[str],
        unpublish_hours: float,
    ) -> HostedAccess:
        return cls(
            tuple((k, groups_of(v)) for k, v in readers),
            tuple((k, groups_of(v)) for k, v in publishers),
            anonymous_read,
            frozenset(admin_groups),
            unpublish_hours,
        )

    def _admin(self, who: Identity) -> bool:
        return who.group is not None and who.group in self.admin_groups

    def check_read(self, who: Identity, name: PackageName) -> None:
        """Raise Unauthenticated or Forbidden unless `who` may install `name`."""
        allowed = _rule(self.readers, name)
        if who.anonymous:
            # Anonymous reads, where allowed, never reach past a rule naming groups.
            if self.anonymous_read and (allowed is None or ANY_TOKEN in allowed):
                return
            raise Unauthenticated(
                f"{name.name} is an internal package: reading it needs a Floodgate token"
            )
        if allowed is None or ANY_TOKEN in allowed or who.group in allowed or self._admin(who):
            return
        raise Forbidden(
            f"group {who.group!r} may not read {name.name}; the groups that may: "
            f"{', '.join(sorted(allowed)) or 'none'} (setting internal_readers)"
        )

    def may_read(self, who: Identity, name: PackageName) -> bool:
        try:
            self.check_read(who, name)
        except (Unauthenticated, Forbidden):
            return False
        return True

    def check_write(self, who: Identity, name: PackageName, what: str = "publish") -> None:
        """Raise unless `who` may publish to, tag, deprecate or unpublish `name`."""
        if who.anonymous:
            raise Unauthenticated(f"to {what} {name.name} you need a Floodgate token")
        if self._admin(who):
            return
        allowed = _rule(self.publishers, name) or frozenset()
        if ANY_TOKEN in allowed or who.group in allowed:
            self.check_read(who, name)  # no group publishes what it may not read
            return
        may = sorted(allowed | self.admin_groups)
        raise Forbidden(
            f"group {who.group!r} may not {what} {name.name}; the groups that may: "
            f"{', '.join(may)} (setting internal_publishers)"
        )

    def collaborators(self, name: PackageName) -> dict[str, str]:
        """`npm access list collaborators`: each group named by a rule, read-only or
        read-write (`*`: every token holder)."""
        out = {g: "read-write" for g in sorted(self.admin_groups)}
        readers = _rule(self.readers, name)
        readers = frozenset({ANY_TOKEN}) if readers is None else readers
        for group in sorted(readers):
            out.setdefault(group, "read-only")
        for group in sorted(_rule(self.publishers, name) or ()):
            if group in readers or ANY_TOKEN in readers:
                out[group] = "read-write"
        return out

    def check_unpublish(
        self, who: Identity, name: PackageName, version: str, published: str | None, now: float
    ) -> None:
        """Raise unless `who` may unpublish `version`, published at `published` (ISO time)."""
        self.check_write(who, name, "unpublish")
        if self._admin(who):
            return
        age = _hours_since(published, now)
        if age is None or age > self.unpublish_hours:
            raise Forbidden(
                f"{name.name}@{version} was published more than {self.unpublish_hours:g} hours "
                f"ago: only an admin group ({', '.join(sorted(self.admin_groups))}) may "
                "unpublish it now; deprecate it instead (npm deprecate)"
            )


def _hours_since(iso: str | None, now: float) -> float | None:
    if not iso:
        return None
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return (now - then) / 3600.0
