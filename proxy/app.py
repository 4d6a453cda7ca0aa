"""`create_app(settings)`: the Starlette app, its lifespan (clients, caches, workers) and the one
place where Floodgate's errors become HTTP status codes and npm-style JSON bodies."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from proxy.cache.memory import PackumentCache
from proxy.cache.store import PackumentStore, TarballStore
from proxy.errors import (
    FloodgateError,
    ForbiddenOrigin,
    InvalidPackageName,
    NotFound,
    ReadOnly,
    RequestTooLarge,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from proxy.service import Gate, Service
from proxy.settings import Settings
from proxy.upstream.client import UpstreamClient
from proxy.web.access import AccessLog, AccessLogWriter
from proxy.web.responses import error_response
from proxy.web.routes import routes
from proxy.workers import RenderPool

log = logging.getLogger(__name__)

MB = 1024 * 1024

# The one mapping from domain errors to HTTP. Upstream failures are 502/504 (npm retries those);
# refusals Floodgate makes on purpose are 4xx so that npm prints them and does not retry.
STATUS: tuple[tuple[type[FloodgateError], int], ...] = (
    (InvalidPackageName, 400),
    (NotFound, 404),
    (ReadOnly, 405),
    (RequestTooLarge, 413),
    (ForbiddenOrigin, 403),
    (UpstreamUnavailable, 502),
    (UpstreamBadResponse, 502),
)


async def floodgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FloodgateError)
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    elif status == 403:
        log.warning("%s %s refused: %s", request.method, request.url.path, exc)
    headers = {"allow": "GET, HEAD"} if status == 405 else None
    return error_response(status, str(exc), headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "?")
    log.exception(
        "unexpected error on %s %s (request id %s)", request.method, request.url.path, request_id
    )
    return error_response(
        500, f"internal error in Floodgate (request id {request_id}); see its log"
    )


def build_service(settings: Settings, gate: Gate | None = None) -> Service:
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
        gate=gate,
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
    service.pool.start()
    try:
        yield service
    finally:
        service.pool.shutdown()
        await service.upstream.aclose()


def create_app(settings: Settings, gate: Gate | None = None) -> Starlette:
    """The proxy as an ASGI app; `settings.upstream` must be resolved already."""
    service = build_service(settings, gate)
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

    return Starlette(
        routes=routes(),
        middleware=[Middleware(AccessLog, writer=writer)],
        exception_handlers={FloodgateError: floodgate_error, Exception: internal_error},
        lifespan=lifespan,
    )
