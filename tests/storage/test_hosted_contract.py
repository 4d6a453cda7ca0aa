"""The hosted packages' store contract: one suite, run against the embedded store (SQLite), the
shared database alone (a real PostgreSQL: tarballs in its table) and the shared database with
the object store (a real S3 server, SeaweedFS: tarballs under `hosted/`)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from proxy.errors import Conflict, HostedUnavailable
from proxy.gate import Caller
from proxy.hosted.access import HostedAccess
from proxy.hosted.document import Change
from proxy.hosted.registry import Compute, HostedRegistry, Outcome
from proxy.hosted.store import HostedStore, RegistryEvent, StoredDoc, doc_json
from proxy.internal import InternalNames
from proxy.npm.names import PackageName
from proxy.settings import Settings, load_settings
from proxy.storage.backends import open_database, open_hosted_store
from proxy.storage.cluster import NoLeases
from proxy.storage.sql import PgDatabase
from tests.servers import free_port


@dataclass
class Hosted:
    kind: str
    store: HostedStore
    settings: Settings

    def bucket_keys(self) -> list[str]:
        from proxy.storage.blobs import HostedBlobs

        assert isinstance(self.store.blobs, HostedBlobs)
        return self.store.blobs.bucket.keys("hosted")

    def blob_key(self, key: str) -> str:
        """Where a hosted tarball must be: under `hosted/`, apart from the tarball cache."""
        from proxy.storage.blobs import BlobLocation

        assert self.settings.blob_store is not None
        return BlobLocation.parse(self.settings.blob_store).key("hosted", "sha512", key[:2], key)

    def other_replica(self) -> HostedStore:
        """Another process's store on the same storage (its own connections)."""
        if self.kind == "embedded":
            return HostedStore.in_cache(self.settings.cache_dir)
        db = open_database(self.settings)
        assert db is not None
        return open_hosted_store(self.settings, db)


@pytest.fixture(params=["embedded", "database", "database+objects"])
def hosted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hosted]:
    values: dict[str, Any] = {"cache_dir": str(tmp_path / "cache")}
    if request.param != "embedded":
        values["database_url"] = request.getfixturevalue("pg_url")
    if request.param == "database+objects":
        values["blob_store"] = request.getfixturevalue("s3_url")
    settings = load_settings(values, env={})
    db = open_database(settings)
    store = open_hosted_store(settings, db)
    yield Hosted(request.param, store, settings)
    store.close()


def tarball(text: str) -> tuple[str, bytes]:
    data = f"tarball of {text}".encode()
    return hashlib.sha512(data).hexdigest(), data


def event(package: str, kind: str, at: float, version: str = "1.0.0") -> RegistryEvent:
    return RegistryEvent(at, kind, package, version, f"{kind} {version}", "ci", "runner", "::1")


def test_documents_are_saved_with_compare_and_swap(hosted: Hosted) -> None:
    store = hosted.store
    assert store.load("@acme/a") is None
    body = b'{"name": "@acme/a", "bytes": "\\u00e9 \\u0000 \xc3\xa9"}'
    store.save("@acme/a", body, "1-aaa", None)
    got = store.load("@acme/a")
    assert got is not None
    assert (got.body, got.rev) == (body, "1-aaa")
    with pytest.raises(Conflict):
        store.save("@acme/a", b"{}", "1-bbb", None)  # it exists already
    with pytest.raises(Conflict):
        store.save("@acme/a", b"{}", "2-bbb", "1-zzz")  # not the stored revision
    store.save("@acme/a", b'{"v": 2}', "2-bbb", "1-aaa")
    assert store.load("@acme/a") == StoredDoc(b'{"v": 2}', "2-bbb")
    store.save("@acme/b", b"{}", "1-ccc", None)
    assert store.names() == ["@acme/a", "@acme/b"]
    assert [name for name, _ in store.documents()] == ["@acme/a", "@acme/b"]
    with pytest.raises(Conflict):
        store.remove("@acme/b", "1-zzz")
    store.remove("@acme/b", "1-ccc")
    assert store.load("@acme/b") is None
    # another replica reads what this one wrote
    other = hosted.other_replica()
    try:
        assert other.load("@acme/a") == StoredDoc(b'{"v": 2}', "2-bbb")
    finally:
        other.close()


