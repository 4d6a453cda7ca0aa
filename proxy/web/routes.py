"""Thin endpoints: parse the request, make one service call, render the answer.

Package URLs are parsed from the raw path (`scope["raw_path"]`): ASGI servers decode `%2f`, and
`@scope%2fname` must mean one name, not two path segments. Writes (publish, unpublish,
dist-tags) are taken for the packages Floodgate hosts (`proxy.web.publish`); for every other
name they answer 405 with an `error` npm prints.
"""

from __future__ import annotations

import logging
import weakref
import zlib
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from proxy.audit.advisories import merge
from proxy.errors import (
    BadRequest,
    CacheUnavailable,
    FloodgateError,
    NotFound,
    PolicyBlocked,
    ReadOnly,
    RequestTooLarge,
)
from proxy.gate import Caller
from proxy.identity import identity_of
from proxy.npm.names import PackageName, PackagePath, Target, parse_package_path
from proxy.npm.packument import BLOCKED_PREFIX, blocked_tarball_url, negotiate
from proxy.service import Service
from proxy.settings import Settings
from proxy.upstream.client import Forwarded
from proxy.web import publish
from proxy.web.dashboard import routes as dashboard_routes
from proxy.web.health import metrics, ready
from proxy.web.request import bounded_body, caller_of, raw_path, service_of
from proxy.web.responses import (
    ClientHeaders,
    error_response,
    json_response,
    notice_header,
    packument_response,
    tarball_response,
)

log = logging.getLogger(__name__)

MAX_FORWARD_BODY = 8 * 1024 * 1024  # bytes accepted from clients for audit/search passthrough
MAX_AUDIT_NAMES = 5_000  # packages in one npm audit request (a large monorepo has ~3,000)
MAX_AUDIT_VERSIONS = 20_000  # versions in one npm audit request
WRITE_METHODS = ["PUT", "POST", "DELETE", "PATCH"]
READ_ONLY_MESSAGE = (
    "Floodgate is a read-only proxy: publish, login, dist-tag changes and unpublish are not "
    "accepted here; send them to your registry directly"
)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
MAX_BASES = 4  # distinct (scheme, Host) pairs that get tarball links of their own
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 (compared, not bound)


