"""`/-/dashboard`: thin handlers over `proxy.dashboard` (queries in a worker thread, pages
rendered by pure functions). Admins only: anonymous callers get 401, other groups 403. GET
only, and nothing a GET does changes state. Pages are sent with a Content-Security-Policy that
allows no script at all and only this stylesheet.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from proxy.dashboard import queries, render
from proxy.detect.evaluate import DETECTOR_VERSION
from proxy.gate import PolicyGate
from proxy.hosted.store import RegistryEvent
from proxy.identity import identity_of, is_admin
from proxy.inspect import VERDICTS_FILE, detector_dir
from proxy.policy.model import Policy
from proxy.service import Service
from proxy.settings import Settings
from proxy.storage.backends import decisions_path
from proxy.web.auth import challenge

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
BUCKET_HOURS = {1: 1, 7: 4, 30: 24}  # window in days -> hours per chart bar
ASSETS = {"dashboard.css": "text/css; charset=utf-8"}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _refused(request: Request, embedded_log: bool = True) -> Response | None:
    """A 401/403 page unless the caller is in an admin group; None when they are. Pages that
    read the embedded decision log (`embedded_log`) are a 501 with the shared database."""
    identity = identity_of(request.scope)
    settings = _service(request).settings
    admins = settings.admin_groups
    if is_admin(identity, admins):
        if embedded_log and settings.database_url is not None:  # not yet: the embedded log
            message = (
                "The dashboard reads the embedded decision log, and this Floodgate keeps its "
                "log in the shared database (database_url): use floodgate decisions, which "
                "reads it, until the dashboard does."
            )
            return HTMLResponse(render.refusal_page(501, message), 501, SECURITY_HEADERS)
        return None
    groups = ", ".join(admins) or "(none configured)"
    if identity.anonymous:
        message = (
            "The dashboard is for admins: send a Floodgate token of an admin group "
            f"({groups}): in a browser, log in with any user name and the token as the "
            "password; elsewhere send Authorization: Bearer <token>."
        )
        headers = {**SECURITY_HEADERS, "www-authenticate": challenge(request.url.path)}
        return HTMLResponse(render.refusal_page(401, message), 401, headers)
    message = (
        f"The dashboard is for admins: {identity.label()} is in group {identity.group!r}, "
        f"not in an admin group ({groups})."
    )
    return HTMLResponse(render.refusal_page(403, message), 403, SECURITY_HEADERS)


def _who(request: Request) -> str:
    identity = identity_of(request.scope)
    return f"{identity.name or '-'} ({identity.group})"


def _paths(service: Service) -> tuple[Path, Path]:
    settings = service.settings
    return (
        decisions_path(settings),
        detector_dir(settings) / VERDICTS_FILE,
    )


def _html(body: str) -> Response:
    return HTMLResponse(body, 200, SECURITY_HEADERS)


async def overview(request: Request) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    try:
        days = int(request.query_params.get("days", "7"))
    except ValueError:
        days = 7
    if days not in BUCKET_HOURS:
        days = 7
    decisions, _ = _paths(_service(request))
    found = await anyio.to_thread.run_sync(
        queries.overview, decisions, time.time(), days, BUCKET_HOURS[days]
    )
    return _html(render.overview_page(found, days, _who(request)))


async def decision_log(request: Request) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    f = queries.LogFilter.of(dict(request.query_params))
    decisions, _ = _paths(_service(request))
    found = await anyio.to_thread.run_sync(queries.log_page, decisions, f)
    return _html(render.log_page(found, f, _who(request)))


async def package(request: Request) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    name = request.query_params.get("name", "").strip()[: queries.MAX_FILTER]
    if not name:
        return RedirectResponse(render.url("/log"), 303)
    decisions, verdicts = _paths(_service(request))
    found = await anyio.to_thread.run_sync(
        queries.package_view, decisions, verdicts, name, DETECTOR_VERSION
    )
    return _html(render.package_page(name, found, _who(request)))


def policies_in_force(service: Service) -> list[tuple[str, Policy]]:
    """(who it applies to, policy) for every policy the proxy enforces."""
    gate = service.gate
    if isinstance(gate, PolicyGate):
        return [("Everyone", gate.policy)]
    return []


async def policies(request: Request) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    today = datetime.now(UTC).date()
    found = policies_in_force(_service(request))
    return _html(render.policies_page(found, today, _who(request)))


async def registry(request: Request) -> Response:
    """The hosted packages' events (from the hosted store, embedded or shared alike)."""
    refused = _refused(request, embedded_log=False)
    if refused is not None:
        return refused
    f = queries.RegistryFilter.of(request.query_params)
    service = _service(request)
    hosted = service.hosted if service.internal_upstream is None else None
    events: list[RegistryEvent] = []
    names: list[str] = []
    if hosted is not None:
        events, names = await anyio.to_thread.run_sync(
            hosted.activity, f.package or None, f.kinds, queries.REGISTRY_ROWS
        )
    page = render.registry_page(
        events, names, f, _who(request), hosted is not None, queries.REGISTRY_ROWS
    )
    return _html(page)


async def asset(request: Request) -> Response:
    """The stylesheet, from the installed package (public: it says nothing)."""
    name = request.path_params["name"]
    media = ASSETS.get(name)
    if media is None:
        return Response("no such asset", 404, media_type="text/plain")
    data = resources.files("proxy.dashboard").joinpath("assets", name).read_bytes()
    return Response(data, 200, {"cache-control": "public, max-age=3600"}, media_type=media)


WARM_INTERVAL = 240.0  # seconds between recomputations of the overview's past-day counts


async def keep_warm(settings: Settings) -> None:
    """Keep the overview's counts of past days computed ahead of page views (see
    `queries.warm`); runs for the proxy's lifetime."""
    path = decisions_path(settings)
    if not settings.enforce or settings.database_url is not None:
        return
    while True:
        try:
            await anyio.to_thread.run_sync(
                queries.warm, path, time.time(), tuple(BUCKET_HOURS.items())
            )
        except sqlite3.Error as exc:
            log.warning("dashboard counts not precomputed: %s", exc)
        await anyio.sleep(WARM_INTERVAL)


def routes() -> list[BaseRoute]:
    """The dashboard's routes, for the `/-` mount."""
    return [
        Route("/dashboard", overview, methods=["GET"]),
        Route("/dashboard/", overview, methods=["GET"]),
        Route("/dashboard/log", decision_log, methods=["GET"]),
        Route("/dashboard/package", package, methods=["GET"]),
        Route("/dashboard/policies", policies, methods=["GET"]),
        Route("/dashboard/registry", registry, methods=["GET"]),
        Route("/dashboard/assets/{name}", asset, methods=["GET"]),
    ]
