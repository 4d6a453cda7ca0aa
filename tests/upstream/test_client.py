"""`UpstreamClient`: the origin policy, and the network behaviour against real servers on loopback.

Every fault here comes from a real uvicorn server: the shared fake registry for packuments and
tarballs, and a small "edge" app for what the registry does not do (redirects, arbitrary status
codes, a body that claims gzip but is not, an echo for passthrough). No MockTransport is needed.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy import __version__
from proxy.errors import (
    ForbiddenOrigin,
    NotFound,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamUnavailable,
)
from proxy.npm.names import PackageName
from proxy.settings import Settings
from proxy.upstream.client import Fetched, NotModified, UpstreamClient
from proxy.upstream.http import MAX_REDIRECTS
from tests.fakes.packages import FakeVersion
from tests.fakes.registry import FakeRegistry, UvicornThread, running_registry

MB = 1024 * 1024
TOKEN = "npm_SeCrEt0123456789"
WIDGET = PackageName.parse("@acme/widget")
LEFTPAD = PackageName.parse("left-pad")


@contextlib.asynccontextmanager
async def client_for(upstream: str, **overrides: Any) -> AsyncIterator[UpstreamClient]:
    values: dict[str, Any] = {
        "upstream": upstream,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "upstream_deadline": 5.0,
    }
    values.update(overrides)
    client = UpstreamClient(Settings(**values))
    try:
        yield client
    finally:
        await client.aclose()


# -- the origin policy -------------------------------------------------------------------------

UPSTREAM = "https://registry-host.invalid"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        (f"{UPSTREAM}/left-pad/-/left-pad-1.3.0.tgz", True),
        ("https://registry-host.invalid:443/left-pad/-/left-pad-1.3.0.tgz", True),
        ("HTTPS://Registry-Host.INVALID/left-pad", True),
        ("https://cdn.example.com/blobs/left-pad-1.3.0.tgz", True),  # allow-listed host
        ("http://cdn.example.com:8080/blobs/left-pad-1.3.0.tgz", True),  # any port and http(s)
        ("http://registry-host.invalid/left-pad", False),  # same host, other scheme
        ("https://registry-host.invalid:8443/left-pad", False),  # same host, other port
        ("https://evil.example/left-pad/-/left-pad-1.3.0.tgz", False),
        ("https://registry-host.invalid.evil.example/left-pad", False),
        ("https://registry-host.invalid@evil.example/left-pad", False),  # userinfo trick
        ("https://registry-host.invalid./left-pad", False),
        ("ftp://cdn.example.com/left-pad-1.3.0.tgz", False),
        ("file:///etc/passwd", False),
        ("//registry-host.invalid/left-pad", False),
        ("/left-pad/-/left-pad-1.3.0.tgz", False),
        ("", False),
        # Malformed ports come from upstream data (dist.tarball): refuse, do not crash.
        ("https://registry-host.invalid:99999/left-pad", False),
        ("https://registry-host.invalid:http/left-pad", False),
    ],
)
async def test_check_url(url: str, allowed: bool) -> None:
    async with client_for(UPSTREAM, allow_tarball_hosts=("CDN.example.com",)) as client:
        if allowed:
            assert client.check_url(url) == url
        else:
            with pytest.raises(ForbiddenOrigin) as info:
                client.check_url(url)
            assert "registry-host.invalid" in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("upstream", "package", "url"),
    [
        (UPSTREAM, LEFTPAD, f"{UPSTREAM}/left-pad"),
        (f"{UPSTREAM}/", WIDGET, f"{UPSTREAM}/@acme%2fwidget"),
        (
            "https://npm.corp.example/repo/npm",
            WIDGET,
            "https://npm.corp.example/repo/npm/@acme%2fwidget",
        ),
    ],
)
async def test_packument_url(upstream: str, package: PackageName, url: str) -> None:
    async with client_for(upstream) as client:
        assert client.packument_url(package) == url


# -- fixtures: real servers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_registry() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        registry.add("left-pad", FakeVersion("1.0.0"), FakeVersion("1.3.0"))
        registry.add("@acme/widget", FakeVersion("2.0.0"))
        registry.add("huge", FakeVersion("1.0.0", files={"blob.bin": b"\0" * MB}))
        yield registry


@pytest.fixture
def upstream(shared_registry: FakeRegistry) -> FakeRegistry:
    """The shared registry with faults and the request log reset."""
    shared_registry.faults.clear()
    shared_registry.seen.clear()
    shared_registry.mirror = False
    shared_registry.slow_seconds = 1.0
    shared_registry.packuments["left-pad"].pop("readme", None)
    return shared_registry


@dataclass
class Edge:
    """A small real server for redirects, status codes, broken gzip and echoing requests."""

    server: UvicornThread | None = None
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.seen.append((request.url.path, dict(request.headers), body))
        path = request.url.path
        if path.startswith("/redirect/"):  # /redirect/<code>?to=<location>
            code = int(path.rsplit("/", 1)[-1])
            return Response(status_code=code, headers={"location": request.query_params["to"]})
        if path == "/loop":
            return Response(status_code=302, headers={"location": "/loop"})
        if path.startswith("/status/"):
            return Response(b'{"error":"nope"}', int(path.rsplit("/", 1)[-1]))
        if path == "/bad-gzip":
            return Response(b"this is not gzip at all", headers={"content-encoding": "gzip"})
        if path == "/echo":
            echoed = {"query": request.url.query, "headers": dict(request.headers)}
            return Response(
                orjson.dumps(echoed) + body,
                201,
                headers={"x-npm-thing": "kept", "connection": "close"},
                media_type="application/json",
            )
        return Response(b"tarball bytes from " + request.headers.get("host", "").encode())


@pytest.fixture(scope="module")
def edges() -> Iterator[tuple[Edge, Edge]]:
    a, b = Edge(), Edge()
    servers = []
    for e in (a, b):
        server = UvicornThread(
            Starlette(routes=[Route("/{p:path}", e.handle, methods=["GET", "POST"])])
        )
        server.start()
        e.server = server
        servers.append(server)
    yield a, b
    for server in servers:
        server.stop()


@pytest.fixture
def edge(edges: tuple[Edge, Edge]) -> Edge:
    edges[0].seen.clear()
    edges[1].seen.clear()
    return edges[0]


@pytest.fixture
def other_host(edges: tuple[Edge, Edge]) -> Edge:
    """A second server, addressed as `localhost` so its host differs from the upstream's."""
    return edges[1]