def test_two_writers_racing_on_one_revision_one_wins(hosted: Hosted) -> None:
    hosted.store.save("@acme/race", b"{}", "1-a", None)
    other = hosted.other_replica()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def write(store: HostedStore, who: str) -> None:
        barrier.wait(10)
        try:
            store.save("@acme/race", who.encode(), f"2-{who}", "1-a")
            outcomes[who] = "saved"
        except Conflict:
            outcomes[who] = "conflict"

    threads = [
        threading.Thread(target=write, args=(hosted.store, "one")),
        threading.Thread(target=write, args=(other, "two")),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        other.close()
    assert sorted(outcomes.values()) == ["conflict", "saved"]
    winner = next(who for who, what in outcomes.items() if what == "saved")
    assert hosted.store.load("@acme/race") == StoredDoc(winner.encode(), f"2-{winner}")


def test_tarballs_by_digest_and_owner(hosted: Hosted) -> None:
    store = hosted.store
    key, data = tarball("a@1.0.0")
    other_key, other_data = tarball("a@1.1.0")
    assert store.get_tarball(key) is None
    assert store.put_tarball(key, "@acme/a", data) is True
    assert store.put_tarball(key, "@acme/a", data) is False  # idempotent, and not new
    assert store.put_tarball(other_key, "@acme/a", other_data) is True
    assert store.get_tarball(key) == data
    assert sorted(store.tarball_keys("@acme/a")) == sorted([key, other_key])
    assert store.tarball_keys("@acme/b") == []
    assert store.tarballs() == sorted([(key, "@acme/a"), (other_key, "@acme/a")])
    if hosted.kind == "database+objects":
        # the bytes are objects under hosted/ (not the tarball cache's keys); the rows own them
        assert sorted(hosted.bucket_keys()) == sorted(
            [hosted.blob_key(key), hosted.blob_key(other_key)]
        )
        assert store.db.query("SELECT count(*) FROM hosted_tarballs WHERE data = ?", [b""]) == [
            (2,)
        ]
    elif hosted.kind == "database":
        rows = store.db.query("SELECT data FROM hosted_tarballs WHERE digest = ?", [key])
        assert bytes(rows[0][0]) == data
    store.drop_tarball(key)
    assert store.get_tarball(key) is None
    assert store.tarball_keys("@acme/a") == [other_key]
    if hosted.kind == "database+objects":
        assert hosted.bucket_keys() == [hosted.blob_key(other_key)]
    store.drop_tarball(key)  # dropping one that is gone is no error


def test_events_newest_first_by_package_and_kind(hosted: Hosted) -> None:
    store = hosted.store
    store.record(event("@acme/a", "publish", 100.0))
    store.record(event("@acme/a", "dist-tag", 101.0))
    store.record(event("@acme/b", "publish", 102.0, "2.0.0"))
    store.record(event("@acme/a", "refused", 102.0, "1.0.1"))
    newest = store.events()
    assert [(e.package, e.event) for e in newest] == [
        ("@acme/a", "refused"),  # same time: the later one first
        ("@acme/b", "publish"),
        ("@acme/a", "dist-tag"),
        ("@acme/a", "publish"),
    ]
    assert newest[1] == event("@acme/b", "publish", 102.0, "2.0.0")
    assert [e.event for e in store.events(package="@acme/a", kinds=("publish", "refused"))] == [
        "refused",
        "publish",
    ]
    assert len(store.events(limit=2)) == 2


# -- when the shared storage cannot be reached -----------------------------------------------


def test_a_database_that_cannot_be_reached_is_an_error_not_a_missing_package(
    tmp_path: Path,
) -> None:
    """Serving degrades the database (a SELECT it cannot send answers no rows, so that the
    proxy goes on without its memory); the hosted store must not read that as 'not
    published': every read and write raises HostedUnavailable (503)."""
    url = f"postgresql://floodgate@127.0.0.1:{free_port()}/nothing"
    db = PgDatabase(url, degrade=True)
    db.migrated = True  # nothing to migrate: it is not there
    store = HostedStore(db, "the shared database")
    try:
        assert db.query("SELECT name FROM hosted_packages") == []  # what degrade does
        key, data = tarball("x")
        calls: list[Callable[[], object]] = [
            lambda: store.load("@acme/a"),
            lambda: store.names(),
            lambda: store.get_tarball(key),
            lambda: store.tarball_keys("@acme/a"),
            lambda: store.events(),
            lambda: store.save("@acme/a", b"{}", "1-a", None),
            lambda: store.put_tarball(key, "@acme/a", data),
            lambda: store.record(event("@acme/a", "publish", 1.0)),
        ]
        for call in calls:
            with pytest.raises(HostedUnavailable, match="the hosted packages"):
                call()
    finally:
        store.close()


def test_an_object_store_that_cannot_be_reached_is_an_error_not_a_missing_tarball() -> None:
    import boto3
    from botocore.config import Config

    from proxy.storage.blobs import BlobLocation, HostedBlobs, S3Bucket

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="none",
        aws_secret_access_key="none",
        region_name="us-east-1",
        config=Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1}),
    )
    blobs = HostedBlobs(S3Bucket(BlobLocation("hosted-test", "p"), client))
    key, data = tarball("x")
    with pytest.raises(HostedUnavailable, match="object store"):
        blobs.get(key)
    with pytest.raises(HostedUnavailable, match="object store"):
        blobs.put(key, data)
    with pytest.raises(ValueError, match="do not match"):
        blobs.put(key, b"other bytes")


