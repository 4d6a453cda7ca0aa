"""Detector speed: median time to read and assess a ~50 KB tarball, and bounds on hostile ones.

    python bench/detect_speed.py [--runs N] [--json]

Tarballs are generated here: realistic ~50 KB packages (package.json, README, JavaScript
sources with varied identifiers), a tarball of 100,000 empty entries, and a gzip bomb (one
member declaring 1 GB of zeros, ~1 MB compressed). Reading plus `Detector.assess` (on-disk
indexes in a temporary folder, recording as the proxy does) is timed per tarball, and serving a
stored verdict (`Detector.current`, which redoes the relational findings); for the
hostile ones the wall time and the peak of Python allocations (tracemalloc) are reported.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tarfile
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts
from proxy.detect.model import Verdict
from proxy.npm.tarball import TarballFacts, read_tarball

WORDS = ("alpha", "beta", "gamma", "parse", "render", "stream", "buffer", "token", "state")


def _js(rng: random.Random, size: int) -> bytes:
    lines: list[str] = ["'use strict';", "const path = require('path');"]
    while sum(len(x) + 1 for x in lines) < size:
        a, b, c = (rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(3))
        lines.append(f"function {a}({b}, {c}) {{ return {b} + {c} * {rng.random():.6f}; }}")
        lines.append(f"module.exports.{a} = {a}; // {rng.getrandbits(64):x}")
    return "\n".join(lines).encode()


def realistic(seed: int, target: int = 50_000) -> bytes:
    """A package tarball of about `target` bytes compressed."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    name = f"bench-pkg-{seed}"
    files: dict[str, bytes] = {
        "package/package.json": json.dumps(
            {
                "name": name,
                "version": "1.2.3",
                "main": "lib/index.js",
                "dependencies": {"path-browserify": "^1.0.0"},
            }
        ).encode(),
        "package/README.md": (f"# {name}\n\n" + "Some documentation. " * 200).encode(),
        "package/LICENSE": b"MIT License\n" + b"Permission is hereby granted... " * 30,
    }
    i = 0
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        while buf.tell() < target * 0.75:  # gzip output lags the input
            data = _js(rng, 6_000)
            info = tarfile.TarInfo(f"package/lib/{'index' if i == 0 else f'mod{i}'}.js")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
            i += 1
    return buf.getvalue()


def many_entries(n: int = 100_000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for k in range(n):
            tf.addfile(tarfile.TarInfo(f"package/f{k}.js"))
    return buf.getvalue()


def zero_bomb(size: int = 1 << 30, members: int = 1) -> bytes:
    """A gzip of `members` tar files holding `size` bytes of zeros in all (~1 MB for 1 GB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out: list[bytes] = []
    zeros = bytes(1 << 20)
    for m in range(members):
        info = tarfile.TarInfo(f"package/zeros{m}.bin")
        info.size = size // members
        out.append(comp.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(info.size >> 20):
            out.append(comp.compress(zeros))
    out.append(comp.flush())
    return b"".join(out)


def _ms(times: list[float], share: float) -> float:
    return round(sorted(times)[max(int(len(times) * share) - 1, 0)] * 1000, 3)


def bench_realistic(runs: int) -> dict[str, Any]:
    """Read and assess each tarball (recording); serving a stored verdict (`Detector.current`)
    is timed right after each record (the graph changed: its memoised answers are stale) and
    once all were recorded (steady)."""
    blobs = [realistic(s) for s in range(runs)]
    with tempfile.TemporaryDirectory() as tmp:
        detector = Detector.open(Path(tmp))
        times: list[float] = []
        read_times: list[float] = []
        served_fresh: list[float] = []
        made: list[tuple[PackageFacts, Verdict]] = []
        for blob in blobs:
            t0 = time.perf_counter()
            facts = read_tarball(blob)
            t1 = time.perf_counter()
            pj = facts.package_json or {}
            doc = {"name": pj["name"], "versions": {pj["version"]: pj}}
            package = PackageFacts.from_packument(doc)
            verdict = detector.assess(package, str(pj["version"]), facts)
            t2 = time.perf_counter()
            times.append(t2 - t0)
            read_times.append(t1 - t0)
            if made:
                t3 = time.perf_counter()
                detector.current(made[-1][1], made[-1][0])
                served_fresh.append(time.perf_counter() - t3)
            made.append((package, verdict))
        served: list[float] = []
        for package, verdict in made:
            t0 = time.perf_counter()
            detector.current(verdict, package)
            served.append(time.perf_counter() - t0)
        detector.close()
    return {
        "tarballs": runs,
        "median_tarball_bytes": int(statistics.median(len(b) for b in blobs)),
        "median_unpacked_bytes": facts.unpacked_size,
        "median_ms": round(statistics.median(times) * 1000, 3),
        "p95_ms": _ms(times, 0.95),
        "median_read_ms": round(statistics.median(read_times) * 1000, 3),
        "serve_median_ms": round(statistics.median(served) * 1000, 4),
        "serve_p95_ms": _ms(served, 0.95),
        "serve_after_record_median_ms": round(statistics.median(served_fresh) * 1000, 4),
        "serve_after_record_p95_ms": _ms(served_fresh, 0.95),
    }


def _read_and_assess(blob: bytes) -> tuple[TarballFacts, Verdict]:
    detector = Detector.open(None)
    facts = read_tarball(blob)
    return facts, detector.assess(PackageFacts.name_only("hostile", "1.0.0"), "1.0.0", facts)


def bench_hostile(name: str, blob: bytes) -> dict[str, Any]:
    t0 = time.perf_counter()
    facts, verdict = _read_and_assess(blob)
    elapsed = time.perf_counter() - t0
    tracemalloc.start()  # a second run: tracing slows allocation down several times
    _read_and_assess(blob)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "case": name,
        "compressed_bytes": len(blob),
        "seconds": round(elapsed, 3),
        "peak_python_mb": round(peak / 2**20, 1),
        "entries_read": len(facts.entries),
        "unpacked_bytes_read": facts.unpacked_size,
        "problems": sorted({p.kind.value for p in facts.problems}),
        "label": verdict.label.value,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "realistic": bench_realistic(args.runs),
        "hostile": [
            bench_hostile("100k entries", many_entries()),
            bench_hostile("1 GB of zeros in ~1 MB gzip, one member", zero_bomb()),
            bench_hostile("1 GB of zeros in ~1 MB gzip, 16 members", zero_bomb(members=16)),
        ],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    r = result["realistic"]
    print(
        f"realistic: {r['tarballs']} tarballs of ~{r['median_tarball_bytes']} bytes "
        f"(~{r['median_unpacked_bytes']} unpacked): read+assess median {r['median_ms']} ms, "
        f"p95 {r['p95_ms']} ms (read alone median {r['median_read_ms']} ms); serving a stored "
        f"verdict median {r['serve_median_ms']} ms, p95 {r['serve_p95_ms']} ms (right after a "
        f"record: median {r['serve_after_record_median_ms']} ms, "
        f"p95 {r['serve_after_record_p95_ms']} ms)"
    )
    for h in result["hostile"]:
        print(
            f"hostile {h['case']}: {h['compressed_bytes']} bytes compressed, {h['seconds']} s, "
            f"peak {h['peak_python_mb']} MB (Python), read {h['entries_read']} entries / "
            f"{h['unpacked_bytes_read']} bytes, problems {h['problems']}, label {h['label']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
