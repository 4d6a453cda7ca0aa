"""Thin endpoints: parse the request, make one service call, render the answer.

Package URLs are parsed from the raw path (`scope["raw_path"]`): ASGI servers decode `%2f`, and
`@scope%2fname` must mean one name, not two path segments. Floodgate is read-only: every write
endpoint answers 405 with an `error` npm prints.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from proxy.errors import FloodgateError, NotFound, ReadOnly, RequestTooLarge
from proxy.npm.names import PackageName, PackagePath, Target, parse_package_path
from proxy.npm.packument import negotiate
from proxy.service import Service
from proxy.web.responses import error_response, json_response, packument_response, tarball_response

log = logging.getLogger(__name__)

MAX_FORWARD_BODY = 8 * 1024 * 1024  # bytes accepted from clients for audit/search passthrough
WRITE_METHODS = ["PUT", "POST", "DELETE", "PATCH"]
READ_ONLY_MESSAGE = (
    "Floodgate is a read-only proxy: publish, login, dist-tag changes and unpublish are not "
    "accepted here; send them to your registry directly"
)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def base_url(request: Request) -> str:
    """Where clients reach us: the configured public URL, else this request's scheme and Host."""
    service = service_of(request)
    if service.settings.public_url:
        return service.settings.public_url.rstrip("/")
    host = request.headers.get("host", "")
    if not host or any(c in host for c in "/\\@ \"'<>"):
        host = f"{service.settings.host}:{service.settings.port}"
    return f"{request.url.scheme}://{host}"


def raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if raw:
        return str(raw.decode("latin-1").split("?", 1)[0])
    return quote(request.scope["path"])


# -- packages ---------------------------------------------------------------------------------


async def package(request: Request) -> Response:
    """`/{name}`, `/{name}/{version-or-tag}`, `/{name}/-/{file}.tgz`."""
    parsed: PackagePath = parse_package_path(raw_path(request))
    service = service_of(request)
    if parsed.target is Target.PACKUMENT:
        variant = negotiate(request.headers.get("accept"))
        served = await service.packument(parsed.package, variant, base_url(request))
        return packument_response(request, served)
    if parsed.target is Target.TARBALL:
        return tarball_response(request, await service.tarball(parsed.package, parsed.arg))
    body = await service.version(parsed.package, parsed.arg, base_url(request))
    return Response(body, media_type="application/json")


async def read_only(request: Request) -> Response:
    raise ReadOnly(READ_ONLY_MESSAGE)


async def unknown_endpoint(request: Request) -> Response:
    raise NotFound(f"{request.url.path} is not an endpoint Floodgate knows")


async def dist_tags(request: Request) -> Response:
    name = PackageName.parse(request.path_params["name"])
    return json_response(dict(await service_of(request).dist_tags(name)))


# -- registry endpoints -----------------------------------------------------------------------


async def ping(request: Request) -> Response:
    return json_response({})


async def forward(request: Request) -> Response:
    """Pass a request through to the upstream unchanged (keys, attestations, search, audit)."""
    body = await _bounded_body(request) if request.method == "POST" else None
    path = raw_path(request) + (f"?{request.url.query}" if request.url.query else "")
    got = await service_of(request).forward(request.method, path, body, request.headers)
    keep = {
        k: v for k, v in got.headers.items() if k.lower() in ("content-type", "etag", "npm-notice")
    }
    return Response(got.body, got.status, keep)


async def whoami(request: Request) -> Response:
    service = service_of(request)
    if not service.settings.forward_auth:
        return error_response(
            401,
            "Floodgate does not log users in and does not forward credentials "
            "(set forward_auth to ask the upstream)",
        )
    return await forward(request)


async def search(request: Request) -> Response:
    """Search is forwarded; an upstream without it gets an empty result, not an error."""
    try:
        response = await forward(request)
    except FloodgateError as exc:
        log.warning("search not available upstream: %s", exc)
        response = None
    if response is None or response.status_code in (404, 405, 501):
        return json_response(
            {"objects": [], "total": 0, "time": ""},
            headers={
                "npm-notice": "the upstream registry offers no search; Floodgate returned none"
            },
        )
    return response


async def advisories_bulk(request: Request) -> Response:
    """`npm audit`: forwarded; an upstream without an audit endpoint means no advisories."""
    try:
        response = await forward(request)
    except FloodgateError as exc:
        log.warning("audit not available upstream: %s", exc)
        response = None
    if response is None or response.status_code in (404, 405, 501):
        return json_response({})
    return response


async def _bounded_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORWARD_BODY:
            raise RequestTooLarge(f"request body over {MAX_FORWARD_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def routes() -> list[BaseRoute]:
    """The route table: `/-/` system endpoints first, then packages (npm-protocol notes)."""
    return [
        Route("/-/ping", ping, methods=["GET"]),
        Route("/-/whoami", whoami, methods=["GET"]),
        Route("/-/v1/search", search, methods=["GET"]),
        Route("/-/npm/v1/security/advisories/bulk", advisories_bulk, methods=["POST"]),
        Route("/-/npm/v1/security/audits/quick", forward, methods=["POST"]),
        Route("/-/npm/v1/security/audits", forward, methods=["POST"]),
        Route("/-/npm/v1/keys", forward, methods=["GET"]),
        Route("/-/npm/v1/attestations/{spec:path}", forward, methods=["GET"]),
        Route("/-/package/{name:path}/dist-tags", dist_tags, methods=["GET"]),
        Route("/-/package/{name:path}/dist-tags", read_only, methods=WRITE_METHODS),
        Route("/-/package/{name:path}/dist-tags/{tag}", read_only, methods=WRITE_METHODS),
        Route("/-/{rest:path}", unknown_endpoint, methods=["GET"]),
        Route("/-/{rest:path}", read_only, methods=WRITE_METHODS),
        Route("/{path:path}", package, methods=["GET"]),
        Route("/{path:path}", read_only, methods=WRITE_METHODS),
    ]
