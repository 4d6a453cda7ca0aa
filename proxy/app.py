"""`create_app(settings)`: the Starlette app, its lifespan (clients, caches, workers) and the one
place where Floodgate's errors become HTTP status codes and npm-style JSON bodies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.cache.memory import PackumentCache
from proxy.cache.store import PackumentStore, TarballStore
from proxy.decisions import DecisionLog
from proxy.detect.evaluate import Detector
from proxy.detect.osv import OsvFeed
from proxy.detect.store import VerdictStore
from proxy.errors import (
    BadRequest,
    CacheUnavailable,
    FloodgateError,
    ForbiddenOrigin,
    InvalidPackageName,
    NotFound,
    PolicyBlocked,
    ReadOnly,
    RequestTooLarge,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from proxy.gate import PolicyGate
from proxy.policy.holder import PolicyHolder, resolve_policy_path
from proxy.service import Service
from proxy.settings import Settings
from proxy.upstream.client import UpstreamClient
from proxy.upstream.feed import fetch_feed
from proxy.web.access import AccessLog, AccessLogWriter
from proxy.web.responses import error_response, notice_header
from proxy.web.routes import PackageEndpoint, routes
from proxy.workers import RenderPool

log = logging.getLogger(__name__)

MB = 1024 * 1024
POLICY_POLL = 2.0  # seconds between checks of the policy file

# The one mapping from domain errors to HTTP. Upstream failures are 502/504 (npm retries those);
# refusals Floodgate makes on purpose are 4xx so that clients print them and do not retry. A
# policy block is 451, not 403: pnpm answers 401/403 with "try pnpm login", and yarn 1 prints the
# standard phrase of the code ("Unavailable For Legal Reasons") when it prints nothing else.
STATUS: tuple[tuple[type[FloodgateError], int], ...] = (
    (InvalidPackageName, 400),
    (NotFound, 404),
    (ReadOnly, 405),
    (RequestTooLarge, 413),
    (BadRequest, 400),
    (ForbiddenOrigin, 403),
    (PolicyBlocked, 451),
    (UpstreamUnavailable, 502),
    (UpstreamBadResponse, 502),
    (CacheUnavailable, 503),
)


async def floodgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FloodgateError)
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    elif status in (403, 451):
        log.warning("%s %s refused: %s", request.method, request.url.path, exc)
    headers = {"allow": "GET, HEAD"} if status == 405 else None
    if isinstance(exc, PolicyBlocked):
        # npm prints npm-notice as `npm notice ...` even on an error response.
        headers = {"npm-notice": notice_header(str(exc))}
    return error_response(status, str(exc), headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, OSError):
        # Local I/O reaching the edge is the cache folder failing (network errors are
        # UpstreamErrors by now): the request is fine and may work later, so 503 with why.
        where = f" ({exc.filename})" if exc.filename else ""
        reason = f"Floodgate cannot write its cache{where}: {exc.strerror or exc}; try again later"
        return await floodgate_error(request, CacheUnavailable(reason))
    request_id = request.scope.get("state", {}).get("request_id", "?")
    log.exception(
        "unexpected error on %s %s (request id %s)", request.method, request.url.path, request_id
    )
    return error_response(
        500, f"internal error in Floodgate (request id {request_id}); see its log"
    )


def build_gate(settings: Settings) -> PolicyGate | None:
    """The decide step: detector, verdict store, policy and decision log (None: --no-enforce).

    Raises PolicyError for a malformed policy: Floodgate refuses to start with one.
    """
    if not settings.enforce:
        return None
    holder = PolicyHolder(resolve_policy_path(settings.policy))
    detect_dir = settings.cache_dir / "detector"
    feed = None
    if settings.osv_feed:
        feed = OsvFeed(
            settings.osv_feed,
            fetch=fetch_feed,
            cache_dir=detect_dir,
            interval=settings.osv_refresh_seconds,
        )
    return PolicyGate(
        holder,
        Detector.open(detect_dir, feed),
        VerdictStore(detect_dir / "verdicts.sqlite3"),
        DecisionLog(settings.cache_dir / "decisions.sqlite3"),
        osv=feed,
        scan_timeout=settings.scan_timeout,
    )


def build_service(settings: Settings) -> Service:
    """Everything the proxy needs, built from settings (no I/O yet: see `open_service`)."""
    cache_dir = settings.cache_dir
    return Service(
        settings,
        UpstreamClient(settings),
        packuments=PackumentCache(settings.packument_memory_mb * MB),
        saved=PackumentStore(cache_dir / "packuments", settings.tarball_cache_mb * MB // 4),
        tarballs=TarballStore(
            cache_dir / "tarballs", settings.tarball_cache_mb * MB, settings.tarball_memory_mb * MB
        ),
        pool=RenderPool(settings.render_workers),
        gate=build_gate(settings),
    )


@contextlib.asynccontextmanager
async def open_service(service: Service) -> AsyncIterator[Service]:
    """Index the disk caches, start the render workers; close everything on the way out."""
    await anyio.to_thread.run_sync(service.tarballs.index.scan)
    await anyio.to_thread.run_sync(service.saved.index.scan)
    log.info(
        "cache %s: %d tarballs (%.1f MB), %d saved packuments",
        service.settings.cache_dir,
        len(service.tarballs.index),
        service.tarballs.index.total / MB,
        len(service.saved.index),
    )
    gate = service.gate
    if gate is not None:
        policy = gate.policy
        log.info(
            "policy %s (%s, digest %s): %d rules, %d waivers, mode %s",
            policy.name,
            policy.source,
            policy.digest,
            len(policy.rules),
            len(policy.waivers),
            policy.mode,
        )
        if gate.osv is not None:
            await anyio.to_thread.run_sync(gate.osv.refresh)
            log.info("OSV feed %s: %d records", gate.osv.source, gate.osv.index.record_count)
    else:
        log.warning("enforcement is off (--no-enforce): packages are served unchecked")
    service.pool.start()
    try:
        async with anyio.create_task_group() as tasks:
            service.tasks = tasks
            if gate is not None:
                tasks.start_soon(_watch, gate)
            try:
                yield service
            finally:
                service.tasks = None
                tasks.cancel_scope.cancel()
    finally:
        service.pool.shutdown()
        await service.upstream.aclose()
        if gate is not None:
            gate.decisions.close()


async def _watch(gate: PolicyGate) -> None:
    """Pick up policy edits (file watch, and SIGHUP where signals reach us) and OSV refreshes."""
    with contextlib.suppress(ValueError, NotImplementedError, RuntimeError):
        # Only the main thread can take signals; tests run the app in other threads.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, gate.holder.reload)
    while True:
        await anyio.sleep(POLICY_POLL)
        gate.holder.reload_if_changed()
        if gate.osv is not None and gate.osv.due():
            await anyio.to_thread.run_sync(gate.osv.refresh_if_due)


class PackageFastLane:
    """Sends package requests (GET/HEAD outside `/-/`, the hot path) straight to the package
    endpoint, skipping Starlette's router and its two exception middlewares; errors still go
    through the same handlers. Everything else, lifespan included, goes to `app`.
    """

    def __init__(self, app: Starlette):
        self.app = app
        self.endpoint = PackageEndpoint()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"].startswith("/-/")
        ):
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.endpoint(scope, receive, tracked)
        except Exception as exc:
            if started:  # too late for an error response: let the server drop the connection
                raise
            request = Request(scope, receive)
            handler = floodgate_error if isinstance(exc, FloodgateError) else internal_error
            response = await handler(request, exc)
            await response(scope, receive, send)


def create_app(settings: Settings) -> ASGIApp:
    """The proxy as an ASGI app; `settings.upstream` must be resolved already.

    Raises PolicyError when the policy is malformed (before anything starts).
    """
    service = build_service(settings)
    writer = (
        AccessLogWriter()
        if settings.access_log and settings.log_level in ("debug", "info")
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(service), anyio.create_task_group() as tasks:
            app.state.service = service
            if writer is not None:
                tasks.start_soon(writer.run)
            log.info("proxying %s", settings.upstream)
            yield
            tasks.cancel_scope.cancel()

    app = Starlette(
        routes=routes(),
        exception_handlers={FloodgateError: floodgate_error, Exception: internal_error},
        lifespan=lifespan,
    )
    return AccessLog(PackageFastLane(app), writer=writer)
