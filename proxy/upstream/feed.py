"""Fetch a feed file (the OSV malicious-packages export) over HTTP, for `OsvFeed`.

The detector has no HTTP client of its own; this is the fetch function the CLI and the app
hand to `OsvFeed`. It is a plain GET with timeouts and a size cap, errors mapped to ours.
"""

from __future__ import annotations

import logging

import httpx

from proxy import __version__
from proxy.errors import UpstreamBadResponse, UpstreamUnavailable

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 512 * 1024 * 1024
TIMEOUT = 60.0  # seconds per read


def fetch_feed(url: str, max_bytes: int = MAX_FEED_BYTES) -> bytes:
    """GET `url` and return its body; raise UpstreamUnavailable or UpstreamBadResponse."""
    headers = {"user-agent": f"floodgate/{__version__}"}
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=True, trust_env=False) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise UpstreamBadResponse(f"feed {url} answered {response.status_code}")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise UpstreamBadResponse(f"feed {url} is over {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"feed {url}: {type(exc).__name__}: {exc}") from exc
    log.info("fetched feed %s: %d bytes", url, total)
    return b"".join(chunks)
