"""A cached tarball is sent from a file opened when its response is made: the cache may evict
the file meanwhile (a burst of big downloads over its size), and that never fails a request."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy.cache.memory import CacheState
from proxy.cache.store import CachedTarball
from proxy.errors import CacheUnavailable
from proxy.gate import Caller
from proxy.npm.names import parse_package_path
from proxy.service import ServedTarball
from proxy.web.responses import ClientHeaders, tarball_response
from proxy.web.routes import tarball_of

BYTES = b"\x1f\x8b" + bytes(range(256)) * 9000  # over one body chunk


def scope(method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "method": method, "headers": [], "path": "/fg-a/-/fg-a-1.0.0.tgz"}


def served(path: Path) -> ServedTarball:
    return ServedTarball(CachedTarball(len(BYTES), path=path), CacheState.HIT, "sha512-x")


async def sent(response: Any, method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await response(scope(method), receive, send)
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    assert messages[-1].get("more_body", False) is False
    return start["status"], dict(start["headers"]), body


@pytest.mark.anyio
async def test_an_evicted_file_is_still_sent_whole(tmp_path: Path) -> None:
    path = tmp_path / "tarball"
    path.write_bytes(BYTES)
    response = tarball_response(scope(), ClientHeaders(), served(path))
    path.unlink()  # the cache evicts it before the body goes out
    status, headers, body = await sent(response)
    assert status == 200
    assert headers[b"content-length"] == str(len(BYTES)).encode()
    assert body == BYTES


@pytest.mark.anyio
async def test_head_sends_the_length_without_the_body(tmp_path: Path) -> None:
    path = tmp_path / "tarball"
    path.write_bytes(BYTES)
    status, headers, body = await sent(
        tarball_response(scope(), ClientHeaders(), served(path)), "HEAD"
    )
    assert (status, headers[b"content-length"], body) == (200, str(len(BYTES)).encode(), b"")


class Cache:
    """The service's `tarball`, handing out files deleted behind Floodgate's back."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.asked = 0

    @contextlib.asynccontextmanager
    async def tarball(
        self, package: Any, filename: str, caller: Caller
    ) -> AsyncIterator[ServedTarball]:
        self.asked += 1
        path = self.paths.pop(0)
        if path.name == "evicted-before-its-scan":  # the gate's scan reads a file that is gone
            raise FileNotFoundError(2, "No such file or directory", str(path))
        yield served(path)


# Deleted behind Floodgate's back before the response opened it, or before the scan read it.
@pytest.mark.parametrize("gone", ["evicted", "evicted-before-its-scan"])
@pytest.mark.anyio
async def test_a_file_gone_is_asked_for_again(tmp_path: Path, gone: str) -> None:
    good = tmp_path / "fetched-again"
    good.write_bytes(BYTES)
    cache = Cache([tmp_path / gone, good])
    parsed = parse_package_path("/fg-a/-/fg-a-1.0.0.tgz")
    response = await tarball_of(cache, scope(), ClientHeaders(), parsed, Caller())  # type: ignore[arg-type]
    assert cache.asked == 2
    assert (await sent(response))[2] == BYTES


@pytest.mark.anyio
async def test_a_file_evicted_twice_is_a_503_to_retry(tmp_path: Path) -> None:
    cache = Cache([tmp_path / "evicted", tmp_path / "evicted-again"])
    parsed = parse_package_path("/fg-a/-/fg-a-1.0.0.tgz")
    with pytest.raises(CacheUnavailable, match="try again"):
        await tarball_of(cache, scope(), ClientHeaders(), parsed, Caller())  # type: ignore[arg-type]
