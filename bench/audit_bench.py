"""Benchmark `floodgate audit` on a 1,000-package lockfile against a fake upstream on loopback.

    python bench/audit_bench.py [--packages 1000]

Writes a package-lock.json (lockfileVersion 3) for a project whose tree holds `--packages`
packages, runs `floodgate audit` once cold (every tarball downloaded and scanned, verdicts
stored) and once warm (verdicts from the store), and prints both wall times. The issue's
targets: cold under 30 s, warm under 3 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.packages import clean, farm  # noqa: E402
from tests.fakes.registry import FakeRegistry, running_registry  # noqa: E402


def publish_and_lock(registry: FakeRegistry, size: int, project: Path) -> None:
    """A binary tree of `size` packages (one of them token farming) and its package-lock."""
    packages: dict[str, dict[str, object]] = {}
    for i in range(size):
        name = f"aud-{i:04d}"
        children = [c for c in (2 * i + 1, 2 * i + 2) if c < size]
        deps = {f"aud-{c:04d}": "^1.0.0" for c in children}
        make = farm if i == size - 1 else clean
        doc = registry.add(name, make("1.0.0", dependencies=deps))
        dist = doc["versions"]["1.0.0"]["dist"]
        packages[f"node_modules/{name}"] = {
            "version": "1.0.0",
            "resolved": dist["tarball"],
            "integrity": dist["integrity"],
            **({"dependencies": deps} if deps else {}),
        }
    lock = {
        "name": "audit-bench",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {
            "": {"name": "audit-bench", "version": "1.0.0", "dependencies": {"aud-0000": "^1.0.0"}},
            **packages,
        },
    }
    project.mkdir(parents=True, exist_ok=True)
    (project / "package.json").write_text(
        json.dumps(
            {"name": "audit-bench", "version": "1.0.0", "dependencies": {"aud-0000": "^1.0.0"}}
        )
    )
    (project / "package-lock.json").write_text(json.dumps(lock, indent=2))


def run_audit(upstream: str, project: Path, cache: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "audit", str(project), "--upstream", upstream,
         "--cache-dir", str(cache), "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"audit failed ({done.returncode}):\n{done.stderr}")
    return elapsed, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=1000)
    args = parser.parse_args()
    with running_registry() as (registry, _), tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        publish_and_lock(registry, args.packages, tmp / "project")
        cold, code = run_audit(registry.url, tmp / "project", tmp / "cache")
        warm, code_warm = run_audit(registry.url, tmp / "project", tmp / "cache")
    print(f"audit of {args.packages} locked packages")
    print(f"  cold: {cold:6.2f} s (target < 30)   exit {code}")
    print(f"  warm: {warm:6.2f} s (target < 3)    exit {code_warm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
