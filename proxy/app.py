"""`create_app(settings)`: the Starlette app, its lifespan (clients, caches, workers) and the one
place where Floodgate's errors become HTTP status codes and npm-style JSON bodies."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.cache.memory import PackumentCache
from proxy.dashboard.queries import prepare
from proxy.errors import (
    BadRequest,
    CacheUnavailable,
    ClientBusy,
    Conflict,
    FloodgateError,
    Forbidden,
    ForbiddenOrigin,
    HostedUnavailable,
    InvalidPackageName,
    NotFound,
    PolicyBlocked,
    ReadOnly,
    RequestTooLarge,
    Unauthenticated,
    UpstreamBadResponse,
    UpstreamBusy,
    UpstreamUnavailable,
)
from proxy.gate import Gate, OpenGate, PolicyGate
from proxy.hosted.access import HostedAccess
from proxy.hosted.registry import HostedRegistry
from proxy.inspect import feed_is_user_given, open_detector
from proxy.internal import InternalNames
from proxy.metrics import RequestCounts
from proxy.policy.holder import PolicyHolder, resolve_policy_path
from proxy.service import Service
from proxy.settings import Settings
from proxy.storage.backends import (
    decisions_path,
    open_blob_stores,
    open_database,
    open_decision_log,
    open_hosted_store,
    open_leases,
    open_token_store,
)
from proxy.storage.cluster import Lease, NoLeases, PgLeases, PgNotifier
from proxy.tokens import TokenIndex
from proxy.upstream.client import UpstreamClient
from proxy.web.access import AccessLog, AccessLogWriter
from proxy.web.auth import HOW_TO_GET_ONE, WWW_AUTHENTICATE, Authenticate
from proxy.web.dashboard import keep_warm
from proxy.web.responses import error_response, notice_header
from proxy.web.routes import PackageEndpoint, routes
from proxy.workers import RenderPool

if TYPE_CHECKING:
    from proxy.storage.blobs import S3Bucket
    from proxy.storage.sql import PgDatabase

log = logging.getLogger(__name__)

MB = 1024 * 1024
CLIENT_RETRY_AFTER = 5  # seconds a client over its share of work is asked to wait

# The one mapping from domain errors to HTTP. Upstream failures are 502/504 (npm retries those);
# refusals Floodgate makes on purpose are 4xx so that clients print them and do not retry. A
# policy block is 451, not 403: pnpm answers 401/403 with "try pnpm login", and yarn 1 prints the
# standard phrase of the code ("Unavailable For Legal Reasons") when it prints nothing else.
STATUS: tuple[tuple[type[FloodgateError], int], ...] = (
    (InvalidPackageName, 400),
    (NotFound, 404),
    (ReadOnly, 405),
    (RequestTooLarge, 413),
    (ClientBusy, 429),
    (BadRequest, 400),
    (ForbiddenOrigin, 403),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (Conflict, 409),
    (PolicyBlocked, 451),
    (UpstreamBusy, 503),  # the upstream's Retry-After, passed on
    (HostedUnavailable, 503),  # Floodgate's own store: not the upstream's failure
    (UpstreamUnavailable, 502),
    (UpstreamBadResponse, 502),
    (CacheUnavailable, 503),
)


async def floodgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FloodgateError)
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    elif status in (401, 403, 409, 451):
        log.warning("%s %s refused: %s", request.method, request.url.path, exc)
    headers = {"allow": "GET, HEAD"} if status == 405 else None
    if isinstance(exc, PolicyBlocked):
        # npm prints npm-notice as `npm notice ...` even on an error response.
        headers = {"npm-notice": notice_header(str(exc))}
    if isinstance(exc, Unauthenticated):
        message = f"{exc}: {HOW_TO_GET_ONE}"
        return error_response(
            401,
            message,
            {"www-authenticate": WWW_AUTHENTICATE, "npm-notice": notice_header(message)},
        )
    if isinstance(exc, Forbidden):
        headers = {"npm-notice": notice_header(str(exc))}
    if isinstance(exc, ClientBusy):
        headers = {"retry-after": str(CLIENT_RETRY_AFTER)}
    if isinstance(exc, UpstreamBusy):
        headers = {"retry-after": str(max(1, math.ceil(exc.retry_after)))}
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


def build_gate(
    settings: Settings,
    db: PgDatabase | None = None,
    leases: Lease | None = None,
    notifier: PgNotifier | None = None,
) -> Gate:
    """The decide step: detector, verdict store, policy and decision log (OpenGate with
    --no-enforce), in `db` when the shared database is used. Raises PolicyError for a
    malformed policy: Floodgate refuses to start."""
    if not settings.enforce:
        return OpenGate()
    holder = PolicyHolder(resolve_policy_path(settings.policy))  # parse before opening files
    # Every group's policy is parsed before anything opens too: one holder per distinct file.
    holders: dict[Path, PolicyHolder] = {holder.path: holder}
    groups: list[tuple[str, PolicyHolder]] = []
    for group, policy in settings.group_policies:
        path = resolve_policy_path(policy)
        if path not in holders:
            holders[path] = PolicyHolder(path)
        groups.append((group, holders[path]))
    gate = PolicyGate(
        holder,
        # A feed the user typed is loaded now (a broken one stops startup); the default one
        # is loaded by the gate once running, so a slow or absent network never delays serving.
        open_detector(settings, load_feed_now=feed_is_user_given(settings), db=db),
        open_decision_log(settings, db),
        scan_timeout=settings.scan_timeout,
        internal=InternalNames.of(settings.internal_scopes, settings.internal_names),
        leases=leases if leases is not None else NoLeases(),
        on_verdict=(lambda name: notifier.publish("verdict", name)) if notifier else None,
    )
    for group, group_holder in groups:
        gate.assign(group, group_holder)
    return gate


def prepare_dashboard(settings: Settings) -> None:
    """Give the decision log the dashboard's indexes and hourly counts (once per log; an
    older log is counted now). A log that cannot be prepared only makes the pages slower."""
    path = decisions_path(settings)
    if not settings.enforce or not path.exists():
        return
    try:
        prepare(path)
    except sqlite3.Error as exc:
        log.warning("dashboard indexes not added to %s: %s", path, exc)


def build_service(
    settings: Settings,
    db: PgDatabase | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Service:
    """Everything the proxy needs, built from settings; `async with` it to run (which closes
    `db`, the shared database, opened here when not given). `clock` is the monotonic time the
    packument cache's freshness is measured by (tests pass one they move by hand)."""
    if db is None:
        db = open_database(settings, degrade=True)  # None: the embedded default
    leases = open_leases(db)
    tarballs, saved = open_blob_stores(settings, leases)
    closing = [db.close] if db is not None else []
    health = [db.health] if db is not None else []
    bucket = getattr(tarballs, "bucket", None)
    if bucket is not None:
        health.append(bucket.health)
    if isinstance(leases, PgLeases):
        closing.append(leases.pool.close)
    notifier = PgNotifier(db) if db is not None else None
    return Service(
        settings,
        UpstreamClient(settings),
        packuments=PackumentCache(settings.packument_memory_mb * MB),
        saved=saved,
        tarballs=tarballs,
        pool=RenderPool(settings.render_workers),
        gate=build_gate(settings, db, leases, notifier),
        closing=closing,
        health=health,
        notifier=notifier,
        internal_upstream=internal_client(settings),
        hosted=hosted_registry(settings, db, leases, bucket),
        clock=clock,
    )


