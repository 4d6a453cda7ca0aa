"""`FeedClient`: the OSV feed fetcher follows redirects only within the feed's own origin, caps
the body, and maps failures to Floodgate's errors (a real server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from proxy.errors import ForbiddenOrigin, UpstreamBadResponse, UpstreamUnavailable
from proxy.upstream.feed import FeedClient
from tests.fakes.registry import UvicornThread

BODY = b"PK\x05\x06" + b"\x00" * 18  # an empty zip archive


@pytest.fixture(scope="module")
def feed_server() -> Iterator[str]:
    async def handle(request: Request) -> Response:
        path = request.url.path
        port = request.url.port
        if path == "/feeds/all.zip":
            return Response(BODY, media_type="application/zip")
        if path == "/moved.zip":  # same origin: followed
            return RedirectResponse("/feeds/all.zip", 302)
        if path == "/elsewhere.zip":  # another origin (another loopback address): refused
            return RedirectResponse(f"http://127.0.0.2:{port}/feeds/all.zip", 302)
        if path == "/loop.zip":
            return RedirectResponse("/loop.zip", 302)
        if path == "/big.zip":
            return Response(b"x" * 4096, media_type="application/zip")
        return Response(b"gone", 404)

    server = UvicornThread(Starlette(routes=[Route("/{p:path}", handle)]))
    server.start()
    yield server.url
    server.stop()


def test_fetches_and_follows_a_redirect_within_the_feeds_origin(feed_server: str) -> None:
    client = FeedClient()
    assert client(f"{feed_server}/feeds/all.zip") == BODY
    assert client(f"{feed_server}/moved.zip") == BODY
    assert client.downloads == 2


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/elsewhere.zip", ForbiddenOrigin, "within its own origin"),
        ("/loop.zip", UpstreamBadResponse, "too many redirects"),
        ("/missing.zip", UpstreamBadResponse, "answered 404"),
    ],
)
def test_refusals(feed_server: str, path: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        FeedClient()(feed_server + path)


def test_the_body_is_capped(feed_server: str) -> None:
    with pytest.raises(UpstreamBadResponse, match="over 1024 bytes"):
        FeedClient(max_bytes=1024)(f"{feed_server}/big.zip")


def test_an_unreachable_feed_is_upstream_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable, match="feed"):
        FeedClient()("http://127.0.0.1:9/feeds/all.zip")  # the discard port: refused


def test_a_ca_file_that_cannot_be_read_is_a_settings_error() -> None:
    from proxy.errors import SettingsError

    with pytest.raises(SettingsError, match="ca_file"):
        FeedClient(ca_file="/nonexistent/ca.pem")
