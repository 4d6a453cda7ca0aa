"""A fake upstream registry: a real HTTP server on 127.0.0.1 serving packuments and tarballs the
tests build, with failure modes addressable per package or tarball path.

Fault modes (`registry.faults[name_or_path] = mode`):
    "slow"        sleep `slow_seconds` before answering
    "500"         answer 500
    "malformed"   answer 200 with a body that is not JSON
    "drop"        promise a body, send part of it, then drop the connection
    "integrity"   serve tarball bytes that do not match dist.integrity
    "404"         answer 404
    "hold"        answer only once `registry.release` is set (or after `hold_limit` seconds)
    "429", "503"  answer that status with `Retry-After: registry.retry_after`
    "drip"        send the real body one byte per `drip_interval` seconds
    "bomb"        a gzip-encoded body that inflates to `bomb_bytes` of spaces
    "gzip-cut"    a gzip-encoded body cut off in the middle of the stream
    "big"         a 200 chunked body of `big_bytes` bytes, sent in 1 MB chunks
    "redirect"    a 302 to `registry.redirect_to`
    "stall"       send the first half of the real body, then the rest once `release` is set

With `search` on, `GET /-/v1/search` answers like the registry's search over the packuments
added (every word of `text` in the name or description; `from` and `size` page); off, it is a
404 like an upstream without search.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from proxy.web.server import listening_socket
from tests.fakes.packages import FakeVersion, build_version, integrity_of


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    query: str = ""


class UvicornThread:
    """A real uvicorn server for `app` on 127.0.0.1 in a background thread."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", config: uvicorn.Config | None = None):
        self.sock = listening_socket(host, 0)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = config or uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", loop="asyncio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@dataclass
