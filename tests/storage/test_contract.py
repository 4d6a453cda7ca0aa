"""The storage contract: one suite, run against the embedded stores (SQLite, a local folder) and
the shared ones (a real PostgreSQL, a real S3 server: SeaweedFS)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from proxy.cache.store import PackumentSaver, TarballCache
from proxy.decisions import DecisionLog, DecisionRecord, DecisionWriter, query
from proxy.detect.campaigns import CampaignIndex
from proxy.detect.clones import CloneIndex
from proxy.detect.evaluate import Detector
from proxy.detect.facts import facts_from_case
from proxy.detect.graph import PackageGraph
from proxy.detect.model import Label
from proxy.detect.store import VerdictStore
from proxy.detect.wallets import WalletIndex
from proxy.errors import UpstreamBadResponse
from proxy.identity import Identity
from proxy.npm.integrity import Digest
from proxy.settings import load_settings
from proxy.storage.backends import open_blob_stores, open_database, token_store
from proxy.storage.cluster import NoLeases
from proxy.storage.sql import SqlDatabase
from proxy.tokens import (
    TOKEN_PREFIX,
    TokenError,
    TokenIndex,
    TokenStorage,
    digest_of as token_digest,
)
from tests.detect.helpers import case

CLOCK = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass
class Backend:
    kind: str
    db: SqlDatabase
    verdicts: VerdictStore
    decisions: DecisionWriter
    tarballs: TarballCache
    saved: PackumentSaver
    tmp: Path
    settings: Any

    def query(self, **kw: Any) -> list[DecisionRecord]:
        if self.kind == "embedded":
            return list(query(self.tmp / "decisions.sqlite3", **kw))
        from proxy.storage.decisions import SharedDecisionLog

        assert isinstance(self.decisions, SharedDecisionLog)
        return list(self.decisions.query(**kw))

    def replica(self) -> tuple[TarballCache, PackumentSaver]:
        """The blob stores of another replica: its own local folder, the same shared store."""
        other = replace(self.settings, cache_dir=self.tmp / f"replica-{time.monotonic_ns()}")
        return open_blob_stores(other, NoLeases())


@pytest.fixture(params=["embedded", "shared"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    from proxy.detect import campaigns, clones, graph, wallets
    from proxy.detect.db import Database

    values: dict[str, Any] = {"cache_dir": str(tmp_path / "cache"), "tarball_memory_mb": 0}
    if request.param == "shared":
        values["database_url"] = request.getfixturevalue("pg_url")
        values["blob_store"] = request.getfixturevalue("s3_url")
    settings = load_settings(values, env={})
    pg = open_database(settings)
    db: SqlDatabase
    decisions: DecisionWriter
    if pg is None:
        db = Database(None, clones.SCHEMA + wallets.SCHEMA + graph.SCHEMA + campaigns.SCHEMA)
        verdicts = VerdictStore(tmp_path / "verdicts.sqlite3")
        decisions = DecisionLog(tmp_path / "decisions.sqlite3")
    else:
        from proxy.storage.decisions import SharedDecisionLog

        db = pg
        verdicts = VerdictStore(db=pg)
        decisions = SharedDecisionLog(pg)
    tarballs, saved = open_blob_stores(settings, NoLeases())
    tarballs.index.scan()
    saved.index.scan()
    yield Backend(request.param, db, verdicts, decisions, tarballs, saved, tmp_path, settings)
    decisions.close()
    verdicts.close()
    db.close()


# -- verdicts --------------------------------------------------------------------------------


def test_verdicts_round_trip_and_tarball_verdicts_win(backend: Backend) -> None:
    package, _version, tarball = facts_from_case(case("uniset"))
    detector = Detector(clock=lambda: CLOCK)
    verdict = detector.assess(package, "1.0.0", tarball)
    store = backend.verdicts
    store.put(verdict, "sha512-abc")
    assert store.get(verdict.name, "1.0.0", "sha512-abc") == verdict
    assert store.get(verdict.name, "1.0.0", "sha512-other") is None
    assert store.get(verdict.name, "1.0.0", "sha512-abc", detector_version="0") is None
    meta = detector.assess(package, "1.0.0")
    store.put(meta, "sha512-abc")  # never replaces the one made with the tarball
    assert store.get(verdict.name, "1.0.0", "sha512-abc") == verdict
    store.put(meta, "sha512-meta")
    assert store.get(verdict.name, "1.0.0", "sha512-meta") == meta
    assert store.get(verdict.name, "1.0.0", "sha512-meta", need_tarball=True) is None
    assert store.for_package(verdict.name) == {("1.0.0", "sha512-abc"): verdict}
    # a verdict on a newer scan replaces the older
    rescanned = replace(verdict, score=verdict.score + 1)
    store.put(rescanned, "sha512-abc")
    assert store.get(verdict.name, "1.0.0", "sha512-abc") == rescanned


def test_verdicts_from_threads(backend: Backend) -> None:
    from proxy.detect.facts import PackageFacts

    d = Detector(clock=lambda: CLOCK)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            v = d.assess(PackageFacts.name_only(f"p{i}", "1.0.0"), "1.0.0")
            backend.verdicts.put(v, f"sha512-{i}")
            assert backend.verdicts.get(f"p{i}", "1.0.0", f"sha512-{i}") == v
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- the detector's indexes ------------------------------------------------------------------


def test_clone_index(backend: Backend) -> None:
    clones = CloneIndex(db=backend.db)
    clones.record("farm-a", ["h1", "h2", "h3"])
    clones.record("farm-b", ["h1", "h2"])
    clones.record("farm-b", ["h1"])  # recorded twice: no error, no duplicate
    clones.record("other", ["h3"])
    assert clones.hashes_of("farm-b") == {"h1", "h2"}
    match = clones.match("farm-a", ["h1", "h2", "h3"])
    assert match.names == ("farm-b", "other")  # most shared first, then by name
    assert (match.shared, match.total) == (3, 3)
    excluding = clones.match("farm-a", ["h1", "h2", "h3"], exclude=lambda n: n == "other")
    assert excluding.names == ("farm-b",)
    assert excluding.shared == 2


def test_wallet_index(backend: Backend) -> None:
    wallets = WalletIndex(db=backend.db)
    wallets.record("b-pkg", ["0xabc"])
    wallets.record("a-pkg", ["0xabc", "0xdef"])
    wallets.record("a-pkg", ["0xabc"])
    assert wallets.names("0xabc", exclude="c-pkg") == ("a-pkg", "b-pkg")
    assert wallets.names("0xabc", exclude="a-pkg") == ("b-pkg",)
    assert wallets.wallets_of("a-pkg") == ("0xabc", "0xdef")


def test_dependency_graph(backend: Backend) -> None:
    graph = PackageGraph(db=backend.db)
    graph.record("ring-a", ["ring-b"], Label.SPAM)
    graph.record("ring-b", ["ring-a"], Label.CLEAN)
    graph.record("ring-b", ["ring-a"], Label.SPAM)  # the label is updated
    assert graph.flagged(["ring-a", "ring-b", "react"]) == {"ring-a": "spam", "ring-b": "spam"}
    assert graph.cycles("ring-a", ["ring-b"]) == (("ring-a", "ring-b", "ring-a"),)


def test_campaign_index(backend: Backend) -> None:
    campaigns = CampaignIndex(db=backend.db)
    assert not campaigns.record("farm_one_x1", "", ["empty"], ["wallet:0x1"])
    assert campaigns.record("farm_two_x2", "host/org/two", ["empty"], ["wallet:0x1"])
    assert campaigns.record("farm_two_x2", "host/org/two", ["empty", "filler"], ["wallet:0x1"])
    assert campaigns.is_member("farm_one_x1")
    assert campaigns.keys_of("farm_two_x2") == {"wallet:0x1"}
    assert campaigns.repos(["farm_two_x2", "nope"]) == {"farm_two_x2": "host/org/two"}
    cluster = campaigns.cluster("farm_one_x1")
    assert cluster.members == ("farm_one_x1", "farm_two_x2")
    assert [c.members for c in campaigns.clusters()] == [("farm_one_x1", "farm_two_x2")]


# -- the decision log ------------------------------------------------------------------------


def record(package: str, action: str, at: float, group: str = "") -> DecisionRecord:
    return DecisionRecord(
        time=at,
        package=package,
        version="1.0.0",
        action=action,
        intended=action,
        rule="spam",
        label="spam",
        score=90,
        reasons=("a reason", "evidence: 'quoted'"),
        waiver="",
        via="tarball",
        client="127.0.0.1",
        user_agent="npm/10",
        token="",
        request_id="r1",
        policy="default",
        policy_digest="d1",
        group=group,
    )


def test_decision_log_refusals_are_written_at_once(backend: Backend) -> None:
    block = record("farm-a", "block", 1000.0, group="ci")
    backend.decisions.record(block, record("react", "allow", 1001.0))
    assert backend.query(actions=["block"]) == [block]  # before close: durable


def test_decision_log_query_filters(backend: Backend) -> None:
    rows = [
        record("farm-a", "block", 1000.0),
        record("farm-b", "hide", 1001.0),
        record("react", "allow", 1002.0, group="dev"),
        record("@scope/x", "warn", 1003.0),
    ]
    backend.decisions.record(*rows)
    backend.decisions.close()
    assert [r.package for r in backend.query()] == ["@scope/x", "react", "farm-b", "farm-a"]
    assert [r.package for r in backend.query(package="farm-*")] == ["farm-b", "farm-a"]
    assert [r.package for r in backend.query(package="farm-?")] == ["farm-b", "farm-a"]
    assert [r.package for r in backend.query(package="[f]arm-a")] == ["farm-a"]
    assert [r.package for r in backend.query(package="@scope/*")] == ["@scope/x"]
    assert [r.package for r in backend.query(package="Farm-*")] == []  # case-sensitive
    assert [r.package for r in backend.query(actions=["block", "warn"])] == ["@scope/x", "farm-a"]
    assert [r.package for r in backend.query(since=1002.0)] == ["@scope/x", "react"]
    assert [r.package for r in backend.query(limit=1)] == ["@scope/x"]
    assert backend.query(package="react")[0] == rows[2]  # every field, the group included


# -- tarballs and saved packuments -----------------------------------------------------------


def digest_of(data: bytes) -> Digest:
    return Digest("sha512", hashlib.sha512(data).digest())


def downloader(data: bytes, calls: list[int]) -> Any:
    async def download(sink: Any) -> int:
        calls.append(1)
        for i in range(0, len(data), 1000):
            sink(data[i : i + 1000])
        return len(data)

    return download


def test_tarballs_fill_verify_and_get(backend: Backend) -> None:
    data = bytes(range(256)) * 40
    digest = digest_of(data)
    key = digest.key
    calls: list[int] = []
    assert backend.tarballs.get(key) is None
    got = anyio.run(backend.tarballs.fill, key, digest, downloader(data, calls), "t")
    assert got.size == len(data)
    cached = backend.tarballs.get(key)
    assert cached is not None
    assert cached.size == len(data)
    assert (cached.data or (cached.path.read_bytes() if cached.path else b"")) == data
    assert calls == [1]


def test_tarballs_with_a_wrong_integrity_are_not_kept(backend: Backend) -> None:
    data = b"not what the packument promised"
    digest = digest_of(b"something else")
    key = digest.key
    calls: list[int] = []
    with pytest.raises(UpstreamBadResponse, match="integrity"):
        anyio.run(backend.tarballs.fill, key, digest, downloader(data, calls), "t")
    assert backend.tarballs.get(key) is None
    other, _ = backend.replica()  # nothing reached the shared store either
    good = anyio.run(other.fill, key, digest, downloader(b"something else", calls), "t")
    assert good.size == len(b"something else")
    assert calls == [1, 1]


def test_saved_packuments(backend: Backend) -> None:
    saved = backend.saved
    assert saved.load("left-pad") is None
    saved.save("left-pad", b'{"name":"left-pad"}', '"etag-1"')
    saved.save("@scope/x", b'{"name":"@scope/x"}', None)
    assert saved.load("left-pad") == (b'{"name":"left-pad"}', '"etag-1"')
    assert saved.load("@scope/x") == (b'{"name":"@scope/x"}', None)
    saved.save("left-pad", b'{"name":"left-pad","v":2}', '"etag-2"')
    assert saved.load("left-pad") == (b'{"name":"left-pad","v":2}', '"etag-2"')


# -- client tokens ---------------------------------------------------------------------------


def tokens_of(backend: Backend) -> AbstractContextManager[TokenStorage]:
    """A token store with a database handle of its own: for the shared backend, what another
    replica (or the CLI on another machine) opens with the same settings."""
    return token_store(backend.settings)


class TickingClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_tokens_create_find_list_revoke(backend: Backend) -> None:
    with tokens_of(backend) as store:
        assert (store.count(), store.list()) == (0, [])
        token = store.create("ci", "runner-7")
        store.create("dev", "alice")
        store.create("ci", "builder")
        assert token.startswith(TOKEN_PREFIX)
        info = store.find(token_digest(token))
        assert info is not None
        assert (info.name, info.group, info.last_used) == ("runner-7", "ci", None)
        assert store.find(token_digest(token + "x")) is None
        listed = [(t.group, t.name) for t in store.list()]
        assert listed == [("ci", "builder"), ("ci", "runner-7"), ("dev", "alice")]
        assert store.count() == 3
        with pytest.raises(TokenError, match="exists already"):
            store.create("dev", "runner-7")
        with pytest.raises(TokenError, match="not valid"):
            store.create("ci", "two words")
        revoked = store.revoke("runner-7")
        assert (revoked.name, revoked.group, revoked.created) == ("runner-7", "ci", info.created)
        assert store.find(token_digest(token)) is None
        with pytest.raises(TokenError, match="no token named"):
            store.revoke("runner-7")
        assert store.count() == 2


def test_token_last_use_is_recorded(backend: Backend) -> None:
    with tokens_of(backend) as store:
        token = store.create("ci", "runner-7")
        store.touch("runner-7", 1_700_000_100.0)
        store.touch("nobody", 1_700_000_100.0)  # nothing to record, and no error
        info = store.find(token_digest(token))
        assert info is not None
        assert info.last_used == 1_700_000_100.0


def test_a_token_made_through_one_handle_is_accepted_and_revoked_through_another(
    backend: Backend,
) -> None:
    clock = TickingClock(100.0)
    with tokens_of(backend) as one, tokens_of(backend) as two:
        index_one = TokenIndex(one, ttl=5.0, clock=clock, wall=lambda: 1_700_000_500.0)
        index_two = TokenIndex(two, ttl=5.0, clock=clock, wall=lambda: 1_700_000_500.0)
        assert not index_two.any()
        token = one.create("ci", "runner-7")
        assert not index_two.any()  # its answer is trusted for the ttl
        clock.now += 5.0
        assert index_two.any()
        assert index_two.identify(token) == Identity("ci", "runner-7")
        assert index_one.identify(token) == Identity("ci", "runner-7")
        assert [t.last_used for t in one.list()] == [1_700_000_500.0]  # the use, recorded
        two.revoke("runner-7")
        assert index_one.identify(token) == Identity("ci", "runner-7")  # until the ttl
        clock.now += 5.0
        assert index_one.identify(token) is None
        assert index_two.identify(token) is None
        assert not index_one.any()
