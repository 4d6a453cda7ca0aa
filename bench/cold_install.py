"""Cold and warm `npm install` of a ~470-package project: through Floodgate against straight to
the upstream, in one run, against one fake upstream on 127.0.0.1 that adds a realistic latency
to every answer (`--latency`, default 30 ms, like a nearby registry CDN).

    python bench/cold_install.py [--packages 470] [--latency 0.03] [--runs 1]

The project is generated with a fixed seed: a dependency DAG of libraries with several majors
and versions each, real-looking JavaScript of 2-60 KB per tarball, a few `0.0.x` placeholders,
and platform builds (`os`/`cpu`) as optional dependencies, of which npm installs only the one
for this machine. Every install starts with an empty npm cache, no node_modules and no lockfile.

Reports, for each case: wall time and the ratio to direct; Floodgate's CPU seconds and the
resident memory of all its processes after the install; tarball bytes Floodgate fetched from
the upstream against the bytes npm itself downloads; and cold packument latency through
Floodgate against direct (median, p90, max of the difference).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import cpu_seconds, rss_mb  # noqa: E402
from tests.e2e.npm import NPM, floodgate, npm, write_project  # noqa: E402
from tests.fakes.packages import FakeVersion  # noqa: E402
from tests.fakes.registry import FakeRegistry, running_registry  # noqa: E402

WORDS = [
    "parse",
    "format",
    "merge",
    "stream",
    "buffer",
    "token",
    "cache",
    "queue",
    "route",
    "match",
    "scope",
    "event",
]
NODE_OS = {"linux": "linux", "darwin": "darwin", "win32": "win32"}


def js(rng: random.Random, size: int) -> bytes:
    """Plausible JavaScript of about `size` bytes (functions over words, not filler)."""
    out: list[str] = ["'use strict';\n"]
    n = 0
    while sum(map(len, out)) < size:
        a, b = rng.sample(WORDS, 2)
        n += 1
        out.append(
            f"function {a}{b.title()}{n}(input, options) {{\n"
            f"  const {a} = Object.assign({{}}, options);\n"
            f"  if (!input) return {rng.randint(0, 999)};\n"
            f"  return String(input).split('{b[0]}').map((p) => p + {a}.{b} || '').join('');\n"
            "}\n"
            f"module.exports.{a}{b.title()}{n} = {a}{b.title()}{n};\n"
        )
    return "".join(out).encode()


def publish_project(registry: FakeRegistry, size: int, seed: int = 7) -> list[str]:
    """Publish a dependency DAG of `size` packages, every one reachable from the returned
    roots; dependency ranges ask for one of each package's majors, as real trees do."""
    rng = random.Random(seed)
    names = [f"cold-{i:03d}" for i in range(size)]
    majors = {n: rng.randint(1, 4) for n in names}
    children: dict[int, set[int]] = {i: set() for i in range(size)}
    for j in range(1, size):  # every package has a parent before it, and maybe a second one
        for _ in range(rng.choice((1, 1, 2))):
            children[rng.randint(max(0, j - 30), j - 1)].add(j)
    this_os = NODE_OS.get(sys.platform, "linux")
    this_cpu = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), "x64"
    )
    for i in range(size):
        deps = {names[j]: f"^{rng.randint(1, majors[names[j]])}.0.0" for j in children[i]}
        optional: dict[str, str] = {}
        if i % 60 == 0:  # a package with platform builds, like typescript, esbuild or swc
            for os_, cpu in (("linux", "x64"), ("linux", "arm64"), ("darwin", "arm64"),
                             ("darwin", "x64"), ("win32", "x64")):  # fmt: skip
                native = f"@cold/native-{i:03d}-{os_}-{cpu}"
                registry.add(
                    native,
                    FakeVersion(
                        "1.0.0",
                        files={"bin/tool.js": js(rng, 200_000)},
                        extra={"os": [os_], "cpu": [cpu]},
                    ),
                )
                optional[native] = "1.0.0"
            assert any(f"-{this_os}-{this_cpu}" in n for n in optional)
        versions: list[FakeVersion] = []
        if i % 25 == 0:
            versions.append(FakeVersion("0.0.1", files={"index.js": b"// placeholder\n"}))
        for major in range(1, majors[names[i]] + 1):
            for minor in range(rng.randint(1, 5)):
                extra = {"optionalDependencies": optional} if optional else {}
                versions.append(
                    FakeVersion(
                        f"{major}.{minor}.0",
                        deps,
                        files={"index.js": js(rng, rng.randint(2_000, 60_000))},
                        extra=extra,
                    )
                )
        registry.add(names[i], *versions)
    return [names[0]]


