"""`UpstreamClient`: the one module that builds an httpx client and speaks to the upstream.

Every URL it fetches is checked against the configured upstream origin (and the tarball
allow-list) first; redirects are followed only within those origins. httpx errors are mapped
to Floodgate's own `UpstreamError` tree here, so no other module sees httpx.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

import anyio
import certifi
import httpx

from proxy import __version__
from proxy.errors import (
    ForbiddenOrigin,
    NotFound,
    SettingsError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamUnavailable,
)
from proxy.npm.names import PackageName
from proxy.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS: Final = 3
MAX_FORWARD_BYTES: Final = 16 * 1024 * 1024  # search and audit answers
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "content-length",
        "content-encoding",
        "host",
    }
)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A packument body from the upstream (decoded), with its validator."""

    body: bytes
    etag: str | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class NotModified:
    """The upstream confirmed our cached copy (HTTP 304)."""

    etag: str | None


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A passthrough answer: status, headers worth keeping, and the (decoded) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification for the upstream's TLS: `ca_file` when given; else the system's store
    (which honours SSL_CERT_FILE and SSL_CERT_DIR, as a corporate TLS proxy needs) plus
    certifi's bundle (for systems whose OpenSSL has no store of its own)."""
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"cannot load ca_file {ca_file}: {exc}") from exc
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with default ports filled in; ForbiddenOrigin for a malformed URL."""
    try:
        p = urlsplit(url)
        port = p.port or (443 if p.scheme == "https" else 80)
    except ValueError as exc:  # a bad port in a URL taken from upstream data
        raise ForbiddenOrigin(f"refusing to fetch {url!r}: malformed URL ({exc})") from None
    return (p.scheme, (p.hostname or "").lower(), port)


class UpstreamClient:
    """Fetches packuments, tarballs and passthrough endpoints from the configured upstream."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.base = settings.upstream_url.rstrip("/")
        self._origin = _origin(self.base)
        self._allowed_hosts = frozenset(h.lower() for h in settings.allow_tarball_hosts)
        self._max_packument = settings.max_packument_mb * 1024 * 1024
        self._max_tarball = settings.max_tarball_mb * 1024 * 1024
        self._deadline = settings.upstream_deadline
        self._forward_auth = settings.forward_auth
        headers = {"user-agent": f"floodgate/{__version__}", "accept-encoding": "gzip"}
        # Sent only to the upstream origin itself, never to allow-listed tarball hosts.
        self._token = f"Bearer {settings.upstream_token}" if settings.upstream_token else None
        self._client = httpx.AsyncClient(
            headers=headers,
            verify=tls_context(settings.ca_file),
            timeout=httpx.Timeout(
                settings.read_timeout, connect=settings.connect_timeout, pool=settings.read_timeout
            ),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
            trust_env=False,  # never route through a proxy the environment happens to name
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- origin policy ---------------------------------------------------------------------

    def check_url(self, url: str) -> str:
        """Return `url` if Floodgate may fetch it; raise ForbiddenOrigin otherwise."""
        scheme, host, port = _origin(url)
        if (scheme, host, port) == self._origin:
            return url
        if host in self._allowed_hosts and scheme in ("http", "https"):
            return url
        raise ForbiddenOrigin(
            f"refusing to fetch {url}: it is not on the configured upstream "
            f"({self._origin[1]}) and {host!r} is not in allow_tarball_hosts"
        )

    def packument_url(self, package: PackageName) -> str:
        return f"{self.base}/{package.escaped}"

    # -- requests --------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send with streaming; a GET follows redirects, only inside allowed origins.

        The upstream token goes only to the upstream origin (unless the caller sent its own
        Authorization); each hop gets its own Host header.
        """
        for _ in range(MAX_REDIRECTS + 1):
            hop = dict(headers)
            if self._token and "authorization" not in hop and _origin(url) == self._origin:
                hop["authorization"] = self._token
            self.check_url(url)
            request = self._client.build_request(method, url, headers=hop, content=content)
            response = await self._client.send(request, stream=True)
            if method != "GET" or response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("location", "")
            await response.aclose()
            target = urljoin(url, location)
            self.check_url(target)
            log.debug("upstream redirected %s to %s", url, target)
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise UpstreamBadResponse(f"too many redirects from the upstream for {url}")

    async def _read_capped(self, response: httpx.Response, limit: int, what: str) -> bytes:
        declared = response.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and int(declared) > limit
            and not response.headers.get("content-encoding")
        ):
            raise UpstreamBadResponse(f"{what} is {declared} bytes, over the {limit} byte limit")
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise UpstreamBadResponse(f"{what} is over the {limit} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def get_packument(
        self, package: PackageName, etag: str | None = None
    ) -> Fetched | NotModified:
        """The full packument of `package` (the abbreviated form is derived by the proxy).

        Raises NotFound on 404, UpstreamUnavailable on timeouts, connection errors and 5xx,
        UpstreamBadResponse on other answers or oversized bodies.
        """
        url = self.packument_url(package)
        headers = {"accept": "application/json"}
        if etag:
            headers["if-none-match"] = etag
        started = time.monotonic()
        what = f"packument of {package.name!r} from {url}"
        with _mapped_errors(what):
            with anyio.fail_after(self._deadline):
                response = await self._send("GET", url, headers)
                try:
                    if response.status_code == 304:
                        return NotModified(response.headers.get("etag") or etag)
                    _raise_for_status(response, what)
                    body = await self._read_capped(response, self._max_packument, what)
                finally:
                    await response.aclose()
        return Fetched(body, response.headers.get("etag"), time.monotonic() - started)

    async def download(self, url: str, sink: Callable[[bytes], object]) -> int:
        """Stream a tarball (origin checked first) into `sink`; return its size in bytes.

        Capped at max_tarball_mb and at upstream_deadline seconds in total. Raises NotFound,
        UpstreamUnavailable, UpstreamBadResponse or ForbiddenOrigin.
        """
        what = f"tarball {url}"
        total = 0
        with _mapped_errors(what), anyio.fail_after(self._deadline):
            response = await self._send("GET", url, {})
            try:
                _raise_for_status(response, what)
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > self._max_tarball:
                        raise UpstreamBadResponse(
                            f"{what} is over the {self._max_tarball} byte limit"
                        )
                    sink(chunk)
            finally:
                await response.aclose()
        return total

    async def forward(
        self,
        method: str,
        path_and_query: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Forwarded:
        """Pass a request through to the same path on the upstream and return its answer.

        The client's Authorization header is dropped unless `forward_auth` is set.
        """
        url = self.base + path_and_query
        # The body is passed on as it came, so its Content-Encoding goes with it (npm gzips
        # audit requests); hop-by-hop headers, cookies and (by default) credentials do not.
        sent = {
            k: v
            for k, v in (headers or {}).items()
            if (k.lower() not in _HOP_HEADERS or k.lower() == "content-encoding")
            and k.lower() not in ("cookie", "accept-encoding")
            and (self._forward_auth or k.lower() != "authorization")
        }
        what = f"{method} {url}"
        with _mapped_errors(what), anyio.fail_after(self._deadline):
            response = await self._send(method, url, sent, body)
            try:
                data = await self._read_capped(response, MAX_FORWARD_BYTES, what)
            finally:
                await response.aclose()
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        return Forwarded(response.status_code, kept, data)


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status == 404:
        raise NotFound(f"{what}: not found upstream")
    if status >= 500 or status == 429:
        raise UpstreamUnavailable(f"{what}: upstream answered {status}")
    raise UpstreamBadResponse(f"{what}: upstream answered {status}")


@contextlib.contextmanager
def _mapped_errors(what: str) -> Iterator[None]:
    """Translate httpx and timeout errors into UpstreamError subclasses naming `what`."""
    try:
        yield
    except (UpstreamError, NotFound):
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise UpstreamUnavailable(f"{what}: upstream timed out") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamUnavailable(f"{what}: upstream connection dropped ({exc})") from exc
    except httpx.TransportError as exc:
        raise UpstreamUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    except httpx.DecodingError as exc:
        raise UpstreamBadResponse(f"{what}: undecodable body ({exc})") from exc
    except httpx.InvalidURL as exc:  # a tarball URL from upstream data that httpx refuses
        raise UpstreamBadResponse(f"{what}: invalid URL ({exc})") from exc
