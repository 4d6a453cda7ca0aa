"""The cold path and the pipeline's shape, as issue "Inspection at install speed" asks: a cold
packument never waits for tarballs, nothing is prefetched that a client would skip, a refreshed
packument assesses only new versions, upstream 404s are remembered, enforcement on and off
answer errors alike, and the OSV feed is downloaded once however many commands run."""

from __future__ import annotations

import contextlib
import io
import json
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from proxy.app import build_service
from proxy.cache.memory import PackumentEntry
from proxy.cli import main
from proxy.decisions import DecisionLog
from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts, inspect
from proxy.detect.model import Label, Verdict
from proxy.detect.osv import OsvFeed
from proxy.detect.store import VerdictStore
from proxy.gate import OpenGate, PolicyGate
from proxy.inspect import Inspector
from proxy.npm.names import PackageName
from proxy.npm.packument import summarize
from proxy.policy.holder import PolicyHolder, shipped_policy
from proxy.service import prefetch_candidates
from proxy.settings import Settings
from proxy.workers import Activity
from tests.conftest import ProxyFactory
from tests.fakes.clock import ManualClock
from tests.fakes.packages import FakeVersion, clean, make_tarball
from tests.fakes.registry import FakeRegistry

# -- a cold packument never waits for tarballs --------------------------------------------------


