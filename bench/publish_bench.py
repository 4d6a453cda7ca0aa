"""Benchmark hosted packages: publish latency as a packument grows to 1,000 versions, then warm
packument reads of it against a proxied packument of the same size.

    python bench/publish_bench.py [--versions 1000] [--duration 3] [--connections 8]

Starts, all on 127.0.0.1: the fake upstream registry from the tests (in this process) serving
`@pub/proxied` with `--versions` versions, and a real `floodgate serve` process hosting the
`@bench` scope. An admin token is made first (as `floodgate token create` would), and every
request carries it.

1. Publishes `@bench/hosted` `--versions` times, one version after the other, over HTTP as npm
   sends it (`PUT /@bench%2fhosted`, the version's manifest and its tarball in base64; a real
   gzipped tarball with package/package.json and an index.js of real code): each publish is
   parsed, inspected, decided by the policy and stored, so the packument grows a version at a
   time. Prints publish latency p50/p99, and the first 100 publishes against the last 100.
2. Reads both packuments warm (full and abbreviated, gzip, as npm asks) under closed-loop load
   (wrk when installed, else a slower Python client) and prints hosted/proxied ratios of the
   same run: throughput, p50 and p99.

Loopback only, bounded: about a minute for the publishes on a small machine, then
4 x `--rounds` x `--duration` seconds of load (the rounds alternate which package goes first,
and the best round of each case is shown: other work on the machine only slows a run down).
Numbers depend on the machine: run it, do not quote it.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import ABBREVIATED, WRK, load  # noqa: E402
from proxy.tokens import TokenStore  # noqa: E402
from tests.e2e.npm import floodgate  # noqa: E402
from tests.fakes.packages import FakeVersion  # noqa: E402
from tests.fakes.publish import path_of, publish_body  # noqa: E402
from tests.fakes.registry import running_registry  # noqa: E402

HOSTED = "@bench/hosted"
PROXIED = "@pub/proxied"
DESCRIPTION = "Date and duration helpers for the bench services"
CODE = b"""'use strict';
const UNITS = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]];
function format(ms) {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError('a duration is a positive number');
  const parts = [];
  let rest = Math.round(ms);
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      parts.push(Math.floor(rest / size) + unit);
      rest %= size;
    }
  }
  return parts.length ? parts.join(' ') : rest + 'ms';
}
function parse(text) {
  let total = 0;
  for (const m of String(text).matchAll(/(\\d+)\\s*(d|h|m|s|ms)/g)) {
    const unit = UNITS.find(([u]) => u === m[2]);
    total += Number(m[1]) * (unit ? unit[1] : 1);
  }
  return total;
}
module.exports = { format, parse };
"""


def version_of(i: int) -> str:
    return f"1.{i // 100}.{i % 100}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def publish_all(url: str, token: str, count: int) -> list[float]:
    """Publish `count` versions one after the other; each publish's latency in ms."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    latencies = []
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        for i in range(count):
            body = publish_body(HOSTED, version_of(i), description=DESCRIPTION, code=CODE)
            started = time.perf_counter()
            r = client.put(path_of(HOSTED), content=body)
            latencies.append((time.perf_counter() - started) * 1000)
            if r.status_code != 201:
                raise RuntimeError(f"publish {i} of {HOSTED} answered {r.status_code}: {r.text}")
            if (i + 1) % 100 == 0:
                print(f"  published {i + 1}/{count}", file=sys.stderr)
    return latencies