class FakeRegistry:
    """Packuments and tarballs by URL, plus faults and a log of every request received."""

    url: str = ""
    packuments: dict[str, dict[str, Any]] = field(default_factory=dict)
    tarballs: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    slow_seconds: float = 5.0
    mirror: bool = False  # behave like a trimmed mirror: no ETag, no gzip, Accept ignored
    tarball_host: str | None = None  # write tarball URLs with this host instead of 127.0.0.1
    release: threading.Event = field(default_factory=threading.Event)  # ends "hold" faults
    hold_limit: float = 30.0  # seconds a "hold" lasts at most, so a failing test cannot hang
    latency: float = 0.0  # seconds added to every answer (benchmarks: a distant registry)
    retry_after: str = "30"  # the Retry-After of "429" and "503" faults
    drip_interval: float = 0.5  # seconds between the bytes of a "drip" fault
    bomb_bytes: int = 64 * 1024 * 1024  # what a "bomb" fault inflates to
    big_bytes: int = 32 * 1024 * 1024  # the size of a "big" fault's body
    redirect_to: str = ""  # the Location of a "redirect" fault
    search: bool = False  # answer /-/v1/search from the packuments (see the module's doc)

    # -- building ----------------------------------------------------------------------------

    def add(
        self, name: str, *versions: FakeVersion, tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Publish `versions` of `name` (merging with what exists); return the packument."""
        doc = self.packuments.setdefault(
            name,
            {
                "_id": name,
                "name": name,
                "dist-tags": {},
                "versions": {},
                "time": {"created": "2024-01-01T00:00:00.000Z"},
            },
        )
        bare = name.rsplit("/", 1)[-1]
        for fv in versions:
            entry, tgz = build_version(name, fv)
            path = f"/{name}/-/{bare}-{fv.version}.tgz"
            base = (
                self.url
                if self.tarball_host is None
                else self.url.replace("127.0.0.1", self.tarball_host)
            )
            entry["dist"]["tarball"] = base + path
            doc["versions"][fv.version] = entry
            doc["time"][fv.version] = fv.published
            doc["time"]["modified"] = fv.published
            self.tarballs[path] = tgz
        doc["dist-tags"].setdefault("latest", versions[-1].version)
        doc["dist-tags"].update(tags or {})
        return doc

    def set_tarball(self, name: str, version: str, data: bytes) -> None:
        """Publish `data` as the tarball of an added version (dist integrity and shasum too)."""
        path = self.tarball_path(name, version)
        self.tarballs[path] = data
        dist = self.packuments[name]["versions"][version]["dist"]
        dist["integrity"] = integrity_of(data)
        dist["shasum"] = hashlib.sha1(data).hexdigest()

    def tarball_path(self, name: str, version: str) -> str:
        return f"/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    # -- serving -----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    async def _handle(self, request: Request) -> Response:
        raw = request.scope.get("raw_path", b"").decode()
        path = raw.split("?", 1)[0]
        self.seen.append(Seen(request.method, path, dict(request.headers), request.url.query))
        if self.latency:
            await asyncio.sleep(self.latency)
        name = path[1:].replace("%2f", "/").replace("%2F", "/")
        fault = self.faults.get(path) or self.faults.get(name)
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        elif fault == "hold":
            await asyncio.to_thread(self.release.wait, self.hold_limit)
        elif fault == "500":
            return Response(b'{"error":"boom"}', 500)
        elif fault == "404":
            return Response(b'{"error":"Not found"}', 404)
        elif fault == "malformed":
            return Response(b'{"name": "broken", "versions": {', 200, media_type="application/json")
        elif fault == "drop":
            return _DroppedResponse()
        elif fault in ("429", "503"):
            return Response(b'{"error":"busy"}', int(fault), {"retry-after": self.retry_after})
        elif fault == "bomb":
            return Response(_bomb(self.bomb_bytes), headers={"content-encoding": "gzip"})
        elif fault == "gzip-cut":
            whole = gzip.compress(b'{"name": "cut", "versions": {}}' + b" " * 200_000)
            return Response(whole[: len(whole) // 2], headers={"content-encoding": "gzip"})
        elif fault == "big":
            return StreamingResponse(_chunks(self.big_bytes), media_type="application/json")
        elif fault == "redirect":
            return Response(b"", 302, {"location": self.redirect_to})
        if fault == "stall":
            body = self._body_for(request, path, name)
            return StreamingResponse(
                _stall(body, self.release, self.hold_limit), media_type="application/octet-stream"
            )
        if fault == "drip":
            body = self._body_for(request, path, name)
            return StreamingResponse(_drip(body, self.drip_interval), media_type="application/json")
        if self.search and path == "/-/v1/search":
            return self._search(request)
        if path in self.tarballs:
            data = self.tarballs[path]
            if fault == "integrity":
                data = data[:-8] + b"\x00" * 8
            return Response(data, media_type="application/octet-stream")
        if name in self.packuments:
            return self._packument(request, name)
        return Response(b'{"error":"Not found"}', 404, media_type="application/json")

    def _search(self, request: Request) -> Response:
        words = request.query_params.get("text", "").lower().split()
        size = int(request.query_params.get("size", "20"))
        start = int(request.query_params.get("from", "0"))
        found = []
        for name, doc in sorted(self.packuments.items()):
            latest = doc.get("dist-tags", {}).get("latest")
            manifest = doc.get("versions", {}).get(latest)
            if not isinstance(manifest, dict):
                continue
            text = f"{name} {manifest.get('description', '')}".lower()
            if words and all(w in text for w in words):
                found.append(
                    {
                        "package": {
                            "name": name,
                            "version": latest,
                            "description": manifest.get("description", ""),
                            "keywords": manifest.get("keywords", []),
                            "date": doc.get("time", {}).get(latest, ""),
                            "links": {},
                            "publisher": {"username": "upstream-user", "email": ""},
                            "maintainers": [{"username": "upstream-user", "email": ""}],
                        },
                        "score": {
                            "final": 0.5,
                            "detail": {"quality": 0.5, "popularity": 0.5, "maintenance": 0.5},
                        },
                        "searchScore": 0.5,
                    }
                )
        body = {"objects": found[start : start + size], "total": len(found), "time": "fake"}
        return Response(orjson.dumps(body), media_type="application/json")

    def _body_for(self, request: Request, path: str, name: str) -> bytes:
        if path in self.tarballs:
            return self.tarballs[path]
        if name in self.packuments:
            return orjson.dumps(self.packuments[name])
        return b'{"error":"Not found"}'

    def _packument(self, request: Request, name: str) -> Response:
        body = orjson.dumps(self.packuments[name])
        if self.mirror:
            return Response(body, media_type="application/json")
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        headers = {"etag": etag}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        return Response(body, headers=headers, media_type="application/json")


def _bomb(size: int) -> bytes:
    inflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1024 * 1024)
    parts = [inflater.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, inflater.flush()])


async def _chunks(size: int) -> AsyncIterator[bytes]:
    block = b" " * (1024 * 1024)
    for _ in range(size // len(block)):
        yield block


async def _stall(body: bytes, release: threading.Event, limit: float) -> AsyncIterator[bytes]:
    yield body[: len(body) // 2]
    await asyncio.to_thread(release.wait, limit)
    yield body[len(body) // 2 :]


async def _drip(body: bytes, interval: float) -> AsyncIterator[bytes]:
    for i in range(len(body)):
        yield body[i : i + 1]
        await asyncio.sleep(interval)


class _DroppedResponse(Response):
    """Headers promising 100000 bytes, 100 bytes of body, then the connection goes away."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"100000"), (b"content-type", b"application/json")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b'{"name": "x", "versions": {' + b" " * 73,
                "more_body": True,
            }
        )
        raise ConnectionAbortedError("fake registry drops the connection on purpose")


@contextmanager
def running_registry(
    registry: FakeRegistry | None = None,
) -> Iterator[tuple[FakeRegistry, UvicornThread]]:
    registry = registry or FakeRegistry()
    server = UvicornThread(registry.app())
    registry.url = server.url
    server.start()
    try:
        yield registry, server
    finally:
        server.stop()
