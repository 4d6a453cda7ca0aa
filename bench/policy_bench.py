"""Benchmark the cost of enforcement: a warm `npm install` of a ~300-package project through
Floodgate with the default policy, against the same install with enforcement switched off.

    python bench/policy_bench.py [--packages 300] [--runs 3]

Both proxies run side by side in front of one fake upstream (127.0.0.1). Each gets a cold
install first (which fills its caches and, with the policy, its verdicts); then each timed
install starts from an empty npm cache, no node_modules and no lockfile, so every packument and
tarball goes through Floodgate. Reports the median wall time, Floodgate's CPU seconds, and the
ratio the policy issue targets (at most 1.2).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import cpu_seconds  # noqa: E402
from tests.e2e.npm import NPM, floodgate, npm, write_project  # noqa: E402
from tests.fakes.packages import clean  # noqa: E402
from tests.fakes.registry import FakeRegistry, running_registry  # noqa: E402


def publish_tree(registry: FakeRegistry, size: int) -> None:
    """A binary tree of small real-looking libraries, two versions each."""
    for i in range(size):
        children = [c for c in (2 * i + 1, 2 * i + 2) if c < size]
        deps = {f"pol-{c:03d}": "^1.0.0" for c in children}
        registry.add(
            f"pol-{i:03d}", clean("1.0.0", dependencies=deps), clean("1.0.1", dependencies=deps)
        )


def timed_install(url: str, pid: int, work: Path, tag: str) -> tuple[float, float]:
    project = write_project(work / f"app-{tag}", {"pol-000": "^1.0.0"})
    shutil.rmtree(project / "node_modules", ignore_errors=True)
    (project / "package-lock.json").unlink(missing_ok=True)
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    npm(["install"], project, url, work / f"npm-cache-{tag}")
    return time.perf_counter() - started, cpu_seconds(pid) - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if NPM is None:
        print("npm is not installed: nothing to measure", file=sys.stderr)
        return 2
    with running_registry() as (registry, _), tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        publish_tree(registry, args.packages)
        (tmp / "on").mkdir()
        (tmp / "off").mkdir()
        with (
            floodgate(registry.url, tmp / "on") as on,
            floodgate(registry.url, tmp / "off", "--no-enforce") as off,
        ):
            gates = {"policy default": on, "enforcement off": off}
            for name, gate in gates.items():
                timed_install(gate.url, gate.process.pid, tmp, f"cold-{name[:3]}")
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in gates}
            for run in range(args.runs):
                for name, gate in gates.items():  # interleaved, so drift hits both alike
                    results[name].append(
                        timed_install(gate.url, gate.process.pid, tmp, f"{run}-{name[:3]}")
                    )
    print(f"warm npm install of {args.packages} packages, median of {args.runs} runs")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        medians[name] = wall
        print(f"  {name:16} wall {wall:6.2f} s   floodgate CPU {cpu:5.2f} s")
    ratio = medians["policy default"] / medians["enforcement off"]
    print(f"ratio policy/off: {ratio:.2f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