def sizes(url: str, headers: dict[str, str]) -> dict[str, int]:
    """Bytes of the full and abbreviated packument, plain and gzipped."""
    out = {}
    with httpx.Client(timeout=60, headers=headers) as c:
        for label, accept in (("full", "application/json"), ("abbreviated", ABBREVIATED)):
            r = c.get(url, headers={"accept": accept})
            r.raise_for_status()
            out[label] = len(r.content)
            out[f"{label} gzip"] = len(gzip.compress(r.content, 6))
            out[f"{label} versions"] = len(r.json()["versions"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=1000, help="versions to publish")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=8, help="connections under load")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="load runs of each case, alternating which package goes first (the best is shown)",
    )
    args = parser.parse_args()
    if args.versions < 200:
        parser.error("--versions must be at least 200 (first and last 100 are compared)")
    if not WRK:
        print(
            "wrk not found: using a Python load generator (the ratios mean less)", file=sys.stderr
        )

    with running_registry() as (registry, _server), tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        registry.add(
            PROXIED,
            *[
                FakeVersion(version_of(i), extra={"description": DESCRIPTION})
                for i in range(args.versions)
            ],
        )
        store = TokenStore.in_cache(tmp / "floodgate-cache")
        token = store.create("admin", "bench")
        store.close()
        auth = {"authorization": f"Bearer {token}"}
        with floodgate(registry.url, tmp, "--internal-scopes", "@bench") as gate:
            print(f"publishing {args.versions} versions of {HOSTED} ...", file=sys.stderr)
            started = time.perf_counter()
            latencies = publish_all(gate.url, token, args.versions)
            publish_seconds = time.perf_counter() - started
            hosted_url, proxied_url = gate.url + path_of(HOSTED), gate.url + path_of(PROXIED)
            measured: dict[str, dict[str, Any]] = {
                "hosted": sizes(hosted_url, auth),
                "proxied": sizes(proxied_url, auth),
            }
            runs: dict[tuple[str, str], list[dict[str, float]]] = {}
            for round_ in range(args.rounds):
                for label, accept in (("full", "application/json"), ("abbreviated", ABBREVIATED)):
                    pair = [("hosted", hosted_url), ("proxied", proxied_url)]
                    for which, url in pair if round_ % 2 == 0 else pair[::-1]:
                        headers = {**auth, "accept": accept, "accept-encoding": "gzip"}
                        httpx.get(url, headers=headers, timeout=60).raise_for_status()  # warm
                        got = load(url, args.duration, args.connections, headers)
                        runs.setdefault((label, which), []).append(got)
            # The best round of each (other work on the machine only ever slows a run down).
            loads = {key: max(found, key=lambda r: r["rps"]) for key, found in runs.items()}

    first, last = latencies[:100], latencies[-100:]
    print()
    print(f"publish: {args.versions} versions of {HOSTED} in {publish_seconds:.1f} s")
    print(
        f"  latency p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms"
    )
    print(
        f"  first 100: p50 {statistics.median(first):.1f} ms, p99 {percentile(first, 0.99):.1f} ms"
    )
    print(f"  last 100:  p50 {statistics.median(last):.1f} ms, p99 {percentile(last, 0.99):.1f} ms")
    growth = statistics.median(last) / statistics.median(first)
    print(f"  growth (last 100 p50 / first 100 p50): {growth:.2f}x")
    print()
    print("packument sizes (bytes):")
    for which in ("hosted", "proxied"):
        m = measured[which]
        print(
            f"  {which:8} full {m['full']:>9,} (gzip {m['full gzip']:>8,}), abbreviated "
            f"{m['abbreviated']:>9,} (gzip {m['abbreviated gzip']:>7,}), "
            f"{m['full versions']} versions"
        )
    print()
    print(
        f"warm packument GET (gzip, {args.connections} connections, {args.duration:g} s, "
        f"best of {args.rounds}):"
    )
    print(f"  {'':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label in ("full", "abbreviated"):
        for which in ("hosted", "proxied"):
            r = loads[(label, which)]
            print(f"  {label + ' ' + which:24} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}")
        h, p = loads[(label, "hosted")], loads[(label, "proxied")]
        print(
            f"  {label + ' hosted/proxied':24} {h['rps'] / p['rps']:>8.2f}x "
            f"{h['p50'] / p['p50']:>7.2f}x {h['p99'] / p['p99']:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
