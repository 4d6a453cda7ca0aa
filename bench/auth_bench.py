"""What authentication adds to every request, measured in process (no network, no load noise).

    python bench/auth_bench.py [--requests 200000]

Drives the `Authenticate` middleware around an app that answers at once, with a real token
store in a temporary folder: no tokens (anonymous, today's behaviour), and a valid token (the
warm path: a hash and a dictionary lookup). Prints microseconds per request; compare them with
a warm request's total (`bench/proxy_bench.py`: a warm packument at N req/s on this machine
costs about 2 cores / N of CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.tokens import TokenIndex, TokenStore  # noqa: E402
from proxy.web.auth import Authenticate  # noqa: E402

HEADERS = [
    (b"host", b"127.0.0.1:4873"),
    (b"user-agent", b"npm/11.19.1 node/v20.20.2 linux x64 workspaces/false"),
    (b"accept", b"application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"),
    (b"accept-encoding", b"gzip,deflate"),
    (b"npm-command", b"install"),
]


async def app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def run(handler: Any, headers: list[tuple[bytes, bytes]], n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        scope = {"type": "http", "path": "/fg-alpha", "headers": headers, "client": ("h", 1)}
        await handler(scope, receive, send)
    return (time.perf_counter() - started) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = TokenStore(Path(folder) / "tokens.sqlite3")
        bare = asyncio.run(run(app, HEADERS, args.requests))
        anonymous = asyncio.run(run(Authenticate(app, TokenIndex(store)), HEADERS, args.requests))
        token = store.create("bench", "bench-1")
        with_token = [*HEADERS, (b"authorization", f"Bearer {token}".encode())]
        authed = asyncio.run(run(Authenticate(app, TokenIndex(store)), with_token, args.requests))
        store.close()
    print(f"bare app                      {bare:6.2f} us/request")
    print(f"middleware, no tokens          {anonymous - bare:6.2f} us/request added")
    print(f"middleware, valid token        {authed - bare:6.2f} us/request added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
