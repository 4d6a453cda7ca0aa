"""`FeedClient`: fetches a feed file (the OSV malicious-packages export) for `OsvFeed`.

The detector has no HTTP client of its own; this is the fetch function `open_detector` hands
to `OsvFeed`. It is built like the upstream client (`client_options`: `ca_file`, no environment
proxies), follows redirects only within the feed URL's own origin, and caps the body.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import httpx

from proxy.errors import ForbiddenOrigin, UpstreamBadResponse, UpstreamError, UpstreamUnavailable
from proxy.files import Capped
from proxy.upstream.http import Origins, client_options, declared_length, next_url

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 512 * 1024 * 1024
TIMEOUT = 60.0  # seconds per read
CONNECT_TIMEOUT = 10.0  # an unreachable default feed must not hold `floodgate scan` for long


class FeedClient:
    """A callable `url -> bytes` for OsvFeed; raises UpstreamUnavailable, UpstreamBadResponse or
    ForbiddenOrigin."""

    def __init__(self, ca_file: str | None = None, max_bytes: int = MAX_FEED_BYTES):
        self._options = client_options(ca_file)
        self.max_bytes = max_bytes
        self.downloads = 0  # how many feed bodies were fetched (for logs and tests)

    def head(self, url: str, nbytes: int) -> bytes:
        """The first `nbytes` of `url` (a Range request), or all of it where the server
        ignores ranges; unencoded, so the range counts the file's own bytes."""
        return self(url, first_bytes=nbytes)

    def __call__(self, url: str, *, first_bytes: int | None = None) -> bytes:
        origins = Origins(url, why="a feed may only redirect within its own origin")
        headers = (
            {"range": f"bytes=0-{first_bytes - 1}", "accept-encoding": "identity"}
            if first_bytes
            else {}
        )
        try:
            timeout = httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT)
            with httpx.Client(timeout=timeout, **self._options) as client:
                for hops in range(10):
                    with _open(client, url, headers) as response:
                        target = next_url(
                            origins,
                            url,
                            response.status_code,
                            response.headers.get("location", ""),
                            hops,
                        )
                        if target is None:
                            body = self._read(response, url, partial_ok=bool(first_bytes))
                            break
                    url = target
        except (UpstreamError, ForbiddenOrigin):
            raise
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"feed {url}: {type(exc).__name__}: {exc}") from exc
        self.downloads += 1
        log.info("fetched feed %s: %d bytes", url, len(body))
        return body

    def _read(self, response: httpx.Response, url: str, partial_ok: bool = False) -> bytes:
        if response.status_code != 200 and not (partial_ok and response.status_code == 206):
            raise UpstreamBadResponse(f"feed {url} answered {response.status_code}")

        def too_big(total: int) -> Exception:
            return UpstreamBadResponse(f"feed {url} is over {self.max_bytes} bytes ({total})")

        capped = Capped(self.max_bytes, too_big)
        capped.check_declared(declared_length(response))
        for chunk in response.iter_bytes():
            capped.add(chunk)
        return capped.body()


@contextlib.contextmanager
def _open(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> Iterator[httpx.Response]:
    with client.stream("GET", url, headers=headers) as response:
        yield response


PING_TIMEOUT = 5.0  # seconds `floodgate doctor` waits for the upstream


def ping(url: str, ca_file: str | None = None, timeout: float = PING_TIMEOUT) -> str | None:
    """None when `url` answers HTTP at all (any status under 500), else why not."""
    try:
        with httpx.Client(timeout=timeout, **client_options(ca_file)) as client:
            status = client.get(url).status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if status < 500 else f"answered {status}"
