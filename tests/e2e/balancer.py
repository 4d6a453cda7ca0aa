"""A tiny request-level round-robin load balancer on loopback, for the replica tests and
bench/replicas_bench.py; with `keep_host` and one backend it is a counting pass-through (the
benchmark puts one in front of the S3 store: SigV4 signs the Host header, so it is kept).

Run on its own, as the benchmark does so that its CPU time is its own:

    python -m tests.e2e.balancer [--keep-host] BACKEND_URL...

It prints `balancer listening on http://127.0.0.1:PORT` once it accepts connections, and
answers `GET /__balancer__/stats` with what it forwarded (a path no npm name nor S3 bucket
can take).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.web.server import listening_socket

HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}
STATS = "/__balancer__/stats"


@dataclass
class RoundRobin:
    """Each request goes to the next replica; a replica that does not answer (refused,
    dropped) is skipped for the next one, as a load balancer's retry of an idempotent request
    does. `after[n]` runs once the n-th request has been forwarded. Bodies are passed as they
    came (still compressed), with one pooled client for all requests."""

    backends: list[str] = field(default_factory=list)
    keep_host: bool = False
    forwarded: int = 0
    failovers: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    _next: int = 0
    _client: httpx.AsyncClient | None = None

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
        return Starlette(
            routes=[
                Route(STATS, self.stats, methods=["GET"]),
                Route("/{path:path}", self.handle, methods=methods),
            ],
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            self._client = client
            yield
            self._client = None

    async def stats(self, _request: Request) -> Response:
        return JSONResponse(
            {"forwarded": self.forwarded, "failovers": self.failovers, "methods": self.methods}
        )

    async def handle(self, request: Request) -> Response:
        assert self._client is not None, "the balancer's lifespan has not started"
        target = request.scope["raw_path"].decode()
        if request.scope["query_string"]:
            target += "?" + request.scope["query_string"].decode()
        body = await request.body()
        drop = HOP - {"host"} if self.keep_host else HOP
        headers = {k: v for k, v in request.headers.items() if k.lower() not in drop}
        for _ in range(len(self.backends)):
            backend = self.backends[self._next % len(self.backends)]
            self._next += 1
            outgoing = self._client.build_request(
                request.method, backend + target, headers=headers, content=body
            )
            try:
                got = await self._client.send(outgoing, stream=True)
                try:
                    content = b"".join([chunk async for chunk in got.aiter_raw()])
                finally:
                    await got.aclose()
            except httpx.TransportError:
                self.failovers += 1
                continue
            self.forwarded += 1
            self.methods[request.method] += 1
            hook = self.after.pop(self.forwarded, None)
            if hook is not None:
                hook()
            skip = HOP - {"content-length"} if request.method == "HEAD" else HOP
            out = {k: v for k, v in got.headers.items() if k.lower() not in skip}
            return Response(content, got.status_code, headers=out)
        return Response(b'{"error":"no replica answered"}', 502)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("backends", nargs="+")
    parser.add_argument("--keep-host", action="store_true")
    args = parser.parse_args()
    balancer = RoundRobin(backends=list(args.backends), keep_host=args.keep_host)
    sock = listening_socket("127.0.0.1", 0)
    config = uvicorn.Config(balancer.app(), log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    print(f"balancer listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    sys.stdout.flush()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
