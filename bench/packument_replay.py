"""Replay the cold packument requests of a real install, offline: straight to a local upstream
that serves the same documents, and through a fresh Floodgate in front of it, in one run.

    python bench/packument_replay.py --packuments DIR [--latency 0.05] [--runs 2]

DIR is the `packuments` folder of a Floodgate cache after a real install went through it (it
keeps every packument it fetched, with the time it saved it: the replay asks for them in that
order), or a folder of plain packument JSON files. The upstream runs on 127.0.0.1 and answers
each request after `--latency` seconds, gzipped, as a registry does; tarball URLs in the
documents are pointed at it, so nothing leaves the machine. Requests go one at a time with
npm's `Accept` header, as npm resolves a tree.

This isolates what Floodgate adds to each cold packument (parse, inspect, plan, render) from
the upstream's own variance, which on a real registry is larger than the difference. Reports:
total time of each pass and the ratio, Floodgate's extra time per packument (median, p90,
max, and the max over documents under 1 MB), its CPU seconds and the resident memory of its
processes after the pass; and the `--slowest` documents, with their extra time.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cold_install import packument_latency  # noqa: E402
from bench.proxy_bench import cpu_seconds, rss_mb  # noqa: E402
from proxy.web.server import listening_socket  # noqa: E402
from tests.e2e.npm import floodgate  # noqa: E402

ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
NPM_HEADERS = {"accept": ACCEPT, "accept-encoding": "gzip"}


def load(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, document) of every packument in `folder`, in the order they were saved."""
    found: list[tuple[float, str, dict[str, Any]]] = []
    for path in sorted(folder.rglob("*.json")):
        data = path.read_bytes()
        head, _, body = data.partition(b"\n")
        saved = 0.0
        try:  # a Floodgate cache's saved packument: a header line, then the upstream bytes
            header = orjson.loads(head)
            doc = orjson.loads(body)
            saved = float(header.get("saved") or 0.0)
        except (orjson.JSONDecodeError, AttributeError):
            doc = orjson.loads(data)
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            found.append((saved, doc["name"], doc))
    found.sort(key=lambda f: (f[0], f[1]))
    return [(name, doc) for _, name, doc in found]


def pointed_at(doc: dict[str, Any], base: str) -> bytes:
    """The document with every tarball URL on `base` (same path), gzipped."""
    for manifest in (doc.get("versions") or {}).values():
        dist = manifest.get("dist") if isinstance(manifest, dict) else None
        if not isinstance(dist, dict):
            continue
        url = dist.get("tarball")
        if isinstance(url, str) and "://" in url:
            path = url.split("://", 1)[1].partition("/")[2]
            dist["tarball"] = f"{base}/{path}"
    return gzip.compress(orjson.dumps(doc), 6, mtime=0)


def upstream_app(bodies: dict[str, bytes], latency: float) -> Starlette:
    async def answer(request: Request) -> Response:
        await asyncio.sleep(latency)
        name = unquote(request.url.path.lstrip("/"))
        body = bodies.get(name)
        if body is None:
            return Response(b'{"error":"Not found"}', 404, media_type="application/json")
        headers = {"content-encoding": "gzip", "etag": f'"{len(body)}"'}
        return Response(body, media_type="application/json", headers=headers)

    return Starlette(routes=[Route("/{path:path}", answer)])


def serve_upstream(bodies: dict[str, bytes], latency: float, sock: socket.socket) -> None:
    config = uvicorn.Config(
        upstream_app(bodies, latency), log_config=None, access_log=False, loop="asyncio"
    )
    uvicorn.Server(config).run(sockets=[sock])


def wait_listening(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/-/ping", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packuments", type=Path, required=True, help="folder of packuments")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per upstream answer")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--serve-args", default="", help="extra arguments for floodgate serve")
    parser.add_argument("--slowest", type=int, default=5, help="list this many slowest documents")
    parser.add_argument("--dump", type=Path, help="write every request's seconds here (JSON)")
    args = parser.parse_args()
    docs = load(args.packuments)
    if not docs:
        print(f"no packuments under {args.packuments}", file=sys.stderr)
        return 2
    names = [name for name, _ in docs]
    sizes = [len(orjson.dumps(doc)) for _, doc in docs]
    size = sum(sizes)
    versions = sum(len(doc.get("versions") or {}) for _, doc in docs)
    print(f"{len(docs)} packuments, {size / 1e6:.1f} MB, {versions} versions", file=sys.stderr)
    # The upstream runs in its own process: in this one it would share the interpreter with
    # the client that times it.
    sock = listening_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    bodies = {name: pointed_at(doc, url) for name, doc in docs}
    del docs
    server = multiprocessing.get_context("fork").Process(
        target=serve_upstream, args=(bodies, args.latency, sock), daemon=True
    )
    server.start()
    try:
        wait_listening(url)
        direct: list[list[float]] = []
        through: list[list[float]] = []
        cpu: list[float] = []
        rss: list[float] = []
        for run in range(args.runs):
            direct.append(packument_latency(url, names, NPM_HEADERS))
            with (
                tempfile.TemporaryDirectory() as tmp,
                floodgate(url, Path(tmp), *args.serve_args.split()) as gate,
            ):
                pid = gate.process.pid
                before = cpu_seconds(pid)
                through.append(packument_latency(gate.url, names, NPM_HEADERS))
                cpu.append(cpu_seconds(pid) - before)
                rss.append(rss_mb(pid))
            print(f"  run {run + 1}: direct {sum(direct[-1]):.1f} s, through Floodgate "
                  f"{sum(through[-1]):.1f} s", file=sys.stderr)  # fmt: skip
    finally:
        server.terminate()
        server.join(10)
        sock.close()
    d = statistics.median(sum(r) for r in direct)
    f = statistics.median(sum(r) for r in through)
    extras = [
        (t - statistics.median(ds)) * 1000
        for i, t in enumerate(statistics.median(col) for col in zip(*through, strict=True))
        for ds in [[r[i] for r in direct]]
    ]
    extra = sorted(extras)
    small = max(e for e, n in zip(extras, sizes, strict=True) if n < 1024 * 1024)
    print(f"{len(names)} cold packuments one at a time, upstream latency "
          f"{args.latency * 1000:.0f} ms, median of {args.runs}")  # fmt: skip
    print(f"  direct              {d:8.2f} s")
    print(f"  through Floodgate   {f:8.2f} s   {f / d:.2f}x direct")
    print(f"  extra per packument median {statistics.median(extra):.1f} ms, "
          f"p90 {extra[int(0.9 * (len(extra) - 1))]:.1f} ms, max {extra[-1]:.0f} ms "
          f"(under 1 MB: max {small:.0f} ms)")  # fmt: skip
    print(f"  Floodgate CPU {statistics.median(cpu):.1f} s, "
          f"RSS after {statistics.median(rss):.0f} MB")  # fmt: skip
    worst = sorted(zip(extras, names, sizes, strict=True), reverse=True)
    for e, name, n in worst[: args.slowest]:
        print(f"  slowest: {name} ({n / 1e6:.2f} MB) +{e:.0f} ms")
    for e, name, n in [w for w in worst if w[2] < 1024 * 1024][: args.slowest]:
        print(f"  slowest under 1 MB: {name} ({n / 1e6:.2f} MB) +{e:.0f} ms")
    if args.dump:
        timings = {"names": names, "sizes": sizes, "direct": direct, "through": through}
        args.dump.write_bytes(orjson.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