async def collect(client: UpstreamClient, url: str) -> tuple[int, bytes]:
    chunks: list[bytes] = []
    size = await client.download(url, chunks.append)
    return size, b"".join(chunks)


# -- packuments --------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("package", "wire_path"), [(LEFTPAD, "/left-pad"), (WIDGET, "/@acme%2fwidget")]
)
async def test_get_packument(upstream: FakeRegistry, package: PackageName, wire_path: str) -> None:
    async with client_for(upstream.url) as client:
        got = await client.get_packument(package)
    assert isinstance(got, Fetched)
    assert orjson.loads(got.body) == upstream.packuments[package.name]  # gzip decoded
    assert got.etag is not None
    assert got.etag.startswith('"')
    (seen,) = upstream.seen
    assert seen.path == wire_path
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["accept-encoding"] == "gzip"
    assert seen.headers["user-agent"] == f"floodgate/{__version__}"
    assert "authorization" not in seen.headers
    assert "if-none-match" not in seen.headers


@pytest.mark.anyio
async def test_conditional_get_returns_not_modified(upstream: FakeRegistry) -> None:
    async with client_for(upstream.url) as client:
        first = await client.get_packument(LEFTPAD)
        assert isinstance(first, Fetched)
        again = await client.get_packument(LEFTPAD, etag=first.etag)
        changed = await client.get_packument(LEFTPAD, etag='"something-older"')
    assert again == NotModified(first.etag)
    assert isinstance(changed, Fetched)
    assert upstream.seen[1].headers["if-none-match"] == first.etag


