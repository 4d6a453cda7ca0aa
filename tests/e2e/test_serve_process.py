"""`floodgate serve` as a process: stopping on Ctrl-C and SIGTERM, exit codes, the quick start's
second start. Real subprocesses; every wait is on a log line, a request seen, or the exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import publish_basics
from tests.e2e.npm import serve
from tests.fakes.packages import clean
from tests.fakes.registry import running_registry

pytestmark = pytest.mark.e2e


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_finishes_the_request_in_flight_and_exits_0(
    sig: signal.Signals, tmp_path: Path
) -> None:
    with running_registry() as (registry, _server):
        registry.add("fg-slow", clean("1.0.0"))
        registry.faults["fg-slow"] = "slow"
        registry.slow_seconds = 1.0  # the upstream's delay: the request is in flight meanwhile
        args = [
            "--upstream", registry.url, "--port", "0", "--cache-dir", str(tmp_path / "cache"),
            "--render-workers", "1",
        ]  # fmt: skip
        with serve(args, tmp_path / "floodgate.log", own_group=True) as gate:
            answers: list[httpx.Response] = []
            request = threading.Thread(
                target=lambda: answers.append(httpx.get(gate.url + "/fg-slow", timeout=30))
            )
            request.start()
            wait_for(lambda: registry.requests_for("/fg-slow"))  # reached the upstream
            # As from a terminal (Ctrl-C) or a process manager: to the whole process group.
            os.killpg(gate.process.pid, sig)
            assert gate.process.wait(30) == 0
            request.join(30)
        log = gate.log()
    assert [a.status_code for a in answers] == [200], log
    assert answers[0].json()["name"] == "fg-slow"
    assert "Floodgate stopped" in log
    assert "Traceback" not in log
    assert "leaked semaphore" not in log
    assert " ERROR " not in log


def test_an_unusable_cache_folder_is_a_clean_error_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run(
        [
            sys.executable, "-m", "proxy", "serve", "--port", "0",
            "--upstream", "http://127.0.0.1:9", "--cache-dir", str(blocker / "cache"),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"floodgate: error: the cache folder {blocker / 'cache'} cannot be used: " in done.stderr
    assert "--cache-dir" in done.stderr
    assert "Traceback" not in done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_quick_start_works_on_the_second_start(tmp_path: Path) -> None:
    """Start once with the real registry, point npm at Floodgate, start again with no flags."""
    cache = tmp_path / "cache"
    port = free_port()
    args = ["--port", str(port), "--cache-dir", str(cache), "--render-workers", "0"]
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    env = {k: v for k, v in env.items() if not k.startswith("FLOODGATE_")}
    (tmp_path / "npmrc").write_text("")
    env["npm_config_userconfig"] = str(tmp_path / "npmrc")
    with running_registry() as (registry, _server):
        publish_basics(registry)
        with serve([*args, "--upstream", registry.url], tmp_path / "first.log", env):
            pass
        assert (cache / "upstream").read_text().strip() == registry.url
        # `npm config set registry http://127.0.0.1:PORT/`: npm now names Floodgate itself.
        env["npm_config_registry"] = f"http://127.0.0.1:{port}/"
        with serve(args, tmp_path / "second.log", env) as second:
            assert second.logged(f"upstream {registry.url}: remembered in {cache / 'upstream'}")
            assert httpx.get(second.url + "/fg-alpha", timeout=30).status_code == 200
