"""`/-/ready` and `/-/metrics`: thin handlers over `proxy.health` and `proxy.metrics`."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import FloodgateError
from proxy.health import readiness, storage_check, upstream_check
from proxy.metrics import CONTENT_TYPE, RequestCounts, ServiceCollector, exposition
from proxy.service import Service
from proxy.web.responses import json_response

READY_TIMEOUT = 4.0  # seconds the upstream gets to answer a readiness probe


class ServiceGauges:
    """The running service's state as gauges, read at scrape time."""

    def __init__(self, service: Service):
        self.service = service

    def gauges(self) -> Iterator[tuple[str, str, dict[str, str], float]]:
        health = self.service.upstream.health
        yield (
            "floodgate_upstream_up",
            "1 while recent upstream requests say it answers, else 0",
            {},
            float(health.reachable()),
        )
        yield (
            "floodgate_upstream_consecutive_failures",
            "Upstream requests failed in a row (timeouts, connection errors, 5xx)",
            {},
            float(health.failures),
        )
        for check in self.service.gate.checks():
            detail = check.detail
            if check.name == "policy" and detail.get("enforced"):
                yield (
                    "floodgate_policy_info",
                    "The policy in force (name and digest)",
                    {"name": str(detail["name"]), "digest": str(detail["digest"])},
                    1.0,
                )
                yield (
                    "floodgate_policy_reload_failing",
                    "1 when the last policy reload failed (the previous policy stays in force)",
                    {},
                    float("last_reload_error" in detail),
                )
            elif check.name == "osv_feed" and detail.get("enabled"):
                yield (
                    "floodgate_osv_feed_records",
                    "Records in the OSV malicious-packages index",
                    {},
                    float(str(detail["records"])),
                )
                age = detail.get("age_seconds")
                if isinstance(age, int | float):
                    yield (
                        "floodgate_osv_feed_age_seconds",
                        "Seconds since the OSV feed was last brought up to date",
                        {},
                        float(age),
                    )


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def metrics(request: Request) -> Response:
    """`/-/metrics`: Prometheus text format."""
    counts: RequestCounts = request.app.state.request_counts
    collector = ServiceCollector(counts, ServiceGauges(service_of(request)))
    body = await anyio.to_thread.run_sync(exposition, collector)
    return Response(body, 200, media_type=CONTENT_TYPE)


async def ready(request: Request) -> Response:
    """`/-/ready`: 200 when the upstream answers (as recent requests tell, or one probe when
    there were none lately) and a policy is in force; else 503, with a JSON body saying each
    part and why. A stale OSV feed or a shared-storage service down are `warnings`."""
    service = service_of(request)
    health = service.upstream.health
    probed = False
    if not health.fresh():
        lock: anyio.Lock = request.app.state.ready_probe
        async with lock:  # concurrent checks share one probe
            if not health.fresh():
                probed = True
                await _probe(service)
    checks = [upstream_check(service.settings.upstream_url, health, probed), *service.gate.checks()]
    if service.health:  # shared storage: is a service that was down back?
        for state in service.health:
            await anyio.to_thread.run_sync(state.recheck)
        checks.append(storage_check((h.what, h.ok, h.describe()) for h in service.health))
    ok, body = readiness(checks)
    return json_response(body, 200 if ok else 503)


async def _probe(service: Service) -> None:
    """Ask the upstream once; the client records the outcome in its health."""
    health = service.upstream.health
    try:
        with anyio.fail_after(READY_TIMEOUT):
            await service.forward("GET", "/-/ping", None, {})
    except TimeoutError:
        health.failed(f"no answer within {READY_TIMEOUT:g}s")
    except FloodgateError:
        pass  # recorded by the client