@pytest.mark.anyio
async def test_upstream_token_is_sent_to_the_upstream(upstream: FakeRegistry) -> None:
    async with client_for(upstream.url, upstream_token=TOKEN) as client:
        await client.get_packument(LEFTPAD)
        await collect(client, upstream.url + upstream.tarball_path("left-pad", "1.3.0"))
    assert [s.headers.get("authorization") for s in upstream.seen] == [f"Bearer {TOKEN}"] * 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ("404", NotFound, "not found"),
        ("500", UpstreamUnavailable, "500"),
        ("drop", UpstreamUnavailable, "dropped"),
        ("slow", UpstreamUnavailable, "timed out"),
        ("malformed", None, ""),  # the client hands back bytes; parsing judges them
        (None, None, ""),
    ],
)
async def test_packument_errors_are_mapped(
    upstream: FakeRegistry, fault: str | None, error: type[UpstreamError] | None, words: str
) -> None:
    if fault is not None:
        upstream.faults["left-pad"] = fault
    async with client_for(upstream.url, read_timeout=0.2) as client:
        if error is None:
            assert isinstance(await client.get_packument(LEFTPAD), Fetched)
            return
        with pytest.raises(error) as info:
            await client.get_packument(LEFTPAD)
    message = str(info.value)
    assert "'left-pad'" in message
    assert f"{upstream.url}/left-pad" in message
    assert words in message


@pytest.mark.anyio
async def test_total_deadline_bounds_a_slow_upstream(upstream: FakeRegistry) -> None:
    upstream.faults["left-pad"] = "slow"
    async with client_for(upstream.url, read_timeout=5.0, upstream_deadline=0.2) as client:
        with pytest.raises(UpstreamUnavailable, match="timed out"):
            await client.get_packument(LEFTPAD)


@pytest.mark.anyio
async def test_refused_connection_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with client_for(url) as client:
            with pytest.raises(UpstreamUnavailable, match="ConnectError"):
                await client.get_packument(LEFTPAD)
            with pytest.raises(UpstreamUnavailable):
                await client.download(f"{url}/left-pad/-/left-pad-1.3.0.tgz", lambda _: None)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mirror", "readme_bytes", "too_big"),
    [
        (True, MB + 1, True),  # declared Content-Length over the cap
        (False, MB + 1, True),  # gzip: counted while decoding
        (True, MB - 4096, False),
        (False, MB - 4096, False),
    ],
)
async def test_packument_size_cap(
    upstream: FakeRegistry, mirror: bool, readme_bytes: int, too_big: bool
) -> None:
    upstream.mirror = mirror
    upstream.packuments["left-pad"]["readme"] = "x" * readme_bytes
    async with client_for(upstream.url, max_packument_mb=1) as client:
        if too_big:
            with pytest.raises(UpstreamBadResponse, match=f"{MB} byte limit"):
                await client.get_packument(LEFTPAD)
        else:
            got = await client.get_packument(LEFTPAD)
            assert isinstance(got, Fetched)
            assert len(got.body) > readme_bytes


# -- tarballs ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_download_streams_the_exact_bytes(upstream: FakeRegistry) -> None:
    path = upstream.tarball_path("@acme/widget", "2.0.0")
    async with client_for(upstream.url) as client:
        size, data = await collect(client, upstream.url + path)
    assert data == upstream.tarballs[path]
    assert size == len(data)
    assert upstream.seen[0].path == "/@acme/widget/-/widget-2.0.0.tgz"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "error"),
    [("404", NotFound), ("500", UpstreamUnavailable), ("drop", UpstreamUnavailable)],
)
async def test_download_errors_are_mapped(
    upstream: FakeRegistry, fault: str, error: type[UpstreamError]
) -> None:
    path = upstream.tarball_path("left-pad", "1.3.0")
    upstream.faults[path] = fault
    async with client_for(upstream.url) as client:
        with pytest.raises(error) as info:
            await collect(client, upstream.url + path)
    assert upstream.url + path in str(info.value)


