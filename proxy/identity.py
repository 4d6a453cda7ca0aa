"""Who is asking: the identity a request carries through the pipeline.

The authentication middleware (in `proxy/web/`) resolves a client's token to an `Identity` and
puts it in the ASGI scope's state as `identity`; everything downstream (policy choice, the
decision log, the dashboard's admin check) reads it with `identity_of`. A request without a
token, when anonymous access is allowed, carries `ANONYMOUS`. The token itself never travels
further than the middleware: an `Identity` holds only the token's name and group.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """The group and token name a request was authenticated as (both None: anonymous)."""

    group: str | None = None
    name: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.group is None

    def label(self) -> str:
        """How logs and the decision log name this caller: `group/name`, or `anonymous`."""
        if self.group is None:
            return "anonymous"
        return f"{self.group}/{self.name}" if self.name else self.group


ANONYMOUS = Identity()


def identity_of(scope: MutableMapping[str, Any]) -> Identity:
    """The identity the authentication middleware attached to this request (default anonymous)."""
    state = scope.get("state")
    found = state.get("identity") if isinstance(state, dict) else None
    return found if isinstance(found, Identity) else ANONYMOUS


def is_admin(identity: Identity, admin_groups: Iterable[str]) -> bool:
    """True when the caller's group is one of the admin groups."""
    return identity.group is not None and identity.group in admin_groups
