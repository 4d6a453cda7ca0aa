"""npm-shaped responses: packuments with ETag/gzip negotiation, tarballs, JSON errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from proxy.cache.memory import CacheState
from proxy.service import ServedPackument, ServedTarball

PACKUMENT_MAX_AGE = 300  # seconds; npmjs sends the same (npm-protocol 3.9)
TARBALL_CACHE_CONTROL = "public, max-age=31536000, immutable"
VARY = "Accept, Accept-Encoding"
STALE_WARNING = '110 - "Response is Stale"'


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status_code, headers, media_type="application/json")


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error as npm prints it: `{"error": message}` (npm-registry-fetch appends `error`)."""
    return json_response({"error": message}, status_code, headers)


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "")


def etag_matches(request: Request, etag: str) -> bool:
    """Weak comparison of If-None-Match with `etag` (RFC 9110 13.1.2)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


def note_cache(request: Request, state: CacheState, note: str = "") -> None:
    request.scope.setdefault("state", {})["cache"] = state.value
    if note:
        request.scope["state"]["note"] = f" {note}"


def packument_response(request: Request, served: ServedPackument) -> Response:
    """The packument bytes in the negotiated encoding, or 304 when the client's copy matches."""
    rendered = served.rendered
    note_cache(request, served.cache)
    headers = {
        "etag": rendered.etag,
        "vary": VARY,
        "cache-control": f"public, max-age={PACKUMENT_MAX_AGE}",
        "x-floodgate-cache": served.cache.value,
    }
    if served.cache is CacheState.STALE:
        headers["warning"] = STALE_WARNING
    if etag_matches(request, rendered.etag):
        return Response(status_code=304, headers=headers)
    if accepts_gzip(request):
        headers["content-encoding"] = "gzip"
        return Response(rendered.gzip, headers=headers, media_type=served.variant.media_type)
    return Response(rendered.body, headers=headers, media_type=served.variant.media_type)


def tarball_response(request: Request, served: ServedTarball) -> Response:
    """Tarball bytes exactly as the upstream sent them: from memory, or streamed from disk."""
    note_cache(request, served.cache)
    headers = {
        "etag": f'"{served.key}"',
        "cache-control": TARBALL_CACHE_CONTROL,
        "x-floodgate-cache": served.cache.value,
    }
    if etag_matches(request, headers["etag"]):
        return Response(status_code=304, headers=headers)
    tarball = served.tarball
    if tarball.data is not None:
        return Response(tarball.data, headers=headers, media_type="application/octet-stream")
    assert tarball.path is not None
    return FileResponse(
        tarball.path, headers=headers, media_type="application/octet-stream", stat_result=None
    )
