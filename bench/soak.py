"""Soak: mixed warm and cold traffic through a real `floodgate serve` for minutes, with an
upstream fault injected every few seconds; reports errors, p99 and RSS over time.

    python bench/soak.py [--duration 120] [--fault-every 5] [--concurrency 8] [--window 10]

Everything runs on 127.0.0.1: the fake upstream registry from the tests (in this process, with
its addressable faults), one `floodgate serve` process (packument_ttl 3 s, so revalidation and
stale-while-revalidate are exercised too), and a Python load client. Each fault (hang, drip,
reset mid-body, 500, 503 with Retry-After, gzip bomb, big body, cut gzip, wrong integrity)
hits one random package for one fault period and is then cleared.

Per window it prints requests, unexpected errors (anything 5xx but the documented upstream
502/503/504, and failed connections), upstream failures, p50/p99 and the RSS of Floodgate with
its helper processes. The caches are kept small (32 MB of packuments, 16 MB of hot tarballs) so
that they fill early: after that RSS must stay flat, and unexpected errors at zero. Numbers
depend on the machine: run it, do not quote it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import rss_mb  # noqa: E402
from tests.e2e.npm import floodgate  # noqa: E402
from tests.fakes.packages import FakeVersion, clean  # noqa: E402
from tests.fakes.registry import FakeRegistry, running_registry  # noqa: E402

FAULTS = ["hold", "drip", "drop", "500", "503", "bomb", "big", "gzip-cut", "integrity"]
UPSTREAM_STATUSES = {502, 503, 504}
ABBREVIATED = "application/vnd.npm.install-v1+json"


@dataclass
class Window:
    started: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    upstream: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class Soak:
    warm: list[str]
    cold: list[str]
    window: Window
    windows: list[tuple[float, Window, float]] = field(default_factory=list)
    stop: bool = False
    cold_next: int = 0
    error_samples: list[str] = field(default_factory=list)

    def next_path(self, rng: random.Random) -> str:
        if rng.random() < 0.2 and self.cold_next < len(self.cold):
            name = self.cold[self.cold_next]
            self.cold_next += 1
        else:
            name = rng.choice(self.warm)
        if rng.random() < 0.3:
            return f"/{name}/-/{name}-1.0.0.tgz"
        return f"/{name}"


def publish(registry: FakeRegistry, warm: int, cold: int) -> tuple[list[str], list[str]]:
    text = "Soak test package. " * 10
    warm_names = [f"soak-warm-{i}" for i in range(warm)]
    cold_names = [f"soak-cold-{i}" for i in range(cold)]
    for name in warm_names + cold_names:
        versions = [FakeVersion(f"0.{i}.0", extra={"description": text}) for i in range(20)]
        registry.add(name, *versions, clean("1.0.0"))
    return warm_names, cold_names


async def client_loop(soak: Soak, url: str, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not soak.stop:
            path = soak.next_path(rng)
            started = time.perf_counter()
            try:
                r = await client.get(path, headers={"accept": ABBREVIATED})
                status = r.status_code
            except httpx.HTTPError as exc:
                status = 0
                if len(soak.error_samples) < 10:
                    soak.error_samples.append(f"{path}: {type(exc).__name__}: {exc}")
            w = soak.window
            w.latencies.append((time.perf_counter() - started) * 1000)
            w.statuses[status] = w.statuses.get(status, 0) + 1
            if status in UPSTREAM_STATUSES:
                w.upstream += 1
            elif status == 0 or status >= 500:
                w.errors += 1
                if status and len(soak.error_samples) < 10:
                    soak.error_samples.append(f"{path}: {status} {r.text[:200]}")


async def fault_loop(soak: Soak, registry: FakeRegistry, every: float, seed: int) -> None:
    rng = random.Random(seed)
    while not soak.stop:
        fault = rng.choice(FAULTS)
        name = rng.choice(soak.warm + soak.cold[soak.cold_next : soak.cold_next + 20])
        key = registry.tarball_path(name, "1.0.0") if fault == "integrity" else name
        registry.release = threading.Event()
        registry.faults[key] = fault
        await asyncio.sleep(every)
        registry.faults.pop(key, None)
        registry.release.set()


async def report_loop(soak: Soak, pid: int, every: float, t0: float) -> None:
    while not soak.stop:
        await asyncio.sleep(every)
        done, soak.window = soak.window, Window(time.monotonic())
        rss = rss_mb(pid)
        soak.windows.append((time.monotonic() - t0, done, rss))
        print(line(time.monotonic() - t0, done, rss), flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def line(t: float, w: Window, rss: float) -> str:
    return (
        f"{t:7.1f}s {len(w.latencies):7d} req {w.errors:4d} errors {w.upstream:5d} upstream "
        f"p50 {percentile(w.latencies, 0.5):7.1f} ms  p99 {percentile(w.latencies, 0.99):8.1f} ms"
        f"  rss {rss:7.1f} MB"
    )


async def run(args: argparse.Namespace, registry: FakeRegistry, url: str, pid: int) -> Soak:
    warm, cold = publish(registry, args.warm, args.cold)
    soak = Soak(warm, cold, Window(time.monotonic()))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:  # warm up
        for name in warm:
            await client.get(f"/{name}", headers={"accept": ABBREVIATED})
            await client.get(f"/{name}/-/{name}-1.0.0.tgz")
    print(f"warmed {len(warm)} packages; soaking for {args.duration:g}s", flush=True)
    t0 = time.monotonic()
    soak.window = Window(t0)
    tasks = [asyncio.create_task(client_loop(soak, url, i)) for i in range(args.concurrency)]
    tasks.append(asyncio.create_task(fault_loop(soak, registry, args.fault_every, 99)))
    tasks.append(asyncio.create_task(report_loop(soak, pid, args.window, t0)))
    await asyncio.sleep(args.duration)
    soak.stop = True
    registry.release.set()
    await asyncio.wait(tasks, timeout=120)
    return soak


def summary(soak: Soak) -> int:
    windows = soak.windows
    latencies = [x for _, w, _ in windows for x in w.latencies]
    errors = sum(w.errors for _, w, _ in windows)
    upstream = sum(w.upstream for _, w, _ in windows)
    rss = [r for _, _, r in windows]
    print()
    print(f"requests {len(latencies)}, unexpected errors {errors}, upstream failures {upstream}")
    if latencies:
        print(
            f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms"
        )
    if len(rss) >= 3:
        settled = rss[1:]  # the first window is still warming caches
        growth = (settled[-1] - settled[0]) / settled[0] * 100
        print(
            f"rss after warm-up {settled[0]:.1f} MB -> end {settled[-1]:.1f} MB "
            f"({growth:+.1f}%), max {max(settled):.1f} MB"
        )
    for sample in soak.error_samples:
        print("  error:", sample)
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--fault-every", type=float, default=5.0, help="seconds per fault")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per report line")
    parser.add_argument("--warm", type=int, default=50, help="warm packages")
    parser.add_argument("--cold", type=int, default=3000, help="cold packages available")
    args = parser.parse_args()
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the fake's deliberate drops
    logging.getLogger("uvicorn").setLevel(logging.CRITICAL)
    registry = FakeRegistry()
    registry.hold_limit = 30
    registry.drip_interval = 0.5
    registry.bomb_bytes = 32 * 1024 * 1024
    registry.big_bytes = 32 * 1024 * 1024
    with running_registry(registry) as (reg, _server), tempfile.TemporaryDirectory() as work:
        extra = ["--packument-ttl", "3", "--read-timeout", "5", "--upstream-deadline", "15"]
        # Small caches, so that they are full early and RSS must plateau after that.
        extra += ["--max-packument-mb", "16", "--packument-memory-mb", "32"]
        extra += ["--tarball-memory-mb", "16"]
        with floodgate(reg.url, Path(work), *extra) as running:
            soak = asyncio.run(run(args, reg, running.url, running.process.pid))
    return summary(soak)


if __name__ == "__main__":
    sys.exit(main())
