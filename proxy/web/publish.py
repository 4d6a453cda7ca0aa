"""Thin endpoints of the registry's write side, for the packages Floodgate hosts.

    PUT    /<name>                          npm publish (tarball attached), npm deprecate
    PUT    /<name>/-rev/<rev>               npm unpublish <name>@<version> (document written back)
    DELETE /<name>/-rev/<rev>               npm unpublish <name> --force (every version)
    DELETE /<name>/-/<file>/-rev/<rev>      npm unpublish's second step (the tarball)
    PUT    /-/package/<name>/dist-tags/<t>  npm dist-tag add (body: the version, as JSON)
    DELETE /-/package/<name>/dist-tags/<t>  npm dist-tag rm
    GET    /-/package/<name>/visibility     npm access get status (npm 10 and later)
    GET    /-/package/<name>/access         npm access get status (older npm)
    GET    /-/package/<name>/collaborators  npm access list collaborators (groups, from settings)

Names outside the hosted scopes get the read-only 405 as before. Everything else (parsing the
body, access, inspection, storage) is the service's.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import BadRequest, InvalidPackageName, ReadOnly
from proxy.hosted.registry import HostedRegistry
from proxy.npm.names import PackageName, PackagePath, Target, parse_package_path
from proxy.service import PublishOutcome, Service
from proxy.web.request import bounded_body, caller_of, raw_path, service_of
from proxy.web.responses import ClientHeaders, json_response, notice_header

MB = 1024 * 1024
BODY_SLACK = 4 * MB  # JSON around the base64 tarball: manifest, readme
MIN_BODY_SECONDS = 120.0  # a large publish over a slow link may take this long to arrive
TAG_BODY = 1024  # bytes of a dist-tag change's body: a version as a JSON string
ACCESS_MESSAGE = (
    "access to hosted packages is set in Floodgate's configuration (internal_readers, "
    "internal_publishers), not with npm access"
)


async def _body(request: Request, service: Service) -> bytes:
    """A publish's body: at most the largest publish (base64 grows it by a third)."""
    mb = service.settings.max_publish_mb
    limit = mb * MB * 4 // 3 + BODY_SLACK
    seconds = max(service.settings.client_timeout, MIN_BODY_SECONDS)
    return await bounded_body(request, limit, seconds, f"a publish over {mb} MB (max_publish_mb)")


def _target(request: Request) -> tuple[PackagePath, str | None]:
    """`/<name>[/-/<file>][/-rev/<rev>]` as (the package path, the revision); anything else
    is no write endpoint (405, like every write Floodgate does not take)."""
    path = raw_path(request.scope)
    head, sep, rev = path.partition("/-rev/")
    try:
        if sep and (not rev or "/" in rev):
            raise InvalidPackageName(f"{path!r}: expected .../-rev/<revision>")
        parsed = parse_package_path(head)
    except InvalidPackageName as exc:
        raise ReadOnly(
            f"Floodgate is read-only at {request.method} {request.url.path}: not a registry "
            f"write endpoint ({exc})"
        ) from None
    return parsed, rev if sep else None


def _answer(outcome: PublishOutcome, status: int, ok: str) -> Response:
    headers = {"npm-notice": notice_header(outcome.notice)} if outcome.notice else None
    return json_response({"ok": ok, "success": True}, status, headers)


async def put_package(request: Request) -> Response:
    """`PUT /<name>` and `PUT /<name>/-rev/<rev>`."""
    parsed, rev = _target(request)
    if parsed.target is not Target.PACKUMENT:
        raise ReadOnly(f"Floodgate is read-only at {request.method} {request.url.path}")
    service = service_of(request)
    caller = caller_of(request.scope, ClientHeaders.of(request.scope))
    what = "publish" if rev is None else "change"
    await service.check_write(parsed.package, caller, what)  # before a byte of the body is read
    body = await _body(request, service)
    outcome = await service.publish(parsed.package, body, caller, rev)
    created = any(c.event == "publish" for c in outcome.changes)
    return _answer(
        outcome, 201 if created else 200, "created new version" if created else "updated package"
    )


async def delete_package(request: Request) -> Response:
    """`DELETE /<name>/-rev/<rev>` and `DELETE /<name>/-/<file>/-rev/<rev>`."""
    parsed, rev = _target(request)
    service = service_of(request)
    caller = caller_of(request.scope, ClientHeaders.of(request.scope))
    if parsed.target is Target.PACKUMENT:
        await service.unpublish(parsed.package, caller, rev)
        return json_response({"ok": "package removed", "success": True})
    if parsed.target is Target.TARBALL:
        await service.remove_tarball(parsed.package, parsed.arg, caller)
        return json_response({"ok": "tarball removed", "success": True})
    raise ReadOnly(f"Floodgate is read-only at DELETE {request.url.path}")


def _tag_target(request: Request) -> tuple[PackageName, str]:
    return PackageName.parse(request.path_params["name"]), request.path_params["tag"]


async def put_tag(request: Request) -> Response:
    name, tag = _tag_target(request)
    service = service_of(request)
    caller = caller_of(request.scope, ClientHeaders.of(request.scope))
    await service.check_write(name, caller, "change the dist-tags of")
    body = await bounded_body(request, TAG_BODY, service.settings.client_timeout, "not a version")
    try:
        version = orjson.loads(body)
    except orjson.JSONDecodeError:
        version = body.decode("utf-8", "replace").strip()
    if not isinstance(version, str):
        raise BadRequest('the body of a dist-tag change is the version as a JSON string: "1.2.3"')
    await service.tag(name, tag, version, caller)
    return json_response({"ok": True, tag: version}, 201)


async def delete_tag(request: Request) -> Response:
    name, tag = _tag_target(request)
    caller = caller_of(request.scope, ClientHeaders.of(request.scope))
    await service_of(request).tag(name, tag, None, caller)
    return json_response({"ok": True})


def _readable_hosted(request: Request) -> tuple[PackageName, HostedRegistry]:
    """The hosted package the path names, once the caller may read it."""
    name = PackageName.parse(request.path_params["name"])
    service = service_of(request)
    service.check_read(name, caller_of(request.scope, ClientHeaders.of(request.scope)).identity)
    if service.hosted is None or not service.hosted.hosts(name):
        raise ReadOnly(f"{name.name} is not hosted by Floodgate: ask its registry")
    return name, service.hosted


async def access_status(request: Request) -> Response:
    """`GET /-/package/<name>/access` (npm before 10): hosted packages are never public."""
    _readable_hosted(request)
    return json_response({"access": "private"})


async def visibility(request: Request) -> Response:
    """`GET /-/package/<name>/visibility`: what `npm access get status` asks since npm 10
    (libnpmaccess `getVisibility`, printed as public or private)."""
    _readable_hosted(request)
    return json_response({"public": False})


async def collaborators(request: Request) -> Response:
    """`npm access list collaborators`: the groups that may read and write, from settings."""
    name, hosted = _readable_hosted(request)
    return json_response(hosted.access.collaborators(name))


async def access_change(request: Request) -> Response:
    raise ReadOnly(ACCESS_MESSAGE)
