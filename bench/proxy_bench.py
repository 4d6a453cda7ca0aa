"""Benchmark Floodgate's proxy against direct upstream requests and a bare-app ceiling.

    python bench/proxy_bench.py [--duration 5] [--skip-npm] [--auth]

Starts, all on 127.0.0.1: the fake upstream registry from the tests (in this process), a real
`floodgate serve` process, and `bench/bare_app.py` serving the very bytes Floodgate serves,
from memory (the ceiling). Load comes from wrk (2 threads, 32 connections) when it is installed,
else from a slower Python client (the ratios then mean little). Prints a table and the ratios
the core issue targets. Numbers depend on the machine: run it, do not quote it.

With `--auth`, a client token exists (so anonymous access is off) and every request to Floodgate
carries it: compare a run with and one without to see what authentication costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.tokens import TokenStore  # noqa: E402
from tests.e2e.npm import NPM, floodgate, npm, write_project  # noqa: E402
from tests.fakes.packages import FakeVersion  # noqa: E402
from tests.fakes.registry import FakeRegistry, running_registry  # noqa: E402

WRK = shutil.which("wrk")
ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
TICKS = os.sysconf("SC_CLK_TCK")


# -- fixtures ---------------------------------------------------------------------------------


def publish(registry: FakeRegistry, tree_size: int) -> None:
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4
    deps = {f"dep-{i}": f"^{i}.0.0" for i in range(8)}
    medium = [FakeVersion(f"1.{i}.0", deps, extra={"description": text}) for i in range(680)]
    for copy in ("", *[f"-cold{i}" for i in range(12)]):
        registry.add("bench-medium" + copy, *medium)
    readme = "x" * 1800
    large = [FakeVersion(f"2.{i}.0", deps, extra={"readme": readme}) for i in range(4100)]
    for copy in ("", *[f"-cold{i}" for i in range(4)]):
        registry.add("bench-large" + copy, *large)
    registry.add(
        "bench-tarball",
        FakeVersion("1.0.0", files={"lib.bin": os.urandom(57_000)}),
    )
    registry.add("bench-small", FakeVersion("1.0.0"), FakeVersion("1.0.1"))
    # A binary tree of packages for the npm install measurement.
    for i in range(tree_size):
        children = [c for c in (2 * i + 1, 2 * i + 2) if c < tree_size]
        registry.add(
            f"tree-{i:03d}", FakeVersion("1.0.0", {f"tree-{c:03d}": "^1.0.0" for c in children})
        )


# -- processes ---------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return total / TICKS


def rss_mb(pid: int) -> float:
    total = 0
    for p in descendants(pid):
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total / 1024


@contextmanager
def bare_app(directory: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_app.py"), str(directory), str(port)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/tarball.tgz")
        yield url
    finally:
        proc.terminate()
        proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


# -- load ---------------------------------------------------------------------------------------


def load(
    url: str, duration: float, connections: int = 32, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) under closed-loop load."""
    if WRK:
        args = [WRK, "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
        for k, v in (headers or {}).items():
            args[1:1] = ["-H", f"{k}: {v}"]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        pct = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise RuntimeError(f"{url}: {errors.group(1)} error responses under load")
        return {"rps": rps, "p50": pct["50"], "p99": pct["99"]}
    return _python_load(url, duration, min(connections, 8), headers or {})


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m is not None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def _python_load(
    url: str, duration: float, workers: int, headers: dict[str, str]
) -> dict[str, float]:
    latencies: list[float] = []
    stop = time.monotonic() + duration

    def worker() -> None:
        with httpx.Client(headers=headers) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                c.get(url).raise_for_status()
                latencies.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "rps": len(latencies) / duration,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def timed_gets(urls: list[str], headers: dict[str, str]) -> dict[str, float]:
    times = []
    with httpx.Client(headers=headers, timeout=120) as c:
        for u in urls:
            t = time.perf_counter()
            c.get(u).raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
        "n": len(times),
    }


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    parser.add_argument("--tree", type=int, default=400, help="packages in the npm install fixture")
    parser.add_argument("--skip-npm", action="store_true", help="skip the npm install measurement")
    parser.add_argument(
        "--auth", action="store_true", help="a client token exists and every request sends it"
    )
    args = parser.parse_args()
    if not WRK:
        print(
            "wrk not found: using a Python load generator (install wrk for real numbers)",
            file=sys.stderr,
        )
    rows: list[tuple[str, str, dict[str, Any]]] = []
    results: dict[str, Any] = {}

    with running_registry() as (registry, _server), tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        publish(registry, args.tree)
        auth: dict[str, str] = {}
        if args.auth:
            store = TokenStore.in_cache(tmp / "floodgate-cache")
            auth = {"authorization": f"Bearer {store.create('bench', 'bench-1')}"}
            store.close()
        # No background prefetch scans: they wait for a pause in client requests, and a pause
        # between two measurements would let one land in the middle of the next.
        with floodgate(registry.url, tmp, "--prefetch-scans", "0") as gate:
            pid = gate.process.pid
            fg, up = gate.url, registry.url
            # Cold: first request per distinct package, through Floodgate and direct.
            for size, n in (("medium", 12), ("large", 4)):
                names = [f"bench-{size}-cold{i}" for i in range(n)]
                hdr = {"accept": ABBREVIATED, "accept-encoding": "gzip"}
                rows.append(
                    (
                        f"cold {size} packument (abbrev, gzip)",
                        "floodgate",
                        timed_gets([f"{fg}/{x}" for x in names], {**hdr, **auth}),
                    )
                )
                rows.append(
                    (
                        f"cold {size} packument (abbrev, gzip)",
                        "upstream",
                        timed_gets([f"{up}/{x}" for x in names], hdr),
                    )
                )

            # Warm: same bytes through Floodgate, the upstream, and the bare ceiling.
            ceiling_dir = tmp / "ceiling"
            ceiling_dir.mkdir()
            with httpx.Client(timeout=60, headers=auth) as c:
                for size in ("medium", "large"):
                    r = c.get(f"{fg}/bench-{size}", headers={"accept-encoding": "gzip"})
                    with c.stream(
                        "GET", f"{fg}/bench-{size}", headers={"accept-encoding": "gzip"}
                    ) as s:
                        (ceiling_dir / f"{size}.gz").write_bytes(b"".join(s.iter_raw()))
                    (ceiling_dir / f"{size}.json").write_bytes(r.content)
                    results[f"{size}_bytes"] = len(r.content)
                    results[f"{size}_gzip_bytes"] = (ceiling_dir / f"{size}.gz").stat().st_size
                tarball = c.get(f"{fg}/bench-tarball/-/bench-tarball-1.0.0.tgz").content
                (ceiling_dir / "tarball.tgz").write_bytes(tarball)
                results["tarball_bytes"] = len(tarball)
            with bare_app(ceiling_dir) as bare:
                cases = [
                    ("medium", "gzip", "/bench-medium", {"accept-encoding": "gzip"}, "/medium.gz"),
                    ("medium", "identity", "/bench-medium", {}, "/medium.json"),
                    ("large", "gzip", "/bench-large", {"accept-encoding": "gzip"}, "/large.gz"),
                    ("large", "identity", "/bench-large", {}, "/large.json"),
                    (
                        "tarball",
                        "-",
                        "/bench-tarball/-/bench-tarball-1.0.0.tgz",
                        {},
                        "/tarball.tgz",
                    ),
                ]
                for size, enc, path, hdr, bare_path in cases:
                    label = (
                        f"warm {size} ({enc})"
                        if size != "tarball"
                        else f"warm tarball ({len(tarball) // 1024} KB)"
                    )
                    rows.append(
                        (
                            label,
                            "floodgate",
                            load(fg + path, args.duration, headers={**hdr, **auth}),
                        )
                    )
                    rows.append(
                        (label, "ceiling", load(bare + bare_path, args.duration, headers=hdr))
                    )
                    if size != "large":
                        rows.append(
                            (label, "upstream", load(up + path, min(args.duration, 3), headers=hdr))
                        )

            # Small requests while ten 10 MB packuments are being served (gzip, as npm asks, and
            # identity, the heavier case).
            small = fg + "/bench-small"
            httpx.get(small, headers={"accept": ABBREVIATED, **auth}).raise_for_status()
            for enc, hdr in (("gzip", {"accept-encoding": "gzip"}), ("identity", {})):
                big = threading.Thread(
                    target=load, args=(fg + "/bench-large", args.duration + 1, 10, {**hdr, **auth})
                )
                big.start()
                time.sleep(0.5)
                during = load(
                    small, args.duration, connections=4, headers={"accept": ABBREVIATED, **auth}
                )
                rows.append((f"small packument, 10x large ({enc}) load", "floodgate", during))
                big.join()

            if not args.skip_npm and NPM:
                project = write_project(tmp / "app", {"tree-000": "^1.0.0"})
                if auth:
                    host = fg.removeprefix("http://")
                    token = auth["authorization"].removeprefix("Bearer ")
                    (project / ".test-npmrc").write_text(f"//{host}/:_authToken={token}\n")
                npm(["install"], project, fg, tmp / "npm-cold")
                shutil.rmtree(project / "node_modules")
                (project / "package-lock.json").unlink()
                before = cpu_seconds(pid)
                t = time.perf_counter()
                npm(["install"], project, fg, tmp / "npm-warm")
                results["npm_warm_wall_s"] = time.perf_counter() - t
                results["npm_warm_cpu_s"] = cpu_seconds(pid) - before
                results["npm_packages"] = len(
                    [p for p in (project / "node_modules").iterdir() if p.name.startswith("tree-")]
                )
            results["rss_mb"] = rss_mb(pid)

    print(f"{'case':44} {'target':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label, target, row in rows:
        rps = f"{row['rps']:9.0f}" if "rps" in row else f"{'-':>9}"
        print(f"{label:44} {target:10} {rps} {row['p50']:8.2f} {row['p99']:8.2f}")
    by = {(label, target): row for label, target, row in rows}
    print()
    for label in [case for case, target, _ in rows if target == "ceiling"]:
        ratio = by[(label, "floodgate")]["rps"] / by[(label, "ceiling")]["rps"]
        print(f"ratio floodgate/ceiling  {label:34} {ratio:5.2f}")
    for k, v in results.items():
        print(f"{k:24} {v:.2f}" if isinstance(v, float) else f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
