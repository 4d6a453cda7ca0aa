"""`UpstreamClient`: speaks to the upstream registry (its httpx options come from `http.py`).

Every URL it fetches is checked against the configured upstream origin (and the tarball
allow-list) first; redirects are followed only within those origins. httpx errors are mapped
to Floodgate's own `UpstreamError` tree here, so no other module sees httpx.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import anyio
import httpx
import orjson

from proxy.errors import (
    ForbiddenOrigin,
    NotFound,
    UpstreamBadResponse,
    UpstreamBusy,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from proxy.files import Capped
from proxy.health import UpstreamHealth
from proxy.metrics import UPSTREAM_ERRORS, UPSTREAM_SECONDS
from proxy.npm.names import PackageName
from proxy.settings import Settings
from proxy.upstream.http import (
    MAX_REDIRECTS,
    Origins,
    client_options,
    declared_length,
    next_url,
    origin_of,
)

log = logging.getLogger(__name__)

MAX_FORWARD_BYTES: Final = 16 * 1024 * 1024  # search and audit answers
MAX_CONNECTIONS: Final = 64  # to the upstream at once
MAX_RETRY_AFTER: Final = 300.0  # seconds: the longest upstream Retry-After honoured
BUSY_STATUSES: Final = frozenset({429, 503})
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


class Source(Protocol):
    """Where packuments and tarballs come from: the upstream, the internal upstream, or the
    packages Floodgate hosts itself (`proxy.hosted.registry.HostedRegistry`)."""

    @property
    def base(self) -> str: ...

    def check_url(self, url: str) -> str: ...

    async def get_packument(
        self, package: PackageName, etag: str | None
    ) -> Fetched | NotModified: ...

    async def download(self, url: str, sink: Callable[[bytes], object]) -> int: ...

    async def aclose(self) -> None: ...


class UpstreamClient:
    """Fetches packuments, tarballs and passthrough endpoints from the configured upstream."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base = settings.upstream_url.rstrip("/")
        self.origins = Origins(
            self.base,
            settings.allow_tarball_hosts,
            why=f"it is not on the configured upstream ({origin_of(self.base)[1]}) and its "
            "host is not in allow_tarball_hosts",
        )
        self._max_packument = settings.max_packument_mb * 1024 * 1024
        self._max_tarball = settings.max_tarball_mb * 1024 * 1024
        self._deadline = settings.upstream_deadline
        self._forward_auth = settings.forward_auth
        # Sent only to the upstream origin itself, never to allow-listed tarball hosts.
        self._token = f"Bearer {settings.upstream_token}" if settings.upstream_token else None
        self._clock = clock
        self._busy_until = 0.0  # the upstream's Retry-After: not asked again before this
        self.health = UpstreamHealth(clock)  # outcomes of requests, for readiness
        self._client = httpx.AsyncClient(
            # Waiting for a free connection is queueing behind other requests, not a slow
            # upstream: only the request's own deadline bounds it, never the read timeout.
            timeout=httpx.Timeout(
                settings.read_timeout,
                connect=settings.connect_timeout,
                pool=settings.upstream_deadline,
            ),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max(1, max_connections // 2),
            ),
            transport=transport,
            **client_options(settings.ca_file),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- origin policy ---------------------------------------------------------------------

    def check_url(self, url: str) -> str:
        """Return `url` if Floodgate may fetch it; raise ForbiddenOrigin otherwise."""
        return self.origins.check(url)

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
        for hops in range(MAX_REDIRECTS + 2):
            hop = dict(headers)
            home = self.origins.is_home(url)
            if self._token and "authorization" not in hop and home:
                hop["authorization"] = self._token
            self.origins.check(url)
            if home:
                self._check_busy(url)
            request = self._client.build_request(method, url, headers=hop, content=content)
            response = await self._client.send(request, stream=True)
            if home and response.status_code in BUSY_STATUSES:
                self._note_busy(url, response.headers.get("retry-after", ""))
            if method != "GET":
                return response
            target = next_url(
                self.origins,
                url,
                response.status_code,
                response.headers.get("location", ""),
                hops,
            )
            if target is None:
                return response
            await response.aclose()
            log.debug("upstream redirected %s to %s", url, target)
            if origin_of(target) != origin_of(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise AssertionError("unreachable: next_url stops after MAX_REDIRECTS")

    def _observed(self, kind: str, *, server_errors_fail: bool = False) -> _Observed:
        return _Observed(self.health, kind, server_errors_fail)

    def _check_busy(self, url: str) -> None:
        left = self._busy_until - self._clock()
        if left > 0:
            raise UpstreamBusy(
                f"{url}: not asked: the upstream said to retry after {left:.0f}s", left
            )

    def _note_busy(self, url: str, header: str) -> None:
        wait = retry_after_seconds(header)
        if wait is not None and wait > 0:
            wait = min(wait, MAX_RETRY_AFTER)
            self._busy_until = max(self._busy_until, self._clock() + wait)
            log.warning("upstream is busy (%s): not asking it again for %.0fs", url, wait)

    def retry_after(self) -> float:
        """Seconds the upstream asked us to wait that are still left (0: none)."""
        return max(0.0, self._busy_until - self._clock())

    async def _read_capped(self, response: httpx.Response, limit: int, what: str) -> bytes:
        def too_big(total: int) -> Exception:
            return UpstreamBadResponse(f"{what} is {total} bytes, over the {limit} byte limit")

        capped = Capped(limit, too_big)
        capped.check_declared(declared_length(response))
        async for chunk in response.aiter_bytes():
            capped.add(chunk)
        return capped.body()

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
        with self._observed("packument"), _mapped_errors(what):
            with anyio.fail_after(self._deadline):
                response = await self._send("GET", url, headers)
                try:
                    if response.status_code == 304:
                        return NotModified(response.headers.get("etag") or etag)
                    await _raise_for_status(response, what)
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
        with (
            self._observed("tarball"),
            _mapped_errors(what),
            anyio.fail_after(self._deadline),
        ):
            response = await self._send("GET", url, {})
            try:
                await _raise_for_status(response, what)
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
        with (
            self._observed("forward", server_errors_fail=True) as observed,
            _mapped_errors(what),
            anyio.fail_after(self._deadline),
        ):
            response = await self._send(method, url, sent, body)
            observed.status = response.status_code
            try:
                data = await self._read_capped(response, MAX_FORWARD_BYTES, what)
            finally:
                await response.aclose()
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        return Forwarded(response.status_code, kept, data)


MAX_REFUSAL_BYTES = 64 * 1024  # the JSON body of a registry's policy refusal


async def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status == 451:  # a registry's policy refusal (another Floodgate's): keep its reason
        capped = Capped(MAX_REFUSAL_BYTES, lambda n: UpstreamBadResponse(f"{what}: answered 451"))
        async for chunk in response.aiter_bytes():
            capped.add(chunk)
        try:
            error = orjson.loads(capped.body()).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        raise UpstreamRefused(f"{what}: the registry refused it: {error or 'status 451'}")
    if status == 404:
        raise NotFound(f"{what}: not found upstream")
    if status in BUSY_STATUSES:
        wait = retry_after_seconds(response.headers.get("retry-after", ""))
        if wait:
            wait = min(wait, MAX_RETRY_AFTER)
            raise UpstreamBusy(f"{what}: upstream answered {status}, retry after {wait:.0f}s", wait)
    if status >= 500 or status == 429:
        raise UpstreamUnavailable(f"{what}: upstream answered {status}")
    raise UpstreamBadResponse(f"{what}: upstream answered {status}")


class _Observed:
    """Times one upstream request for the latency histogram, counts its error, and tells
    `health` whether the upstream answered (timeouts, dropped connections and, for forwarded
    requests, 5xx answers say it did not). Wraps `_mapped_errors`, so it sees Floodgate's
    errors."""

    __slots__ = ("health", "kind", "server_errors_fail", "started", "status")

    def __init__(self, health: UpstreamHealth, kind: str, server_errors_fail: bool):
        self.health = health
        self.kind = kind
        self.server_errors_fail = server_errors_fail
        self.started = 0.0
        self.status = 0

    def __enter__(self) -> _Observed:
        self.started = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        UPSTREAM_SECONDS.labels(self.kind).observe(time.perf_counter() - self.started)
        if exc is None:
            if self.server_errors_fail and self.status >= 500:
                UPSTREAM_ERRORS.labels(self.kind, f"status {self.status // 100}xx").inc()
                self.health.failed(f"it answered {self.status}")
            else:
                self.health.ok()
            return
        if isinstance(exc, NotFound):
            self.health.ok()  # an answer
            return
        if not isinstance(exc, Exception):
            return  # cancelled: says nothing about the upstream
        UPSTREAM_ERRORS.labels(self.kind, type(exc).__name__).inc()
        if isinstance(exc, UpstreamBusy | ForbiddenOrigin):
            return  # asked to wait, or not asked at all: says nothing about reachability
        if isinstance(exc, UpstreamUnavailable):
            self.health.failed(str(exc))
        elif isinstance(exc, UpstreamError):
            self.health.ok()  # it answered, with something Floodgate does not accept


def retry_after_seconds(header: str, now: float | None = None) -> float | None:
    """A Retry-After header as seconds from now: delay-seconds or an HTTP-date; None when
    absent or unreadable (RFC 9110 10.2.3)."""
    header = header.strip()
    if not header:
        return None
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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