@pytest.mark.anyio
async def test_download_size_cap(upstream: FakeRegistry) -> None:
    path = upstream.tarball_path("huge", "1.0.0")
    assert len(upstream.tarballs[path]) < MB  # compressed: the cap is on bytes as served
    received: list[bytes] = []
    async with client_for(upstream.url, max_tarball_mb=1) as client:
        size, data = await collect(client, upstream.url + path)
        assert data == upstream.tarballs[path]
        assert size == len(data)
        upstream.tarballs["/huge/-/huge-2.0.0.tgz"] = b"\x1f\x8b" + b"\xff" * (MB + 10)
        try:
            with pytest.raises(UpstreamBadResponse, match="byte limit"):
                await client.download(upstream.url + "/huge/-/huge-2.0.0.tgz", received.append)
        finally:
            del upstream.tarballs["/huge/-/huge-2.0.0.tgz"]
    assert sum(len(c) for c in received) <= MB


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/left-pad/-/left-pad-1.3.0.tgz",  # the control row: a good URL downloads
        "/left-pad/-/left-pad\x00-1.3.0.tgz",  # a control character
        "/left-pad/-/" + "a" * 70_000 + ".tgz",  # over httpx's URL length limit
    ],
    ids=["ok", "nul", "too-long"],
)
async def test_malformed_tarball_url_from_upstream_data_is_an_upstream_error(
    upstream: FakeRegistry, path: str
) -> None:
    """`dist.tarball` is upstream data: a URL httpx cannot send is the upstream's fault, and
    must surface as an UpstreamError (mapped to a 502), not escape as httpx.InvalidURL."""
    url = upstream.url + path
    async with client_for(upstream.url) as client:
        if path == "/left-pad/-/left-pad-1.3.0.tgz":
            assert (await collect(client, url))[1] == upstream.tarballs[path]
            return
        assert client.check_url(url) == url  # same origin: the policy has no objection
        with pytest.raises(UpstreamError):
            await collect(client, url)
    assert upstream.seen == []


@pytest.mark.anyio
@pytest.mark.parametrize(("allow", "allowed"), [(("localhost",), True), ((), False)])
async def test_download_from_another_host_needs_the_allow_list(
    upstream: FakeRegistry, allow: tuple[str, ...], allowed: bool
) -> None:
    path = upstream.tarball_path("left-pad", "1.3.0")
    url = upstream.url.replace("127.0.0.1", "localhost") + path
    async with client_for(upstream.url, allow_tarball_hosts=allow) as client:
        if allowed:
            assert (await collect(client, url))[1] == upstream.tarballs[path]
        else:
            with pytest.raises(ForbiddenOrigin, match="allow_tarball_hosts"):
                await collect(client, url)
    assert len(upstream.seen) == (1 if allowed else 0)  # refused before any request


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "authorized"),
    [("upstream", True), ("allowed-host", False), ("redirect-to-allowed-host", False)],
)
async def test_upstream_token_stays_on_the_upstream_origin(
    edge: Edge, other_host: Edge, where: str, authorized: bool
) -> None:
    """npm scopes a registry token to that registry; a CDN on the allow-list must not get it."""
    cdn = f"http://localhost:{other_host.port}/left-pad-1.3.0.tgz"
    url = {
        "upstream": f"{edge.url}/left-pad-1.3.0.tgz",
        "allowed-host": cdn,
        "redirect-to-allowed-host": f"{edge.url}/redirect/302?to={cdn}",
    }[where]
    async with client_for(edge.url, upstream_token=TOKEN, allow_tarball_hosts=("localhost",)) as c:
        await collect(c, url)
    served_by = edge if where == "upstream" else other_host
    (path, headers, _body) = served_by.seen[-1]
    assert path == "/left-pad-1.3.0.tgz"
    assert (headers.get("authorization") == f"Bearer {TOKEN}") is authorized


# -- redirects, status codes and bodies (the edge app) -----------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirects_inside_the_origin_are_followed(edge: Edge, code: int) -> None:
    async with client_for(edge.url) as client:
        size, data = await collect(client, f"{edge.url}/redirect/{code}?to=/final.tgz")
    assert data == f"tarball bytes from 127.0.0.1:{edge.port}".encode()
    assert size == len(data)
    assert [p for p, _h, _b in edge.seen] == [f"/redirect/{code}", "/final.tgz"]


