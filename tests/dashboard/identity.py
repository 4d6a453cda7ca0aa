"""A stand-in for the authentication middleware in dashboard tests: it puts an `Identity` in
`scope["state"]["identity"]`, as the real one will (the contract in `proxy/identity.py`).

`x-test-identity: group/name` picks the identity per request (`-` for anonymous); without the
header, requests carry `default` (None: anonymous).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.identity import Identity

ADMIN = Identity("admin", "alice")
HEADER = b"x-test-identity"


def parse(value: str) -> Identity | None:
    if value == "-":
        return None
    group, _, name = value.partition("/")
    return Identity(group, name or None)


def with_identity(default: Identity | None) -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                identity = default
                for key, value in scope.get("headers", []):
                    if key == HEADER:
                        identity = parse(value.decode("latin-1"))
                if identity is not None:
                    scope.setdefault("state", {})["identity"] = identity
            await app(scope, receive, send)

        return wrapped

    return wrap