class BaseUrls:
    """The base URLs of tarball links, per (scheme, Host), for one running service.

    Rendered packuments are keyed by their base URL, so every distinct Host header would force
    a full re-render of a packument (a 2 MB one costs ~100 ms). The first `MAX_BASES` hosts
    get links of their own (localhost, the machine's name, its address); requests with any
    other Host get links to the listen address (or, when that is a wildcard, to the first
    host seen). Set `public_url` to have one canonical base for everyone.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._known: dict[tuple[str, str], str] = {}
        self._fallback = ""
        self._warned = False

    def __call__(self, scheme: str, host: str) -> str:
        settings = self.settings
        if settings.public_url:
            return settings.public_url.rstrip("/")
        base = self._known.get((scheme, host))
        if base is not None:
            return base
        if len(self._known) >= MAX_BASES:
            if not self._warned:
                self._warned = True
                log.warning(
                    "more than %d distinct Host headers: tarball links for new ones use %s; "
                    "set public_url to the address clients use",
                    MAX_BASES,
                    self._fallback,
                )
            return self._fallback
        checked = host
        if not host or not _HOST_CHARS.issuperset(host) or len(host) > 255:
            checked = f"{settings.host}:{settings.port}"
        base = f"{scheme}://{checked}"
        self._known[(scheme, host)] = base
        if not self._fallback:
            shown = f"[{settings.host}]" if ":" in settings.host else settings.host
            listen = f"http://{shown}:{settings.port}"
            self._fallback = base if settings.host in _WILDCARDS else listen
        return base


_bases: weakref.WeakKeyDictionary[Service, BaseUrls] = weakref.WeakKeyDictionary()


def base_url(service: Service, scheme: str, host: str) -> str:
    """Where clients reach us: the configured public URL, else this request's scheme and Host
    (within the `BaseUrls` cap).

    A Host header that is not a plain host[:port] falls back to the listen address, so a forged
    header cannot inject text into the tarball URLs.
    """
    bases = _bases.get(service)
    if bases is None:
        bases = _bases[service] = BaseUrls(service.settings)
    return bases(scheme, host)


# -- packages ---------------------------------------------------------------------------------


def wants_write(query: bytes) -> bool:
    """`?write=true` (npm's read before a write-back), parsed: not `?overwrite=true`."""
    return b"write=" in query and "true" in parse_qs(query.decode("latin-1")).get("write", [])


class PackageEndpoint:
    """`/{name}`, `/{name}/{version-or-tag}`, `/{name}/-/{file}.tgz`.

    A plain ASGI app rather than a request handler: this is the hot path, and it skips
    Starlette's per-route request wrapper (errors still reach the app's exception handlers).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed: PackagePath = parse_package_path(raw_path(scope))
        service: Service = scope["app"].state.service
        client = ClientHeaders.of(scope)
        caller = caller_of(scope, client)
        response: Response
        if parsed.target is Target.PACKUMENT:
            variant = negotiate(client.accept)
            base = base_url(service, scope["scheme"], client.host)
            served = await service.packument(
                parsed.package,
                variant,
                base,
                caller,
                plain=not client.accepts_gzip,
                write=wants_write(scope.get("query_string", b"")),
            )
            response = packument_response(scope, client, served)
        elif parsed.target is Target.TARBALL:
            try:
                response = await tarball_of(service, scope, client, parsed, caller)
            except PolicyBlocked as exc:
                # To the blocked URL, whose path spells the reason: bun and yarn 4 print the
                # URL they were sent to (a lockfile install asks for the plain URL).
                base = base_url(service, scope["scheme"], client.host)
                url = blocked_tarball_url(base, parsed.package, parsed.arg, str(exc))
                response = RedirectResponse(url, 302, {"npm-notice": notice_header(str(exc))})
        else:
            base = base_url(service, scope["scheme"], client.host)
            body = await service.version(parsed.package, parsed.arg, base, caller.identity)
            response = Response(body, media_type="application/json")
        await response(scope, receive, send)


async def blocked_tarball(request: Request) -> Response:
    """`/-/blocked/{reason slug}/{name}/-/{file}.tgz`: a blocked version's tarball URL. The
    slug is for people; the tarball is decided afresh (a policy edit may allow it by now), and
    a refusal is the app's 451 with the reason."""
    path = raw_path(request.scope).removeprefix(BLOCKED_PREFIX)
    _slug, _, rest = path.partition("/")
    parsed = parse_package_path("/" + rest)
    if parsed.target is not Target.TARBALL:
        raise NotFound("expected /-/blocked/{reason}/{name}/-/{file}.tgz")
    client = ClientHeaders.of(request.scope)
    caller = caller_of(request.scope, client)
    return await tarball_of(service_of(request), request.scope, client, parsed, caller)


async def tarball_of(
    service: Service, scope: Scope, client: ClientHeaders, parsed: PackagePath, caller: Caller
) -> Response:
    """The response for a tarball, its cached file opened while the service holds it (the
    cache does not evict it then, however many big downloads come at once). A file deleted
    behind Floodgate's back meanwhile is asked for once more, and fetched again."""
    for attempt in (1, 2):
        try:
            async with service.tarball(parsed.package, parsed.arg, caller) as served:
                return tarball_response(scope, client, served)
        except FileNotFoundError:
            log.info("tarball %s left the cache before it was sent (try %d)", parsed.arg, attempt)
    raise CacheUnavailable(
        f"{parsed.package.name}: its tarball left the cache before it could be sent; try again"
    )


async def read_only(request: Request) -> Response:
    raise ReadOnly(READ_ONLY_MESSAGE)


LOGIN_MESSAGE = (
    "Floodgate does not log users in (npm login / npm adduser): ask its administrator for a "
    "token (floodgate token create --group GROUP --name NAME) and put it in .npmrc as "
    "//<floodgate host>/:_authToken=<token>"
)


async def login(request: Request) -> Response:
    """`npm login` / `npm adduser` (web and legacy): refused with how to get a token. 405 with
    the message in `error` and `npm-notice`: npm prints the notice of the web login's refusal
    before it falls back to asking for a user name (a 401 would start its own dialogue)."""
    notice = notice_header(LOGIN_MESSAGE)
    return error_response(405, LOGIN_MESSAGE, {"allow": "GET, HEAD", "npm-notice": notice})


async def unknown_endpoint(request: Request) -> Response:
    raise NotFound(f"{request.url.path} is not an endpoint Floodgate knows")


async def dist_tags(request: Request) -> Response:
    name = PackageName.parse(request.path_params["name"])
    tags = await service_of(request).dist_tags(name, identity_of(request.scope))
    return json_response(dict(tags))


# -- registry endpoints -----------------------------------------------------------------------


async def ping(request: Request) -> Response:
    """`npm ping` and liveness checks: constant and cheap, whatever the upstream does."""
    return json_response({})


async def forward(request: Request) -> Response:
    """Pass a request through to the upstream unchanged (keys, attestations, search, audit)."""
    body = await _bounded_body(request) if request.method == "POST" else None
    path = raw_path(request.scope) + (f"?{request.url.query}" if request.url.query else "")
    got = await service_of(request).forward(request.method, path, body, request.headers)
    return _passed_on(got)


def _passed_on(got: Forwarded) -> Response:
    keep = {
        k: v
        for k, v in got.headers.items()
        if k.lower() in ("content-type", "etag", "npm-notice", "retry-after")
    }
    return Response(got.body, got.status, keep)


async def whoami(request: Request) -> Response:
    identity = identity_of(request.scope)
    if not identity.anonymous:  # a Floodgate token: its name, never asked upstream
        return json_response({"username": identity.name or identity.label()})
    service = service_of(request)
    if not service.settings.forward_auth:
        return error_response(
            401,
            "Floodgate does not log users in and does not forward credentials "
            "(set forward_auth to ask the upstream)",
        )
    if "authorization" not in request.headers:
        # Forwarded anonymously, the upstream would see Floodgate's own upstream_token and
        # answer with the service account's name.
        return error_response(401, "not logged in: send your registry credentials to whoami")
    return await forward(request)


async def search(request: Request) -> Response:
    """`npm search`: the hosted packages the caller may read, then the upstream's results (an
    upstream without search: ours alone, never an error)."""
    answer = await service_of(request).search(
        dict(request.query_params), identity_of(request.scope), request.headers
    )
    if answer.body is None:
        assert answer.passthrough is not None
        return _passed_on(answer.passthrough)
    headers = {"npm-notice": notice_header(answer.notice)} if answer.notice else None
    return json_response(answer.body, headers=headers)


async def advisories_bulk(request: Request) -> Response:
    """`npm audit`: the upstream's advisories (when it has the endpoint) merged with
    Floodgate's own findings on the requested versions."""
    body = await _bounded_body(request)
    wanted = _audit_request(body, request.headers.get("content-encoding", ""))  # checked first
    service = service_of(request)
    upstream: Any = {}
    try:
        path = raw_path(request.scope)
        got = await service.forward("POST", path, body, request.headers)
        if got.status == 200:
            upstream = orjson.loads(got.body)
        elif got.status not in (404, 405, 501):
            log.warning(
                "audit: upstream answered %d; reporting Floodgate's findings only", got.status
            )
    except (FloodgateError, orjson.JSONDecodeError) as exc:
        log.warning("audit not available upstream: %s", exc)
    address = request.client.host if request.client else "-"
    ours = await service.advisories(
        wanted,
        base_url(service, request.url.scheme, request.headers.get("host", "")),
        address,
        identity_of(request.scope),
    )
    return json_response(merge(upstream, ours))


def _audit_request(body: bytes, encoding: str) -> dict[str, Any]:
    """The `{name: [versions]}` map of a bulk advisory request (npm gzips it)."""
    try:
        if "gzip" in encoding:
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(body, MAX_FORWARD_BODY)
            if inflater.unconsumed_tail:
                raise RequestTooLarge(f"audit request over {MAX_FORWARD_BODY} bytes unpacked")
        data = orjson.loads(body)
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise BadRequest(f"the audit request is not (gzipped) JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the audit request is not a JSON object of name: [versions]")
    versions = sum(len(v) for v in data.values() if isinstance(v, list))
    if len(data) > MAX_AUDIT_NAMES or versions > MAX_AUDIT_VERSIONS:
        raise RequestTooLarge(
            f"the audit request names {len(data)} packages and {versions} versions; Floodgate "
            f"audits at most {MAX_AUDIT_NAMES} packages and {MAX_AUDIT_VERSIONS} versions per "
            "request"
        )
    return data


async def verdict(request: Request) -> Response:
    """`/-/floodgate/verdict/{name}/{version}`: what Floodgate knows and decides, with evidence."""
    parsed = parse_package_path("/" + request.path_params["spec"])
    if parsed.target is not Target.VERSION:
        raise NotFound("expected /-/floodgate/verdict/{name}/{version}")
    found = await service_of(request).verdict(
        parsed.package, parsed.arg, identity_of(request.scope)
    )
    if found is None:
        raise NotFound(f"no verdict for {parsed.package.name}@{parsed.arg}")
    v, d = found
    return json_response(
        {
            "package": parsed.package.name,
            "version": parsed.arg,
            "verdict": v.to_json() if v is not None else None,
            "decision": {
                "action": d.action.value,
                "intended": d.intended.value,
                "rule": d.rule,
                "reason": d.reason,
                "waiver": d.waiver,
                "severity": d.severity.value,
            },
        }
    )


async def _bounded_body(request: Request) -> bytes:
    """The request body: at most MAX_FORWARD_BODY bytes, within `client_timeout` seconds."""
    seconds = service_of(request).settings.client_timeout
    return await bounded_body(request, MAX_FORWARD_BODY, seconds, f"over {MAX_FORWARD_BODY} bytes")


def routes() -> list[BaseRoute]:
    """The route table: `/-/` system endpoints (one mount), then writes to package paths.
    Package reads (GET and HEAD outside `/-/`, the hot path) never reach the router:
    `proxy.app.PackageFastLane` sends them straight to `PackageEndpoint`."""
    system = [
        Route("/ping", ping, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *dashboard_routes(),
        Route("/blocked/{rest:path}", blocked_tarball, methods=["GET"]),
        Route("/whoami", whoami, methods=["GET"]),
        Route("/v1/login", login, methods=["POST", "PUT", "GET"]),
        Route("/user/{rest:path}", login, methods=["PUT", "POST", "GET"]),
        Route("/v1/search", search, methods=["GET"]),
        Route("/npm/v1/security/advisories/bulk", advisories_bulk, methods=["POST"]),
        Route("/floodgate/verdict/{spec:path}", verdict, methods=["GET"]),
        Route("/npm/v1/security/audits/quick", forward, methods=["POST"]),
        Route("/npm/v1/security/audits", forward, methods=["POST"]),
        Route("/npm/v1/keys", forward, methods=["GET"]),
        Route("/npm/v1/attestations/{spec:path}", forward, methods=["GET"]),
        Route("/package/{name:path}/dist-tags", dist_tags, methods=["GET"]),
        Route("/package/{name:path}/dist-tags", read_only, methods=WRITE_METHODS),
        Route("/package/{name:path}/dist-tags/{tag}", publish.put_tag, methods=["PUT", "POST"]),
        Route("/package/{name:path}/dist-tags/{tag}", publish.delete_tag, methods=["DELETE"]),
        Route("/package/{name:path}/access", publish.access_status, methods=["GET"]),
        Route("/package/{name:path}/visibility", publish.visibility, methods=["GET"]),
        Route("/package/{name:path}/access", publish.access_change, methods=WRITE_METHODS),
        Route("/package/{name:path}/collaborators", publish.collaborators, methods=["GET"]),
        Route("/{rest:path}", unknown_endpoint, methods=["GET"]),
        Route("/{rest:path}", read_only, methods=WRITE_METHODS),
    ]
    return [
        Mount("/-", routes=system),
        Route("/{path:path}", publish.put_package, methods=["PUT"]),
        Route("/{path:path}", publish.delete_package, methods=["DELETE"]),
        Route("/{path:path}", read_only, methods=["POST", "PATCH"]),
    ]
