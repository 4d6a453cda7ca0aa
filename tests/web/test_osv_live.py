"""The OSV feed, live: a running Floodgate picks up a record published to a local feed server
(OSV's bucket layout on 127.0.0.1) within its refresh interval and refuses that version; a
withdrawn record lets it through again; the default source being unreachable is a warning and
Floodgate serves; a source the user typed that does not work stops every command (exit 2);
`floodgate doctor` reports the feed."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy import inspect as inspect_module
from proxy.cli import main
from tests.conftest import ProxyFactory, RunningProxy
from tests.fakes.osv_bucket import OsvBucket, mal_record
from tests.fakes.packages import clean, make_tarball
from tests.fakes.registry import FakeRegistry

TARBALL = "/fg-victim/-/fg-victim-1.0.0.tgz"


def serve_bucket(registry: FakeRegistry, bucket: OsvBucket) -> str:
    """Put the bucket's files on the fake registry's server; the feed's base URL."""
    registry.tarballs.update(bucket.files())
    return registry.url + bucket.prefix


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def refused(proxy: RunningProxy) -> bool:
    r = proxy.client.get(TARBALL)
    return r.status_code == 302 and "/-/blocked/" in r.headers["location"]


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/osv"


def test_a_record_published_while_running_is_enforced_then_withdrawn(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-victim", clean("1.0.0"))
    bucket = OsvBucket()
    bucket.publish(
        mal_record("MAL-2026-1", "fg-other", ["1.0.0"], "2026-11-30T10:00:00Z"), in_archive=True
    )
    base = serve_bucket(registry, bucket)
    proxy = make_proxy(osv_feed=base, osv_refresh_seconds=0.2, prefetch_scans=0)
    assert proxy.client.get(TARBALL).status_code == 200  # nothing lists it yet
    assert len(registry.requests_for("/osv/npm/all.zip")) == 1

    bucket.publish(mal_record("MAL-2026-2", "fg-victim", ["1.0.0"], "2026-11-30T10:05:00Z"))
    serve_bucket(registry, bucket)
    wait_for(lambda: refused(proxy), "the new record refuses fg-victim@1.0.0")
    blocked = proxy.client.get(proxy.client.get(TARBALL).headers["location"])
    assert blocked.status_code == 451
    assert "MAL-2026-2" in blocked.json()["error"]
    # Only the new record was fetched, never the archive again.
    assert len(registry.requests_for("/osv/npm/MAL-2026-2.json")) >= 1
    assert len(registry.requests_for("/osv/npm/all.zip")) == 1
    assert registry.requests_for("/osv/npm/MAL-2026-1.json") == []

    bucket.publish(
        mal_record(
            "MAL-2026-2", "fg-victim", ["1.0.0"], "2026-11-30T10:09:00Z",
            withdrawn="2026-11-30T10:09:00Z",
        )
    )  # fmt: skip
    serve_bucket(registry, bucket)
    wait_for(lambda: proxy.client.get(TARBALL).status_code == 200, "the withdrawn record lifts")


def test_the_default_feed_unreachable_is_a_warning_and_floodgate_serves(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry.add("fg-victim", clean("1.0.0"))
    unreachable = dead_url()
    monkeypatch.setattr(inspect_module, "DEFAULT_OSV_FEED", unreachable)
    with caplog.at_level(logging.WARNING, logger="proxy.detect.osv"):
        proxy = make_proxy(osv_feed=unreachable, prefetch_scans=0)
        assert proxy.client.get("/fg-victim").status_code == 200
        assert proxy.client.get(TARBALL).status_code == 200
        wait_for(lambda: "unavailable, no OSV records loaded" in caplog.text, "the warning")
    assert f"OSV feed {unreachable} unavailable" in caplog.text


def test_the_default_feed_unreachable_does_not_stop_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = dead_url()
    monkeypatch.setattr(inspect_module, "DEFAULT_OSV_FEED", unreachable)
    tgz = tmp_path / "pkg.tgz"
    tgz.write_bytes(make_tarball({"package.json": b'{"name":"fg-ok","version":"1.0.0"}'}))
    argv = ["scan", "--cache-dir", str(tmp_path / "c"), "--osv-feed", unreachable]
    assert main([*argv, "--tarball", str(tgz)]) != 2  # the scan ran (its verdict is its own)
    out, err = capsys.readouterr()
    assert "fg-ok@1.0.0" in out
    assert f"OSV feed {unreachable} unavailable, no OSV records loaded" in err


def bad_feed_commands(registry: FakeRegistry, tmp_path: Path, feed: str) -> list[list[str]]:
    tgz = tmp_path / "pkg.tgz"
    tgz.write_bytes(make_tarball({"package.json": b'{"name":"fg-ok","version":"1.0.0"}'}))
    common = ["--cache-dir", str(tmp_path / "c"), "--osv-feed", feed]
    lockfile = tmp_path / "package-lock.json"
    lockfile.write_text('{"lockfileVersion": 3, "packages": {"": {"name": "app"}}}')
    return [
        ["scan", *common, "--tarball", str(tgz)],
        ["policy", "explain", "fg-victim@1.0.0", "--upstream", registry.url, *common],
        ["audit", str(tmp_path), "--upstream", registry.url, *common],
        ["serve", "--upstream", registry.url, "--port", "0", *common],
    ]


@pytest.mark.parametrize("kind", ["missing path", "url answering 404", "url of a missing zip"])
def test_a_typed_feed_that_does_not_work_stops_every_command(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    registry.add("fg-victim", clean("1.0.0"))
    feed = {
        "missing path": str(tmp_path / "no-such-feed.zip"),
        "url answering 404": registry.url + "/no-bucket",
        "url of a missing zip": registry.url + "/no-bucket/all.zip",
    }[kind]
    for argv in bad_feed_commands(registry, tmp_path, feed):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"floodgate: error: the OSV feed {feed} cannot be loaded" in err, (argv, err)
        assert "set it to off" in err


def test_doctor_reports_a_healthy_setup_and_the_feed(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = OsvBucket()
    bucket.publish(
        mal_record("MAL-2026-1", "fg-other", ["1.0.0"], "2026-11-30T10:00:00Z"), in_archive=True
    )
    base = serve_bucket(registry, bucket)
    argv = ["doctor", "--upstream", registry.url, "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--osv-feed", base]) == 0
    out = capsys.readouterr().out
    assert f"ok       upstream  {registry.url} answers" in out
    assert f"ok       cache     {tmp_path / 'c'} writable" in out
    assert "ok       policy    default" in out
    assert f"ok       osv feed  OSV feed {base}: 1 records, updated 0 s ago" in out
    assert "newest record 2026-11-30T10:00:00Z" in out
    assert "ok       detector  index" in out
    assert out.rstrip().endswith("healthy")


def test_doctor_lists_problems(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nname: p\nrules:\n  - id: m\n    match: {labels: [malicious]}\n"
        "    action: block\nwaivers:\n  - package: left-pad\n    owner: me\n"
        "    reason: old\n    expires: 2020-01-01\n"
    )
    argv = [
        "doctor", "--upstream", dead_url(), "--cache-dir", str(tmp_path / "c"),
        "--osv-feed", registry.url + "/no-bucket", "--policy", str(policy),
    ]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "PROBLEM  upstream" in out
    assert "does not answer" in out
    assert "PROBLEM  policy    p (" in out
    assert "1 expired; waiver for left-pad (owner me) expired on 2020-01-01" in out
    assert "PROBLEM  osv feed" in out
    assert "0 records; not updated" in out
    assert out.rstrip().endswith("3 problem(s)")
    assert main(["doctor", "--upstream", registry.url, "--osv-feed", "off",
                 "--cache-dir", str(tmp_path / "c")]) == 0  # fmt: skip
    assert "ok       osv feed  off" in capsys.readouterr().out


@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("FLOODGATE_LIVE_OSV"),
    reason="talks to OSV's public bucket; set FLOODGATE_LIVE_OSV=1 where the internet is reachable",
)
def test_live_default_feed_loads_malicious_records(tmp_path: Path) -> None:
    from proxy.detect.osv import OsvFeed
    from proxy.settings import DEFAULT_OSV_FEED
    from proxy.upstream.feed import FeedClient

    feed = OsvFeed(DEFAULT_OSV_FEED, fetch=FeedClient(), cache_dir=tmp_path, user_given=False)
    assert feed.refresh(), feed.error
    assert feed.index.record_count > 1000
    assert feed.index.newest is not None


def test_feed_client_reads_only_the_head_where_the_server_honours_ranges() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from proxy.upstream.feed import FeedClient
    from tests.fakes.registry import UvicornThread

    body = b"".join(b"2026-11-30T10:00:00Z,MAL-%d\n" % i for i in range(1000))
    seen: list[dict[str, str]] = []

    async def csv(request: Request) -> Response:
        seen.append(dict(request.headers))
        asked = request.headers.get("range", "")
        if asked.startswith("bytes=0-"):
            end = int(asked.removeprefix("bytes=0-")) + 1
            return Response(body[:end], 206, headers={"content-range": f"bytes 0-{end - 1}/*"})
        return Response(body)

    server = UvicornThread(Starlette(routes=[Route("/npm/modified_id.csv", csv)]))
    server.start()
    try:
        client = FeedClient()
        url = server.url + "/npm/modified_id.csv"
        assert client.head(url, 100) == body[:100]
        assert seen[-1]["range"] == "bytes=0-99"
        assert seen[-1]["accept-encoding"] == "identity"
        assert client(url) == body
        assert "range" not in seen[-1]
    finally:
        server.stop()
