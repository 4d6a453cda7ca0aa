"""The one place that configures httpx: TLS verification, identity, proxies, redirects, origins.

Both network clients Floodgate has (the upstream registry client and the OSV feed fetcher) are
built from `client_options`, so `ca_file` and the "never through an environment proxy" rule hold
for both, and both follow redirects only by `next_url`, which refuses to leave the origins they
were given.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

from proxy import __version__
from proxy.errors import ForbiddenOrigin, SettingsError, UpstreamBadResponse

MAX_REDIRECTS: Final = 3
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})

Origin = tuple[str, str, int]


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification for TLS: `ca_file` when given; else the system's store (which honours
    SSL_CERT_FILE and SSL_CERT_DIR, as a corporate TLS proxy needs) plus certifi's bundle (for
    systems whose OpenSSL has no store of its own)."""
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"cannot load ca_file {ca_file}: {exc}") from exc
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context


def client_options(ca_file: str | None) -> dict[str, Any]:
    """Keyword arguments for `httpx.Client` / `httpx.AsyncClient`: our user agent, TLS
    verification, no environment proxies, redirects handled by `next_url` only."""
    return {
        "headers": {"user-agent": f"floodgate/{__version__}", "accept-encoding": "gzip"},
        "verify": tls_context(ca_file),
        "follow_redirects": False,
        "trust_env": False,  # never route through a proxy the environment happens to name
    }


def origin_of(url: str) -> Origin:
    """(scheme, host, port) with default ports filled in; ForbiddenOrigin for a malformed URL."""
    try:
        p = urlsplit(url)
        port = p.port or (443 if p.scheme == "https" else 80)
    except ValueError as exc:  # a bad port in a URL taken from upstream data
        raise ForbiddenOrigin(f"refusing to fetch {url!r}: malformed URL ({exc})") from None
    return (p.scheme, (p.hostname or "").lower(), port)


class Origins:
    """Where a client may fetch from: one home origin, plus hosts allowed by name."""

    def __init__(self, home: str, allowed_hosts: Iterable[str] = (), why: str = ""):
        self.home = origin_of(home)
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.why = why or f"it is not on {self.home[1]}"

    def check(self, url: str) -> str:
        """Return `url` if it may be fetched; raise ForbiddenOrigin otherwise."""
        scheme, host, port = origin_of(url)
        if (scheme, host, port) == self.home:
            return url
        if host in self.allowed_hosts and scheme in ("http", "https"):
            return url
        raise ForbiddenOrigin(f"refusing to fetch {url}: {self.why}")

    def is_home(self, url: str) -> bool:
        return origin_of(url) == self.home


def next_url(origins: Origins, url: str, status: int, location: str, hops: int) -> str | None:
    """Where a GET answered with `status` goes next: None when it is not a redirect; the target
    when it stays within `origins`; ForbiddenOrigin or UpstreamBadResponse otherwise."""
    if status not in REDIRECTS:
        return None
    if hops >= MAX_REDIRECTS:
        raise UpstreamBadResponse(f"too many redirects from {url}")
    return origins.check(urljoin(url, location))


def declared_length(response: httpx.Response) -> int | None:
    """The Content-Length of an unencoded body (an encoded one says nothing of the decoded
    size), or None."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and not response.headers.get("content-encoding"):
        return int(declared)
    return None