@pytest.mark.anyio
async def test_redirect_to_an_allowed_host_sends_that_hosts_name(
    edge: Edge, other_host: Edge
) -> None:
    target = f"http://localhost:{other_host.port}/left-pad-1.3.0.tgz"
    async with client_for(edge.url, allow_tarball_hosts=("localhost",)) as client:
        _size, data = await collect(client, f"{edge.url}/redirect/302?to={target}")
    (_path, headers, _body) = other_host.seen[-1]
    assert headers["host"] == f"localhost:{other_host.port}"
    assert data == f"tarball bytes from localhost:{other_host.port}".encode()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "target",
    ["http://localhost:{port}/x.tgz", "https://127.0.0.1:{port}/x.tgz", "http://127.0.0.1:1/x.tgz"],
)
async def test_redirect_out_of_the_origin_is_refused(
    edge: Edge, other_host: Edge, target: str
) -> None:
    location = target.format(port=other_host.port)
    async with client_for(edge.url) as client:
        with pytest.raises(ForbiddenOrigin):
            await collect(client, f"{edge.url}/redirect/302?to={location}")
    assert other_host.seen == []


@pytest.mark.anyio
async def test_redirect_loop_gives_up(edge: Edge) -> None:
    async with client_for(edge.url) as client:
        with pytest.raises(UpstreamBadResponse, match="too many redirects"):
            await collect(client, f"{edge.url}/loop")
    assert len(edge.seen) == MAX_REDIRECTS + 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, None),
        (404, NotFound),
        (429, UpstreamUnavailable),  # rate limited: retry later, like 5xx
        (500, UpstreamUnavailable),
        (502, UpstreamUnavailable),
        (503, UpstreamUnavailable),
        (304, UpstreamBadResponse),  # never asked for
        (401, UpstreamBadResponse),
        (403, UpstreamBadResponse),
        (410, UpstreamBadResponse),
        (204, UpstreamBadResponse),
    ],
)
async def test_status_mapping(edge: Edge, status: int, error: type[UpstreamError] | None) -> None:
    url = f"{edge.url}/status/{status}"
    async with client_for(edge.url) as client:
        if error is None:
            assert (await collect(client, url))[1] == b'{"error":"nope"}'
            return
        with pytest.raises(error) as info:
            await collect(client, url)
    assert url in str(info.value)


@pytest.mark.anyio
async def test_undecodable_gzip_is_a_bad_response(edge: Edge) -> None:
    async with client_for(edge.url) as client:
        with pytest.raises(UpstreamBadResponse, match="undecodable"):
            await collect(client, f"{edge.url}/bad-gzip")


# -- passthrough -------------------------------------------------------------------------------


AUDIT_BODY = gzip.compress(b'{"left-pad":["1.3.0"]}')  # npm gzips the bulk advisory request
CLIENT_HEADERS = {
    "Authorization": "Bearer client",
    "Cookie": "session=1",
    "Content-Encoding": "gzip",
    "Content-Type": "application/json",
    "Accept-Encoding": "br",
    "Connection": "keep-alive",
    "npm-command": "audit",
}


async def forward_to_echo(edge: Edge, forward_auth: bool) -> tuple[int, dict[str, Any], bytes]:
    async with client_for(edge.url, forward_auth=forward_auth) as client:
        got = await client.forward(
            "POST", "/echo?text=left-pad&size=20", body=AUDIT_BODY, headers=CLIENT_HEADERS
        )
    assert got.body.endswith(AUDIT_BODY)  # the request body went through byte for byte
    echoed = orjson.loads(got.body[: -len(AUDIT_BODY)])
    assert not {k.lower() for k in got.headers} & {"connection", "content-length"}
    assert got.headers.get("x-npm-thing") == "kept"
    return got.status, echoed, got.body


@pytest.mark.anyio
@pytest.mark.parametrize(("forward_auth", "sent_auth"), [(False, None), (True, "Bearer client")])
async def test_forward(edge: Edge, forward_auth: bool, sent_auth: str | None) -> None:
    status, echoed, _body = await forward_to_echo(edge, forward_auth)
    assert status == 201
    assert echoed["query"] == "text=left-pad&size=20"
    sent = echoed["headers"]
    assert sent.get("authorization") == sent_auth
    assert "cookie" not in sent
    assert sent["accept-encoding"] == "gzip"  # ours, not the client's
    assert sent["npm-command"] == "audit"
    assert sent["content-type"] == "application/json"


@pytest.mark.anyio
async def test_forward_keeps_the_request_body_encoding(edge: Edge) -> None:
    """Content-Encoding is end-to-end: gzipped bytes must reach the upstream labelled as gzip."""
    _status, echoed, _body = await forward_to_echo(edge, forward_auth=False)
    assert echoed["headers"].get("content-encoding") == "gzip"
