"""Idle and half-sent client connections are closed, with a log line (defect 4)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.app import create_app
from proxy.settings import load_settings, resolve_upstream
from proxy.web.server import server_config
from tests.e2e.npm import serve
from tests.fakes.registry import FakeRegistry, UvicornThread
from tests.faults.conftest import LogWatch

BOUND = 20.0  # seconds a test waits at most for the server to close a connection


@pytest.fixture
def guarded(registry: FakeRegistry, tmp_path: Path) -> Iterator[UvicornThread]:
    """Floodgate served with `floodgate serve`'s uvicorn configuration."""
    values = {
        "upstream": registry.url,
        "cache_dir": str(tmp_path / "cache"),
        "client_timeout": 0.3,
        "port": 0,
    }
    settings = resolve_upstream(load_settings(values, env={}), discover=lambda: None)
    app = create_app(settings)
    server = UvicornThread(app, config=server_config(app, settings, loop="asyncio"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    sock.settimeout(BOUND)
    received = b""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the server kept the connection open")


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length (bounded)."""
    sock.settimeout(BOUND)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /-/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"GE"],
    ids=["nothing", "half-headers", "half-request-line"],
)
def test_connections_without_a_complete_request_are_closed(
    guarded: UvicornThread, log_watch: LogWatch, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=BOUND) as sock:
        if sent:
            sock.sendall(sent)
        assert closed_by_server(sock) == b""
    lines = [r.getMessage() for r in log_watch.records]
    assert any("no complete request headers within 0.3s" in line for line in lines)


def test_a_slow_but_complete_client_is_served(guarded: UvicornThread) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=BOUND) as sock:
        sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200")
    with httpx.Client(base_url=guarded.url, timeout=BOUND) as client:
        for _ in range(3):  # keep-alive requests each get their own header deadline
            assert client.get("/-/ping").status_code == 200


def test_a_half_sent_body_is_refused(guarded: UvicornThread) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=BOUND) as sock:
        sock.sendall(
            b"POST /-/npm/v1/security/advisories/bulk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":'
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"did not arrive within 0.3s" in answer


def test_floodgate_serve_closes_a_silent_connection(registry: FakeRegistry, tmp_path: Path) -> None:
    """The same through `floodgate serve` itself (its uvicorn setup, uvloop where installed)."""
    args = ["--upstream", registry.url, "--port", "0", "--cache-dir", str(tmp_path / "cache")]
    with serve([*args, "--client-timeout", "0.5"], tmp_path / "floodgate.log") as running:
        port = int(running.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
            sock.sendall(b"GET /-/ping HTTP/1.1\r\n")
            assert closed_by_server(sock) == b""
        assert running.logged("no complete request headers within 0.5s")