# -- the registry's writes over the store ----------------------------------------------------


def registry_on(store: HostedStore) -> HostedRegistry:
    access = HostedAccess.of(
        (), (), anonymous_read=False, admin_groups=("admin",), unpublish_hours=72
    )
    internal = InternalNames.of(("@acme",), ())
    return HostedRegistry(store, access, internal, max_publish_bytes=1 << 20, leases=NoLeases())


def add_version(
    version: str, before: anyio.Event | None = None, after: anyio.Event | None = None
) -> Compute:
    """A change adding `version` to the document (a publish's shape, without a tarball); it
    may wait for `after` between reading the document and returning (another write lands)."""

    async def compute(stored: dict[str, Any] | None, now: str) -> Outcome:
        if before is not None:
            before.set()
        if after is not None:
            await after.wait()
        doc = dict(stored or {"name": "@acme/r", "versions": {}})
        doc["versions"] = {**doc["versions"], version: {"name": "@acme/r", "version": version}}
        return Outcome(doc, [Change("publish", version, f"published {version}")])

    return compute


def versions_of(doc: StoredDoc) -> list[str]:
    versions = doc_json(doc)["versions"]
    assert isinstance(versions, dict)
    return sorted(versions)


def test_a_change_made_on_a_document_another_replica_changed_meanwhile_is_made_again(
    hosted: Hosted,
) -> None:
    """Without the lease (it timed out, or the database could not give one), two replicas
    write one document at once: the compare-and-swap refuses the second, which computes its
    change again on the fresh document, so both versions land and neither client fails. A
    client that named the revision it read gets the Conflict (409) instead."""
    package = PackageName.parse("@acme/r")
    caller = Caller(group="admin", token="release-bot")
    other = hosted.other_replica()
    one, two = registry_on(hosted.store), registry_on(other)

    async def main() -> list[list[Change]]:
        read, landed = anyio.Event(), anyio.Event()
        results: list[list[Change]] = []

        async def first() -> None:
            results.append(await one.change(package, caller, add_version("1.0.0", read, landed)))

        async def second() -> None:
            await read.wait()  # the first has read the document, and waits
            results.append(await two.change(package, caller, add_version("2.0.0")))
            landed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
        return results

    try:
        results = anyio.run(main)
        assert [c.version for changes in results for c in changes] == ["2.0.0", "1.0.0"]
        stored = hosted.store.load("@acme/r")
        assert stored is not None
        assert versions_of(stored) == ["1.0.0", "2.0.0"]
        published = hosted.store.events(package="@acme/r", kinds=("publish",))
        assert sorted(e.version for e in published) == ["1.0.0", "2.0.0"]  # each once

        async def pinned() -> None:
            read, landed = anyio.Event(), anyio.Event()

            async def stale() -> None:
                await one.change(package, caller, add_version("3.0.0", read, landed), stored.rev)

            async def meanwhile() -> None:
                await read.wait()
                await two.change(package, caller, add_version("4.0.0"))
                landed.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(stale)
                tg.start_soon(meanwhile)

        with pytest.raises(ExceptionGroup) as raised:
            anyio.run(pinned)
        assert raised.group_contains(Conflict)
        after = hosted.store.load("@acme/r")
        assert after is not None
        assert versions_of(after) == ["1.0.0", "2.0.0", "4.0.0"]
    finally:
        other.close()
