"""The HTTP server's own defences: uvicorn configured so that a client cannot hold a connection
without sending a request.

uvicorn closes a keep-alive connection that stays idle after a response (`timeout_keep_alive`),
but a connection that never sends a request, or sends half of its headers, is kept forever:
1,100 of them exhaust the descriptors and every other client gets an empty reply.
`guarded_protocol` closes such connections after `client_timeout` seconds, with a log line.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.log import printable
from proxy.settings import Settings

log = logging.getLogger(__name__)

KEEP_ALIVE = 5  # seconds an idle keep-alive connection is kept after a response


class _GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for each request's headers."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        log.info(
            "closing the connection from %s: no complete request headers within %gs",
            printable(client),
            self.header_timeout,
        )
        self.transport.close()


def guarded_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """The HTTP protocol class for uvicorn, closing connections whose request headers do not
    arrive within `header_timeout` seconds."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedHttpToolsProtocol,),
        {"header_timeout": header_timeout},
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: any free port), for uvicorn to listen on.

    Made with IPPROTO_TCP rather than 0: asyncio sets TCP_NODELAY only on connections whose
    socket says it is TCP, and without it a response sent in two writes (headers, then body)
    waits for the client's delayed ACK, ~40 ms a request (uvloop sets it either way)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration `floodgate serve` runs with."""
    options: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "loop": "auto",
        "http": guarded_protocol(settings.client_timeout),
        "lifespan": "on",
        "timeout_keep_alive": KEEP_ALIVE,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def raise_descriptor_limit() -> int:
    """Raise this process's open-file limit to its hard limit (each client connection is a
    descriptor); return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.debug("could not raise the open-file limit: %s", exc)
    return soft
