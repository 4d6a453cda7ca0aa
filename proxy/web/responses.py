"""npm-shaped responses: packuments with ETag/gzip negotiation, tarballs, JSON errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import anyio
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from proxy.cache.memory import CacheState
from proxy.identity import identity_of
from proxy.service import ServedPackument, ServedTarball

CHUNK = 1024 * 1024  # bytes per body write for large responses
PACKUMENT_MAX_AGE = 300  # seconds; the public registry sends the same (npm-protocol 3.9)
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


@dataclass(frozen=True, slots=True)
class ClientHeaders:
    """The request headers that shape a package response, read in one pass over the raw list."""

    accept: str = ""
    accept_encoding: str = ""
    host: str = ""
    if_none_match: str = ""
    user_agent: str = ""
    authorization: str = ""

    @classmethod
    def of(cls, scope: Scope) -> ClientHeaders:
        found: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = _WANTED.get(key)
            if name is not None:
                found[name] = value.decode("latin-1")
        return cls(**found)

    @property
    def accepts_gzip(self) -> bool:
        return accepts_coding(self.accept_encoding, "gzip")

    def etag_matches(self, etag: str) -> bool:
        """Weak comparison of If-None-Match with `etag` (RFC 9110 13.1.2)."""
        header = self.if_none_match
        if not header:
            return False
        if header.strip() == "*":
            return True
        opaque = etag.removeprefix("W/")
        return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


_WANTED = {
    b"accept": "accept",
    b"accept-encoding": "accept_encoding",
    b"host": "host",
    b"if-none-match": "if_none_match",
    b"user-agent": "user_agent",
    b"authorization": "authorization",
}


def accepts_coding(header: str, coding: str) -> bool:
    """Whether an Accept-Encoding header allows `coding` (RFC 9110 12.5.3): named or matched
    by `*` with a q-value above 0; a named coding's q-value beats the wildcard's."""
    named: float | None = None
    wildcard: float | None = None
    for item in header.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if name == coding:
            named = q
        elif name == "*":
            wildcard = q
    chosen = named if named is not None else wildcard
    return chosen is not None and chosen > 0


def notice_header(text: str) -> str:
    """`text` as a header value: one line, ASCII (npm prints npm-notice as it is)."""
    return " ".join(text.split()).encode("ascii", "replace").decode()[:1000]


def note_cache(scope: Scope, state: CacheState, note: str = "") -> None:
    """Tell the access log how the response was produced."""
    scope_state = scope.setdefault("state", {})
    scope_state["cache"] = state.value
    if note:
        scope_state["note"] = f" {note}"


class PreparedResponse(Response):
    """A response whose raw header list is built by the caller: the warm path skips Starlette's
    per-header normalisation, which costs more than the rest of serving a cached packument.

    Bodies over `CHUNK` bytes go out in chunks, so that the server's flow control lets other
    requests through between them instead of queueing them behind a 10 MB write.
    """

    def __init__(self, body: bytes, status_code: int, raw_headers: list[tuple[bytes, bytes]]):
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body = self.body
        if len(body) <= CHUNK:
            await send({"type": "http.response.body", "body": body})
            return
        view = memoryview(body)
        for start in range(0, len(body), CHUNK):
            chunk = view[start : start + CHUNK]
            more = start + CHUNK < len(body)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})


_CACHE_STATE = {s: s.value.encode() for s in CacheState}
_PACKUMENT_FIXED = [
    (b"vary", VARY.encode()),
    (b"cache-control", f"public, max-age={PACKUMENT_MAX_AGE}".encode()),
]
# For a caller with a token, or a hosted package: what was served depends on who asked (the
# group's policy, the right to read it), so no shared cache (a CDN, a corporate proxy) may keep
# it for the next caller.
_PACKUMENT_PRIVATE = [
    (b"vary", f"{VARY}, Authorization".encode()),
    (b"cache-control", f"private, max-age={PACKUMENT_MAX_AGE}".encode()),
]
_TARBALL_PRIVATE = [
    (b"vary", b"Authorization"),
    (b"cache-control", TARBALL_CACHE_CONTROL.replace("public", "private").encode()),
]


def _private(scope: Scope, hosted: bool) -> bool:
    return hosted or not identity_of(scope).anonymous


def packument_response(scope: Scope, client: ClientHeaders, served: ServedPackument) -> Response:
    """The packument bytes in the negotiated encoding, or 304 when the client's copy matches."""
    rendered = served.rendered
    note_cache(scope, served.cache)
    headers = [
        (b"etag", rendered.etag.encode()),
        *(_PACKUMENT_PRIVATE if _private(scope, served.hosted) else _PACKUMENT_FIXED),
        (b"x-floodgate-cache", _CACHE_STATE[served.cache]),
    ]
    if served.cache is CacheState.STALE:
        headers.append((b"warning", STALE_WARNING.encode()))
    if client.etag_matches(rendered.etag):
        return PreparedResponse(b"", 304, headers)
    if client.accepts_gzip:
        body = rendered.gzip
        headers.append((b"content-encoding", b"gzip"))
    else:
        assert rendered.body is not None  # the service keeps it for clients without gzip
        body = rendered.body
    headers.append((b"content-type", served.variant.media_type.encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    return PreparedResponse(body, 200, headers)


_TARBALL_FIXED = [(b"cache-control", TARBALL_CACHE_CONTROL.encode())]


def tarball_response(scope: Scope, client: ClientHeaders, served: ServedTarball) -> Response:
    """Tarball bytes exactly as the upstream sent them: from memory, or streamed from disk."""
    note_cache(scope, served.cache)
    etag = f'"{served.key}"'
    headers = [(b"etag", etag.encode()), (b"x-floodgate-cache", _CACHE_STATE[served.cache])]
    if served.notice:
        # npm prints npm-notice only from a response its cache will not keep: a client that
        # resolved a warned version before the warning was known (only the tarball showed it)
        # still hears it at install.
        headers.append((b"npm-notice", notice_header(served.notice).encode()))
        headers.append((b"cache-control", b"no-store"))
    else:
        headers.extend(_TARBALL_PRIVATE if _private(scope, served.hosted) else _TARBALL_FIXED)
    if client.etag_matches(etag):
        return PreparedResponse(b"", 304, headers)
    tarball = served.tarball
    if tarball.data is not None:
        headers.append((b"content-type", b"application/octet-stream"))
        headers.append((b"content-length", str(len(tarball.data)).encode()))
        return PreparedResponse(tarball.data, 200, headers)
    assert tarball.path is not None
    return OpenFileResponse(tarball.path.open("rb"), headers)


class OpenFileResponse(Response):
    """A cached tarball streamed from a file opened when the response is made: the cache may
    evict (unlink) it meanwhile, under a burst of big downloads, and an open file stays
    readable. Making one raises FileNotFoundError when the file is gone already."""

    def __init__(self, file: BinaryIO, raw_headers: list[tuple[bytes, bytes]]):
        self.file = file
        self.status_code = 200
        self.background = None
        size = os.fstat(file.fileno()).st_size
        self.raw_headers = [
            *raw_headers,
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(size).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            await send(start)
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            while True:
                chunk = await anyio.to_thread.run_sync(self.file.read, CHUNK)
                more = len(chunk) == CHUNK
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
        finally:
            self.file.close()
