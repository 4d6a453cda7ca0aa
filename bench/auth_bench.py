"""What authentication adds to every request, measured in process (no network, no load noise).

    python bench/auth_bench.py [--requests 200000] [--rounds 30] [--batch 1000]

1. The `Authenticate` middleware around an app that answers at once, with a real token store in
   a temporary folder: no tokens (anonymous, today's behaviour), and a valid token (the warm
   path: one dictionary lookup).
2. Whole warm requests through the real app (`create_app`, the fake upstream from the tests,
   caches warm): a medium packument (gzip) and a tarball, anonymous and with a token, as CPU
   microseconds per request (process time; the ASGI server's own work, the same either way, is
   not in it), in alternating batches of two apps alive at once; medians. The ratio is what
   the issue bounds (authentication within 10% of anonymous).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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


class Lifespan:
    """Runs an ASGI app's lifespan (startup now, shutdown on exit) inside a task group."""

    def __init__(self, app: Any):
        self.app = app
        self.started = asyncio.Event()
        self.stop = asyncio.Event()
        self._sent_startup = False

    async def receive(self) -> dict[str, Any]:
        if not self._sent_startup:
            self._sent_startup = True
            return {"type": "lifespan.startup"}
        await self.stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            self.started.set()
        elif message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message", "startup failed"))

    async def run(self) -> None:
        await self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.receive, self.send)


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4873),
    }


async def whole_requests(app: Any, path: str, headers: list[tuple[bytes, bytes]], n: int) -> float:
    """Process-time microseconds per warm request through the whole app."""
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    started = time.process_time()
    for _ in range(n):
        await app(_scope(path, headers), receive, send)
    elapsed = time.process_time() - started
    if statuses != {200}:
        raise RuntimeError(f"{path}: unexpected statuses {sorted(statuses)}")
    return elapsed / n * 1e6


CASES = {
    "medium packument (gzip)": "/bench-medium",
    "tarball (57 KB)": "/bench-tarball/-/bench-tarball-1.0.0.tgz",
}


def measure_apps(folder: Path, rounds: int, batch: int) -> dict[str, tuple[float, float]]:
    """Median CPU us per request, (anonymous, token), per case: two apps, one anonymous and one
    with a token, alive at once and measured in alternating batches (so that the load of other
    processes on the machine falls on both alike)."""
    from proxy.app import create_app
    from proxy.settings import load_settings, resolve_upstream
    from tests.fakes.packages import FakeVersion
    from tests.fakes.registry import running_registry

    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4
    deps = {f"dep-{i}": f"^{i}.0.0" for i in range(8)}
    with running_registry() as (registry, _server):
        medium = [FakeVersion(f"1.{i}.0", deps, extra={"description": text}) for i in range(680)]
        registry.add("bench-medium", *medium)
        registry.add("bench-tarball", FakeVersion("1.0.0", files={"lib.bin": b"x" * 57_000}))
        apps: dict[str, Any] = {}
        headers: dict[str, list[tuple[bytes, bytes]]] = {}
        for kind in ("anonymous", "token"):
            values = {
                "upstream": registry.url,
                "cache_dir": str(folder / kind),
                "osv_feed": "off",
                "access_log": False,
                "render_workers": 0,
            }
            settings = resolve_upstream(load_settings(values, env={}), discover=lambda: None)
            headers[kind] = [*HEADERS, (b"accept-encoding", b"gzip")]
            if kind == "token":
                store = TokenStore.in_cache(folder / kind)
                secret = store.create("bench", "bench-1")
                store.close()
                headers[kind].append((b"authorization", f"Bearer {secret}".encode()))
            apps[kind] = create_app(settings)

        async def go() -> dict[str, tuple[float, float]]:
            lives = {kind: Lifespan(app) for kind, app in apps.items()}
            tasks = [asyncio.create_task(life.run()) for life in lives.values()]
            for life in lives.values():
                await life.started.wait()
            try:
                out: dict[str, tuple[float, float]] = {}
                for case, path in CASES.items():
                    for kind in apps:  # warm: fetched, scanned, rendered
                        await whole_requests(apps[kind], path, headers[kind], 300)
                    samples: dict[str, list[float]] = {"anonymous": [], "token": []}
                    for r in range(rounds):
                        order = ("anonymous", "token") if r % 2 == 0 else ("token", "anonymous")
                        for kind in order:
                            us = await whole_requests(apps[kind], path, headers[kind], batch)
                            samples[kind].append(us)
                    out[case] = (
                        statistics.median(samples["anonymous"]),
                        statistics.median(samples["token"]),
                    )
                return out
            finally:
                for life in lives.values():
                    life.stop.set()
                await asyncio.gather(*tasks)

        return asyncio.run(go())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=30, help="alternating batches per case")
    parser.add_argument("--batch", type=int, default=1000, help="whole requests per batch")
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
    print()
    with tempfile.TemporaryDirectory() as folder:
        results = measure_apps(Path(folder), args.rounds, args.batch)
    print(f"{'whole warm request (CPU us)':32} {'anonymous':>10} {'token':>10} {'ratio':>7}")
    for case, (anonymous_us, token_us) in results.items():
        print(f"{case:32} {anonymous_us:10.1f} {token_us:10.1f} {token_us / anonymous_us:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
