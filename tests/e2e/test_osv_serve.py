"""`floodgate serve` as a process with the OSV feed: a record published to a local feed server
(OSV's bucket layout on 127.0.0.1) while it runs gets that version refused, the update is logged
with the feed's age, and a feed path that does not exist stops startup with exit 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.npm import floodgate
from tests.fakes.osv_bucket import OsvBucket, mal_record
from tests.fakes.packages import clean
from tests.fakes.registry import running_registry

pytestmark = pytest.mark.e2e

TARBALL = "/fg-victim/-/fg-victim-1.0.0.tgz"


def test_serve_enforces_a_record_published_while_it_runs(tmp_path: Path) -> None:
    bucket = OsvBucket()
    bucket.publish(
        mal_record("MAL-2026-1", "fg-other", ["1.0.0"], "2026-11-30T10:00:00Z"), in_archive=True
    )
    with running_registry() as (registry, _server):
        registry.add("fg-victim", clean("1.0.0"))
        registry.tarballs.update(bucket.files())
        feed = registry.url + "/osv"
        args = ("--osv-feed", feed, "--osv-refresh-seconds", "0.2", "--prefetch-scans", "0")
        with floodgate(registry.url, tmp_path, *args) as gate:
            assert gate.logged(f"OSV feed {feed}: 1 records, updated 0 s ago")
            with httpx.Client(base_url=gate.url, timeout=30) as client:
                assert client.get(TARBALL).status_code == 200
                bucket.publish(
                    mal_record("MAL-2026-2", "fg-victim", ["1.0.0"], "2026-11-30T10:05:00Z")
                )
                registry.tarballs.update(bucket.files())
                assert gate.logged(f"OSV feed {feed}: 2 records", timeout=30), gate.log()
                deadline = time.monotonic() + 30
                while (r := client.get(TARBALL)).status_code != 302:
                    assert time.monotonic() < deadline, r.status_code
                    time.sleep(0.05)
                assert "MAL-2026-2" in client.get(r.headers["location"]).json()["error"]
            assert "newest record 2026-11-30T10:05:00Z" in gate.log()
            assert "(1 new or changed)" in gate.log()


def test_serve_with_a_feed_path_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "malicious-packages.zip"
    done = subprocess.run(
        [
            sys.executable, "-m", "proxy", "serve", "--port", "0",
            "--upstream", "http://127.0.0.1:9", "--cache-dir", str(tmp_path / "cache"),
            "--osv-feed", str(missing),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"floodgate: error: the OSV feed {missing} cannot be loaded: " in done.stderr
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