def hosted_registry(
    settings: Settings, db: PgDatabase | None, leases: Lease, bucket: S3Bucket | None = None
) -> HostedRegistry | None:
    """The packages Floodgate hosts: the internal names, when there are some and no internal
    registry serves them; in the shared database (and their tarballs in `bucket`, the object
    store) when there is one."""
    if not (settings.internal_scopes or settings.internal_names) or settings.internal_upstream:
        return None
    return HostedRegistry(
        open_hosted_store(settings, db, bucket),
        HostedAccess.of(
            settings.internal_readers,
            settings.internal_publishers,
            anonymous_read=settings.internal_anonymous_read,
            admin_groups=settings.admin_groups,
            unpublish_hours=settings.unpublish_hours,
        ),
        InternalNames.of(settings.internal_scopes, settings.internal_names),
        max_publish_bytes=settings.max_publish_mb * MB,
        leases=leases,
    )


def internal_client(settings: Settings) -> UpstreamClient | None:
    """The client of the internal registry, when one is set: the same limits and TLS as the
    upstream's, its own origin and token, and no other tarball hosts."""
    if settings.internal_upstream is None:
        return None
    return UpstreamClient(
        dataclasses.replace(
            settings,
            upstream=settings.internal_upstream,
            upstream_token=settings.internal_upstream_token,
            allow_tarball_hosts=(),
        )
    )


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


def create_app(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> ASGIApp:
    """The proxy as an ASGI app; `settings.upstream` must be resolved already (`clock`: see
    `build_service`).

    Raises PolicyError when the policy is malformed (before anything starts).
    """
    db = open_database(settings, degrade=True)  # None: the embedded default
    service = build_service(settings, db, clock=clock)
    prepare_dashboard(settings)
    counts = RequestCounts()
    writer = (
        AccessLogWriter()
        if settings.access_log and settings.log_level in ("debug", "info")
        else None
    )

    tokens = open_token_store(settings, db)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with service, anyio.create_task_group() as tasks:
            app.state.tokens = tokens
            app.state.service = service
            app.state.request_counts = counts
            app.state.ready_probe = anyio.Lock()
            if writer is not None:
                tasks.start_soon(writer.run)
            tasks.start_soon(keep_warm, settings)
            log.info("proxying %s", settings.upstream)
            yield
            tasks.cancel_scope.cancel()
        tokens.close()

    app = Starlette(
        routes=routes(),
        exception_handlers={FloodgateError: floodgate_error, Exception: internal_error},
        lifespan=lifespan,
    )
    index = TokenIndex(tokens)
    if index.any():
        log.info(
            "client tokens in use (%s); anonymous access %s",
            tokens.where,
            "allowed" if settings.anonymous == "on" else "refused",
        )
    authenticated = Authenticate(PackageFastLane(app), index, settings.anonymous)
    return AccessLog(authenticated, writer=writer, counts=counts)
