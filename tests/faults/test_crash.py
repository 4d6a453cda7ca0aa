"""kill -9 at the worst moments: nothing half-written, no refusal unrecorded (defects 11, 12)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from proxy.decisions import query
from tests.e2e.npm import serve
from tests.fakes.packages import FakeVersion, farm
from tests.fakes.registry import FakeRegistry

RECORDER = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from proxy.decisions import DecisionLog, DecisionRecord

    log = DecisionLog(Path(sys.argv[1]))
    count = int(sys.argv[2])
    for i in range(count):
        action = "block" if i % 2 == 0 else "allow"
        log.record(DecisionRecord(
            time=time.time(), package=f"fg-{i}", version="1.0.0", action=action,
            intended=action, rule="r", label=None, score=None, reasons=("why",), waiver="",
            via="tarball", client="127.0.0.1", user_agent="", token="", request_id=str(i),
            policy="default", policy_digest="d",
        ))
    print("recorded", flush=True)
    signal.pause()  # until the test kills this process
    """
)


def test_kill_9_after_recording_loses_no_block(tmp_path: Path) -> None:
    db = tmp_path / "decisions.sqlite3"
    count = 2000
    with subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(db), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "recorded"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    blocks = list(query(db, actions=["block"]))
    assert len(blocks) == count // 2  # every block, whatever happened to the batched allows


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_helper_processes_die_with_a_killed_server(registry: FakeRegistry, tmp_path: Path) -> None:
    args = [
        "--upstream", registry.url, "--port", "0", "--cache-dir", str(tmp_path / "cache"),
        "--render-workers", "1",
    ]  # fmt: skip
    with serve(args, tmp_path / "floodgate.log") as running:
        pid = running.process.pid
        helpers: set[int] = set()

        def started() -> bool:
            helpers.update(children_of(pid))
            return len(helpers) >= 2  # the forkserver and its worker at least

        wait_until(started, "the render worker processes to start")
        os.kill(pid, signal.SIGKILL)
        running.process.wait(30)
    wait_until(lambda: not (helpers & alive_pids()), f"helpers {sorted(helpers)} to exit")


def alive_pids() -> set[int]:
    alive = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.add(int(entry.name))
    return alive


def check_cache(cache: Path, *, after_crash: bool = False) -> None:
    """Every cache entry whole: tarballs match the digest they are stored under, saved
    packuments parse, every database passes its integrity check. Right after a crash an
    unfinished `.tmp` file may be left (never under an entry's name); a start removes it."""
    for path in (cache / "tarballs").rglob("*"):
        if path.is_file() and not (after_crash and path.name.endswith(".tmp")):
            assert not path.name.endswith(".tmp"), f"half-written file left: {path}"
            algorithm = path.parent.parent.name
            assert hashlib.new(algorithm, path.read_bytes()).hexdigest() == path.name, path
    for path in (cache / "packuments").rglob("*"):
        if path.is_file() and not (after_crash and path.name.endswith(".tmp")):
            assert not path.name.endswith(".tmp"), f"half-written file left: {path}"
            header, _, raw = path.read_bytes().partition(b"\n")
            assert json.loads(header)["name"]
            json.loads(raw)
    for db in cache.glob("*.sqlite3"):
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",), db
        finally:
            conn.close()


def fetch_ignoring_errors(url: str) -> None:
    """A client whose server is about to be killed."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, timeout=60)


def test_kill_9_during_a_tarball_write_leaves_a_consistent_cache(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    registry.add("fg-big", FakeVersion("1.0.0", files={"blob.bin": os.urandom(4 << 20)}))
    registry.add("fg-farm", farm("1.0.0"))
    path = registry.tarball_path("fg-big", "1.0.0")
    registry.faults[path] = "stall"  # half the bytes, then nothing until released
    registry.hold_limit = 60
    cache = tmp_path / "cache"
    args = ["--upstream", registry.url, "--port", "0", "--cache-dir", str(cache)]
    try:
        with serve(args, tmp_path / "first.log") as running:
            with httpx.Client(base_url=running.url, timeout=30) as client:
                assert client.get("/fg-big").status_code == 200
                blocked = client.get("/fg-farm/-/fg-farm-1.0.0.tgz", follow_redirects=True)
                assert blocked.status_code == 451  # a block recorded just before the kill
            fetcher = threading.Thread(target=fetch_ignoring_errors, args=(running.url + path,))
            fetcher.start()
            wait_until(
                lambda: any(p.name.endswith(".tmp") for p in (cache / "tarballs").rglob("*")),
                "the tarball write to start",
            )
            os.kill(running.process.pid, signal.SIGKILL)
            running.process.wait(30)
            fetcher.join(30)
    finally:
        registry.release.set()
    check_cache(cache, after_crash=True)
    # The plain URL's redirect and the blocked URL's 451: both refusals are in the log.
    blocks = [r.package for r in query(cache / "decisions.sqlite3", actions=["block"])]
    assert blocks == ["fg-farm", "fg-farm"]
    # A restart removes the unfinished file and serves the tarball whole.
    registry.faults.clear()
    with serve(args, tmp_path / "second.log") as running:
        got = httpx.get(running.url + path, timeout=30)
        assert got.status_code == 200
        assert got.content == registry.tarballs[path]
    check_cache(cache)
