"""The access log: one line per request with status, cache state, time and size.

Lines are written in batches by `AccessLogWriter` rather than through `logging` one record at a
time: a logging call with its timestamp formatting and flush costs more than serving a cached
packument does, and the warm path is measured in microseconds. The line format matches the
rest of the log (`time LEVEL logger: message`).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.log import printable
from proxy.metrics import RequestCounts

FLUSH_INTERVAL = 0.2  # seconds between batch writes
FLUSH_LINES = 512  # or sooner, when this many lines are waiting


def _stderr_write(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


class AccessLogWriter:
    """Buffers access lines and writes them every `FLUSH_INTERVAL` seconds or `FLUSH_LINES`."""

    def __init__(self, write: Callable[[str], object] = _stderr_write):
        self._write = write
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def line(self, message: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        millis = int((now - second) * 1000)
        self._lines.append(f"{self._stamp},{millis:03d} INFO    floodgate.access: {message}\n")
        if len(self._lines) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            self._write(text)

    async def run(self) -> None:
        """Flush periodically until cancelled, then once more."""
        try:
            while True:
                await anyio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()


_ids = itertools.count(1)


class AccessLog:
    """ASGI middleware: give each request an id (sent as `x-request-id`), then log its outcome.

    Handlers put the cache state ("hit", "miss", "revalidated", "stale") in
    `scope["state"]["cache"]` and anything else worth a mention in `scope["state"]["note"]`.
    With `counts`, every request is also counted for the metrics (route template, method,
    status, cache state).
    """

    def __init__(
        self,
        app: ASGIApp,
        writer: AccessLogWriter | None = None,
        counts: RequestCounts | None = None,
    ):
        self.app = app
        self.writer = writer
        self.counts = counts

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
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            if self.counts is not None:
                self.counts.count(scope["method"], scope["path"], status, state.get("cache"))
            if self.writer is not None:
                client = scope.get("client")
                query = scope.get("query_string", b"")
                # Decoded by the server: `%0a` would forge a log line, `%1b` a terminal escape.
                path = printable(scope["path"] + ("?" + query.decode("latin-1") if query else ""))
                elapsed = (time.perf_counter() - started) * 1000
                identity = state.get("identity")
                who = f" who={identity.label()}" if identity and identity.group else ""
                self.writer.line(
                    f"{client[0] if client else '-'} {scope['method']} {path} {status} "
                    f"{state.get('cache', '-')} {elapsed:.1f}ms {size}B id={request_id}"
                    f"{state.get('note', '')}{who}"
                )
