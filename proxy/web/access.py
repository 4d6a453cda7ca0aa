"""The access log: one line per request with status, cache state, time and size."""

from __future__ import annotations

import itertools
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("floodgate.access")
_ids = itertools.count(1)


class AccessLog:
    """ASGI middleware: give each request an id, then log its outcome.

    Handlers put the cache state ("hit", "miss", "revalidated", "stale") and anything else worth
    logging into `scope["state"]["log"]`.
    """

    def __init__(self, app: ASGIApp, enabled: bool = True):
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = f"{next(_ids):x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 0
        size = 0

        async def send_logged(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            if self.enabled:
                client = scope.get("client")
                query = scope.get("query_string", b"")
                path = scope.get("path", "") + ("?" + query.decode("latin-1") if query else "")
                access_log.info(
                    "%s %s %s %d %s %.1fms %dB id=%s%s",
                    client[0] if client else "-",
                    scope.get("method", "-"),
                    path,
                    status,
                    state.get("cache", "-"),
                    (time.perf_counter() - started) * 1000,
                    size,
                    request_id,
                    state.get("note", ""),
                )