def install(url: str, work: Path, tag: str, roots: list[str]) -> float:
    project = write_project(work / f"app-{tag}", {r: "^1.0.0" for r in roots})
    shutil.rmtree(project / "node_modules", ignore_errors=True)
    (project / "package-lock.json").unlink(missing_ok=True)
    started = time.perf_counter()
    npm(["install", "--no-audit", "--no-fund"], project, url, work / f"npm-cache-{tag}")
    elapsed = time.perf_counter() - started
    installed = sum(1 for _ in (project / "node_modules").glob("**/package.json"))
    print(f"  ({tag}: {installed} packages installed)", file=sys.stderr)
    return elapsed


def tarball_bytes(registry: FakeRegistry, since: int) -> int:
    return sum(len(registry.tarballs.get(s.path, b"")) for s in registry.seen[since:])


def packument_latency(
    url: str, names: list[str], headers: dict[str, str] | None = None
) -> list[float]:
    """Seconds for each packument, asked one at a time (as npm does while it resolves)."""
    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for name in names:
            started = time.perf_counter()
            r = client.get(
                "/" + name.replace("/", "%2f"), headers=headers or {"accept-encoding": "gzip"}
            )
            r.raise_for_status()
            out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=470)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per upstream answer")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--serve-args", default="", help="extra arguments for floodgate serve")
    args = parser.parse_args()
    if NPM is None:
        print("npm is not installed: nothing to measure", file=sys.stderr)
        return 2
    extra = args.serve_args.split()
    with running_registry() as (registry, _), tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        roots = publish_project(registry, args.packages)
        registry.latency = args.latency
        rows: list[tuple[str, float, str]] = []
        direct_times, cold_times, warm_times = [], [], []
        for run in range(args.runs):
            mark = len(registry.seen)
            direct_times.append(install(registry.url, tmp, f"direct-{run}", roots))
            npm_bytes = tarball_bytes(registry, mark)
            work = tmp / f"fg-{run}"
            work.mkdir()
            with floodgate(registry.url, work, *extra) as gate:
                pid = gate.process.pid
                cpu0 = cpu_seconds(pid)
                mark = len(registry.seen)
                cold_times.append(install(gate.url, tmp, f"cold-{run}", roots))
                cold_cpu = cpu_seconds(pid) - cpu0
                time.sleep(2)  # let background scans finish before the memory reading
                fg_bytes = tarball_bytes(registry, mark)
                rss = rss_mb(pid)
                cpu1 = cpu_seconds(pid)
                warm_times.append(install(gate.url, tmp, f"warm-{run}", roots))
                warm_cpu = cpu_seconds(pid) - cpu1
            rows.append(
                ("tarball bytes fetched", fg_bytes / 1e6, f"npm downloads {npm_bytes / 1e6:.1f} MB")
            )
            rows.append(("floodgate CPU cold / warm (s)", cold_cpu, f"{warm_cpu:.2f}"))
            rows.append(("floodgate RSS after install (MB)", rss, "all processes"))
        direct = statistics.median(direct_times)
        cold = statistics.median(cold_times)
        warm = statistics.median(warm_times)
        print(f"npm install of {args.packages} packages (+ platform builds), upstream latency "
              f"{args.latency * 1000:.0f} ms, median of {args.runs}")  # fmt: skip
        print(f"  direct                 {direct:7.2f} s")
        print(f"  floodgate cold         {cold:7.2f} s   {cold / direct:.2f}x direct")
        print(f"  floodgate warm         {warm:7.2f} s   {warm / direct:.2f}x direct")
        for label, value, note in rows:
            print(f"  {label:32s} {value:8.2f}   {note}")
        # Cold packument latency: fresh Floodgate, one GET per package, against direct.
        names = sorted(n for n in registry.packuments if not n.startswith("@"))[:60]
        direct_lat = packument_latency(registry.url, names)
        work = tmp / "lat"
        work.mkdir()
        with floodgate(registry.url, work, *extra) as gate:
            through = packument_latency(gate.url, names)
        extra_ms = sorted((t - d) * 1000 for t, d in zip(through, direct_lat, strict=True))
        print(
            f"  cold packument, floodgate minus direct: "
            f"median {statistics.median(extra_ms):.1f} ms,"
            f" p90 {extra_ms[int(len(extra_ms) * 0.9)]:.1f} ms, max {extra_ms[-1]:.1f} ms"
            f" ({len(names)} packuments)"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NODE_OPTIONS", "")
    raise SystemExit(main())