def wait_until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_cold_packument_is_answered_while_its_tarballs_are_held(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-slow", clean("1.0.0"), clean("2.0.0"))
    for version in ("1.0.0", "2.0.0"):
        registry.faults[registry.tarball_path("fg-slow", version)] = "hold"
    proxy = make_proxy(prefetch_scans=2)  # both tarballs are wanted in the background
    try:
        r = proxy.client.get("/fg-slow", timeout=5)  # far less than the 30 s hold
        assert r.status_code == 200
        assert set(r.json()["versions"]) == {"1.0.0", "2.0.0"}
        assert not registry.release.is_set()  # answered while the tarballs were still held
        # The background prescan did ask for them (and is held there, not the client).
        assert wait_until(lambda: registry.requests_for(registry.tarball_path("fg-slow", "2.0.0")))
    finally:
        registry.release.set()


# -- nothing is prefetched that a client would skip ----------------------------------------------


def summary_of(versions: dict[str, dict[str, Any]], latest: str) -> Any:
    doc = {
        "name": "fg-x",
        "dist-tags": {"latest": latest},
        "versions": {
            v: {"name": "fg-x", "version": v, "dist": {"tarball": f"http://h.invalid/fg-x-{v}.tgz"}}
            | extra
            for v, extra in versions.items()
        },
    }
    return summarize(doc, PackageName.parse("fg-x"))


MB = 1024 * 1024


@pytest.mark.parametrize(
    ("versions", "latest", "limit", "expected"),
    [
        # latest first, then the newest release of each newest major
        ({"1.0.0": {}, "1.2.0": {}, "2.0.0": {}, "3.0.0-rc.1": {}}, "2.0.0", 2, ["2.0.0", "1.2.0"]),
        # a platform build is never prefetched (os, cpu or libc)
        ({"1.0.0": {"os": ["darwin"], "cpu": ["arm64"]}}, "1.0.0", 2, []),
        ({"1.0.0": {"libc": ["musl"]}, "0.9.0": {}}, "1.0.0", 2, ["0.9.0"]),
        # 0.0.x placeholders are never prefetched, latest or not
        ({"0.0.1": {}}, "0.0.1", 2, []),
        ({"0.0.1": {}, "1.0.0": {}}, "1.0.0", 3, ["1.0.0"]),
        # a large version other than latest is left for a client to ask for
        (
            {
                "5.0.0": {"dist": {"unpackedSize": 40 * MB}},
                "4.9.0": {"dist": {"unpackedSize": 40 * MB}},
            },
            "5.0.0",
            2,
            ["5.0.0"],
        ),
        ({"1.0.0": {}, "2.0.0": {}}, "2.0.0", 0, []),
    ],
)
def test_prefetch_candidates(
    versions: dict[str, dict[str, Any]], latest: str, limit: int, expected: list[str]
) -> None:
    for v, extra in versions.items():
        if "dist" in extra:
            extra["dist"] = extra["dist"] | {"tarball": f"http://h.invalid/fg-x-{v}.tgz"}
    got = [r.version for r in prefetch_candidates(summary_of(versions, latest), limit)]
    assert got == expected


def test_platform_builds_and_placeholders_are_fetched_only_when_asked(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add(
        "@fg/native-darwin-arm64",
        FakeVersion("7.0.2", extra={"os": ["darwin"], "cpu": ["arm64"]}),
    )
    registry.add("fg-placeholder", FakeVersion("0.0.1"))
    registry.add("fg-multi", clean("0.0.1"), clean("1.0.0"), clean("2.0.0"))
    proxy = make_proxy(prefetch_scans=3)
    for name in ("@fg/native-darwin-arm64", "fg-placeholder", "fg-multi"):
        assert proxy.client.get(f"/{name.replace('/', '%2f')}").status_code == 200
    # The last packument's prefetches ran (queued after the first two, had there been any).
    assert wait_until(
        lambda: all(
            registry.requests_for(registry.tarball_path("fg-multi", v)) for v in ("1.0.0", "2.0.0")
        )
    )
    native = registry.tarball_path("@fg/native-darwin-arm64", "7.0.2")
    untouched = [native, registry.tarball_path("fg-placeholder", "0.0.1")]
    untouched.append(registry.tarball_path("fg-multi", "0.0.1"))
    assert [p for p in untouched if registry.requests_for(p)] == []
    # A client on that platform asks: then it is fetched (and scanned) once.
    assert (
        proxy.client.get("/@fg/native-darwin-arm64/-/native-darwin-arm64-7.0.2.tgz").status_code
        == 200
    )
    assert len(registry.requests_for(native)) == 1


# -- a refreshed packument assesses only its new versions ----------------------------------------


class CountingDetector(Detector):
    """Lists the versions it is asked to assess, one at a time or together."""

    def __init__(self, osv: OsvFeed | None = None) -> None:
        super().__init__(osv)
        self.assessed: list[str] = []
        self._together = False

    def assess(self, *args: Any, **kwargs: Any) -> Verdict:
        verdict = super().assess(*args, **kwargs)
        if not self._together:
            self.assessed.append(verdict.version)
        return verdict

    def assess_metadata(self, package: PackageFacts, versions: Iterable[str]) -> dict[str, Verdict]:
        asked = list(versions)
        self.assessed.extend(asked)
        self._together = True
        try:
            return super().assess_metadata(package, asked)
        finally:
            self._together = False


def entry_for(versions: list[str]) -> PackumentEntry:
    package = PackageName.parse("fg-grow")
    doc = {
        "name": "fg-grow",
        "dist-tags": {"latest": versions[-1]},
        "versions": {
            v: {
                "name": "fg-grow",
                "version": v,
                "dist": {
                    "tarball": f"http://h.invalid/fg-grow-{v}.tgz",
                    "integrity": f"sha512-{v}",
                },
            }
            for v in versions
        },
        "time": {"created": "2024-01-01T00:00:00.000Z"}
        | {v: "2024-01-02T00:00:00.000Z" for v in versions},
    }
    raw = orjson.dumps(doc)
    summary, facts = inspect(raw, package)
    return PackumentEntry.of(raw, summary, None, 0.0, facts=facts)


@contextlib.contextmanager
def counting_gate(
    tmp_path: Path, feed: OsvFeed | None = None
) -> Iterator[tuple[PolicyGate, CountingDetector]]:
    """A gate with the default policy and its counting detector, closed when the block ends."""
    detector = CountingDetector(feed)
    gate = PolicyGate(
        PolicyHolder(shipped_policy("default")),
        Inspector(detector, VerdictStore(), feed),
        DecisionLog(tmp_path / "decisions.sqlite3"),
        clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
    )
    try:
        yield gate, detector
    finally:
        gate.close()


@pytest.mark.anyio
async def test_a_refreshed_packument_assesses_only_its_new_version(tmp_path: Path) -> None:
    with counting_gate(tmp_path) as (gate, detector):
        package = PackageName.parse("fg-grow")
        await gate.plan(package, entry_for(["1.0.0", "1.1.0", "1.2.0"]))
        assert sorted(detector.assessed) == ["1.0.0", "1.1.0", "1.2.0"]
        detector.assessed.clear()
        # The same document again (a 304 revalidation keeps the bytes): nothing recomputed.
        same = entry_for(["1.0.0", "1.1.0", "1.2.0"])
        await gate.plan(package, same)
        await gate.plan(package, same)
        assert detector.assessed == []
        # One new version upstream: exactly one version assessed.
        await gate.plan(package, entry_for(["1.0.0", "1.1.0", "1.2.0", "1.3.0"]))
        assert detector.assessed == ["1.3.0"]


@pytest.mark.anyio
async def test_a_plan_made_already_is_had_without_work(tmp_path: Path) -> None:
    """`planned`: what the service checks before it takes a CPU turn to plan."""
    with counting_gate(tmp_path) as (gate, _):
        package = PackageName.parse("fg-grow")
        entry = entry_for(["1.0.0", "1.1.0"])
        assert gate.planned(package, entry) is None
        plan = await gate.plan(package, entry)
        assert gate.planned(package, entry) is plan
        assert gate.planned(package, entry_for(["1.0.0", "1.1.0", "1.2.0"])) is None  # changed
        assert gate.planned(PackageName.parse("fg-other"), entry) is None


@pytest.mark.anyio
async def test_plans_asked_for_at_once_are_made_once(tmp_path: Path) -> None:
    """A client and the look-ahead asking for a new document's plan together share one."""
    with counting_gate(tmp_path) as (gate, detector):
        package = PackageName.parse("fg-grow")
        entry = entry_for(["1.0.0", "1.1.0"])
        plans = []

        async def plan() -> None:
            plans.append(await gate.plan(package, entry))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(plan)
        assert len(plans) == 3
        assert plans[0] is plans[1] is plans[2]
        assert sorted(detector.assessed) == ["1.0.0", "1.1.0"]


def mal_record(name: str, version: str) -> dict[str, Any]:
    return {
        "id": f"MAL-2026-{abs(hash((name, version))) % 10**6}",
        "modified": "2026-11-30T00:00:00Z",
        "summary": f"Malicious code in {name}",
        "affected": [{"package": {"ecosystem": "npm", "name": name}, "versions": [version]}],
    }


@pytest.mark.anyio
async def test_a_feed_change_redoes_the_feed_lookup_not_the_assessments(tmp_path: Path) -> None:
    records = tmp_path / "feed"
    records.mkdir()
    (records / "other.json").write_text(json.dumps(mal_record("fg-other", "1.0.0")))
    feed = OsvFeed(records)
    assert feed.refresh()
    with counting_gate(tmp_path, feed) as (gate, detector):
        package = PackageName.parse("fg-grow")
        entry = entry_for(["1.0.0", "1.1.0", "1.2.0"])
        plan = await gate.plan(package, entry)
        assert plan.edits.restricted == frozenset()
        assert sorted(detector.assessed) == ["1.0.0", "1.1.0", "1.2.0"]
        detector.assessed.clear()
        salt = gate.salt
        # The feed now lists one version as malicious: the plan changes, no version is
        # assessed again (only the feed lookup is redone).
        (records / "grow.json").write_text(json.dumps(mal_record("fg-grow", "1.1.0")))
        assert feed.refresh()
        assert gate.salt != salt
        plan = await gate.plan(package, entry)
        assert plan.edits.restricted == frozenset({"1.1.0"})
        assert detector.assessed == []
        # A tarball request decides from the same kept verdicts: blocked before any download.
        ref = entry.summary.versions["1.1.0"]
        known = gate._known(entry, ref)
        assert known is not None
        assert known.osv_ids
        assert known.label is Label.MALICIOUS
        assert detector.assessed == []
        # Withdrawn again: back to the verdict as assessed, still without assessing.
        (records / "grow.json").unlink()
        assert feed.refresh()
        plan = await gate.plan(package, entry)
        assert plan.edits.restricted == frozenset()
        assert detector.assessed == []
        # One new version: that one is assessed, against the feed as it is now.
        (records / "grow.json").write_text(json.dumps(mal_record("fg-grow", "1.3.0")))
        assert feed.refresh()
        plan = await gate.plan(package, entry_for(["1.0.0", "1.1.0", "1.2.0", "1.3.0"]))
        assert detector.assessed == ["1.3.0"]
        assert plan.edits.restricted == frozenset({"1.3.0"})


# -- upstream 404s are remembered --------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "upstream_requests"), [(30.0, 1), (0.0, 2)])
def test_an_upstream_404_is_remembered_for_not_found_ttl(
    registry: FakeRegistry, make_proxy: ProxyFactory, ttl: float, upstream_requests: int
) -> None:
    proxy = make_proxy(not_found_ttl=ttl)
    for _ in range(2):
        r = proxy.client.get("/fg-nowhere")
        assert r.status_code == 404
        assert "fg-nowhere" in r.json()["error"]
    assert len(registry.requests_for("/fg-nowhere")) == upstream_requests
    # Another name is not affected, and a tarball of the missing package is a 404 as well.
    assert proxy.client.get("/fg-nowhere/-/fg-nowhere-1.0.0.tgz").status_code == 404
    assert len(registry.requests_for("/fg-nowhere")) == upstream_requests + (ttl == 0)


# -- enforcement on and off: one pipeline, the same errors ---------------------------------------


def test_enforcement_off_uses_the_open_gate(tmp_path: Path) -> None:
    base = Settings(upstream="http://127.0.0.1:9", cache_dir=tmp_path, render_workers=0)
    assert isinstance(build_service(replace(base, enforce=False)).gate, OpenGate)
    service = build_service(base)
    assert isinstance(service.gate, PolicyGate)
    service.gate.close()


def error_answers(proxy: Any) -> list[tuple[int, str]]:
    client: httpx.Client = proxy.client
    paths = [
        "/fg-nowhere",  # upstream 404
        "/fg-broken",  # upstream 500
        "/fg-ok/-/fg-ok-9.9.9.tgz",  # no such tarball
        "/fg-ok/9.9.9",  # no such version
        "/.bad",  # invalid name
        "/-/not-an-endpoint",
    ]
    out = []
    for path in paths:
        r = client.get(path)
        out.append((r.status_code, r.json()["error"].replace(proxy.settings.upstream, "UP")))
    r = client.put("/fg-ok", content=b"{}")
    out.append((r.status_code, r.json()["error"]))
    return out


def test_enforcement_on_and_off_answer_errors_alike(
    registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    registry.add("fg-ok", clean("1.0.0"))
    registry.faults["fg-broken"] = "500"
    on = error_answers(make_proxy())
    off = error_answers(make_proxy(enforce=False, cache_dir=str(tmp_path / "off")))
    assert on == off
    assert [status for status, _ in on] == [404, 502, 404, 404, 400, 404, 405]


# -- the OSV feed: one download for many commands -------------------------------------------------


def feed_zip() -> bytes:
    record = json.loads(Path("tests/fixtures/osv/LWA-2026-10072.json").read_text())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("osv/2026/LWA-2026-10072.json", json.dumps(record))
    return out.getvalue()


def test_scan_twice_with_a_feed_url_downloads_the_feed_once(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.tarballs["/feeds/npm/all.zip"] = feed_zip()
    feed = f"{registry.url}/feeds/npm/all.zip"
    tgz = tmp_path / "pkg.tgz"
    tgz.write_bytes(
        make_tarball({"package.json": b'{"name":"@or-sdk/sdk-api","version":"0.29.4"}'})
    )
    argv = [
        "scan",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--osv-feed",
        feed,
        "--tarball",
        str(tgz),
    ]
    for _ in range(2):
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 1  # the feed's record flags this exact version
        assert "MAL-2026-11724" in out
    assert len(registry.requests_for("/feeds/npm/all.zip")) == 1
    # The download sits in the detector's folder, where `serve` keeps it too.
    assert (tmp_path / "cache" / "detector" / "osv-feed.zip").is_file()


# -- background work waits for a pause in client requests ---------------------------------------


@pytest.mark.anyio
async def test_background_work_waits_for_a_pause_in_client_requests() -> None:
    clock = ManualClock()
    clients = Activity(0.5, clock, clock.sleep)
    await clients.pause_in_requests(60)  # nobody has asked for anything yet
    assert clock.slept == []
    with clients.busy():
        clock.advance(0.1)
    clock.advance(0.2)  # the last request ended 0.2 s ago: 0.3 s more
    await clients.pause_in_requests(60)
    assert clock.slept == [0.3]
    clock.slept.clear()
    with clients.busy():  # a request in flight holds it back, up to the limit
        await clients.pause_in_requests(2)
    assert clock.slept == [0.5, 0.5, 0.5, 0.5]
    assert clients.idle_for() == 0.0
    clock.slept.clear()
    await Activity(0, clock, clock.sleep).pause_in_requests(60)  # 0: at once
    assert clock.slept == []


def test_a_prefetch_waits_until_clients_pause(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-next", clean("1.0.0"), clean("2.0.0"))
    registry.add("fg-other", clean("1.0.0"))
    proxy = make_proxy(prefetch_scans=1, prefetch_pause=2.0)
    prefetched = registry.tarball_path("fg-next", "2.0.0")
    assert proxy.client.get("/fg-next").status_code == 200
    assert proxy.client.get("/fg-other").status_code == 200  # the upstream was asked since
    assert not registry.requests_for(prefetched)  # the client is still resolving
    assert wait_until(lambda: registry.requests_for(prefetched))  # then, after the pause
