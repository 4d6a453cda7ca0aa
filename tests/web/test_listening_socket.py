"""Floodgate's listening socket: connections accepted on it send small writes at once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from proxy.web.server import listening_socket


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_accepted_connections_have_nodelay_on_the_asyncio_loop(host: str) -> None:
    """Without TCP_NODELAY a response sent as headers then body waits ~40 ms for the client's
    delayed ACK; asyncio sets it only on sockets made with IPPROTO_TCP (uvloop always)."""
    try:
        sock = listening_socket(host, 0)
    except OSError:
        pytest.skip(f"no {host} on this machine")
    assert sock.proto == socket.IPPROTO_TCP
    port = sock.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        done = asyncio.Event()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(
                writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            )
            writer.close()
            done.set()

        server = await asyncio.start_server(accepted, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(host, port)
            await writer.drain()
            await done.wait()
            writer.close()

    asyncio.run(main())
    assert seen[0] != 0


def test_a_port_in_use_is_an_oserror_and_leaks_nothing() -> None:
    held = listening_socket("127.0.0.1", 0)
    held.listen()
    try:
        with pytest.raises(OSError, match="in use"):
            listening_socket("127.0.0.1", held.getsockname()[1])
    finally:
        held.close()
