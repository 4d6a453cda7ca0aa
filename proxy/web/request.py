"""What every endpoint reads off a request: the service, the raw path, who is calling."""

from __future__ import annotations

from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.types import Scope

from proxy.errors import BadRequest, RequestTooLarge
from proxy.gate import Caller
from proxy.identity import identity_of
from proxy.service import Service
from proxy.web.responses import ClientHeaders


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        return str(raw.decode("latin-1").split("?", 1)[0])
    return quote(scope["path"])


def caller_of(scope: Scope, client: ClientHeaders) -> Caller:
    """Who is asking, for the decision log and the policy: the token's name and group (the
    authentication middleware removed the token itself), or for an anonymous caller the
    fingerprint of whatever credentials it sent."""
    address = scope.get("client")
    identity = identity_of(scope)
    return Caller(
        address[0] if address else "-",
        client.user_agent,
        identity.name or Caller.fingerprint(client.authorization),
        scope.get("state", {}).get("request_id", ""),
        identity.group or "",
    )


def group_of(scope: Scope) -> str:
    return identity_of(scope).group or ""


async def bounded_body(request: Request, limit: int, seconds: float, too_big: str) -> bytes:
    """The request body: RequestTooLarge (`too_big` says what) past `limit` bytes, as they
    arrive; BadRequest when it has not arrived within `seconds`."""
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(seconds) as scope:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"the request body is {too_big}")
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise BadRequest(f"the request body did not arrive within {seconds:g}s")
    return b"".join(chunks)
