"""What only the shared storage does: replicas see each other's tarballs, fetch a cold one once,
migrate once; and the pure SQL-dialect helpers it relies on."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from proxy.errors import SettingsError
from proxy.npm.integrity import Digest
from proxy.settings import Settings, load_settings
from proxy.storage.backends import open_blob_stores, open_leases
from proxy.storage.blobs import BlobLocation, SharedTarballStore
from proxy.storage.cluster import NoLeases, PgLeases, lock_key
from proxy.storage.sql import (
    PgDatabase,
    glob_to_regex,
    latest_version,
    migrate,
    to_postgres,
)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t WHERE b = ? AND c != ?", "SELECT a FROM t WHERE b = %s AND c != %s"),
        ("SELECT 1 WHERE x LIKE 'a%'", "SELECT 1 WHERE x LIKE 'a%%'"),
        (
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
            "t REAL, b BLOB, s TEXT NOT NULL, PRIMARY KEY (s)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, "
            't DOUBLE PRECISION, b BYTEA, s TEXT COLLATE "C" NOT NULL, PRIMARY KEY (s))',
        ),
        ("CREATE INDEX IF NOT EXISTS i ON t (s)", "CREATE INDEX IF NOT EXISTS i ON t (s)"),
    ],
)
def test_to_postgres(sql: str, expected: str) -> None:
    assert to_postgres(sql) == expected


@pytest.mark.parametrize(
    ("glob", "regex"),
    [
        ("farm-*", "^farm\\-.*$"),
        ("a?c", "^a.c$"),
        ("[ab]x", "^[ab]x$"),
        ("[^a]", "^[^a]$"),
        ("@scope/x.y", "^@scope/x\\.y$"),
        ("[", "^\\[$"),
    ],
)
def test_glob_to_regex(glob: str, regex: str) -> None:
    assert glob_to_regex(glob) == regex


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bucket/a/b/", "bucket", "a/b"), ("s3://bkt", "bkt", "")],
)
def test_blob_location(url: str, bucket: str, prefix: str) -> None:
    loc = BlobLocation.parse(url)
    assert (loc.bucket, loc.prefix) == (bucket, prefix)


@pytest.mark.parametrize("url", ["http://bucket/x", "s3://ab", "s3:///x"])
def test_blob_location_refuses(url: str) -> None:
    with pytest.raises(SettingsError, match="s3://"):
        BlobLocation.parse(url)


def test_lock_keys_are_signed_64_bit_and_distinct() -> None:
    keys = {lock_key(f"tarball:{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_migrations_from_two_replicas_at_once(pg_url: str) -> None:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(pg_url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [(0, latest_version()), *[(latest_version(),) * 2] * 2]
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM floodgate_schema ORDER BY 1")]
    assert versions == list(range(1, latest_version() + 1))  # each applied once


def settings_for(tmp: Path, pg_url: str, s3_url: str, name: str) -> Settings:
    return load_settings(
        {"cache_dir": str(tmp / name), "database_url": pg_url, "blob_store": s3_url}, env={}
    )


def test_a_tarball_one_replica_fetched_is_read_from_the_bucket_by_another(
    tmp_path: Path, pg_url: str, s3_url: str
) -> None:
    data = b"tarball bytes " * 1000
    digest = Digest("sha512", hashlib.sha512(data).digest())
    calls: list[str] = []

    def download(who: str) -> Any:
        async def fetch(sink: Any) -> int:
            calls.append(who)
            sink(data)
            return len(data)

        return fetch

    migrate(pg_url)
    db = PgDatabase(pg_url)
    leases = open_leases(db)
    one, _ = open_blob_stores(settings_for(tmp_path, pg_url, s3_url, "one"), leases)
    two, _ = open_blob_stores(settings_for(tmp_path, pg_url, s3_url, "two"), leases)
    for store in (one, two):
        store.index.scan()
    anyio.run(one.fill, digest.key, digest, download("one"), "t")
    got = anyio.run(two.fill, digest.key, digest, download("two"), "t")
    assert calls == ["one"]
    assert got.size == len(data)
    assert two.get(digest.key) is not None  # now in replica two's own folder too
    assert isinstance(leases, PgLeases)
    leases.pool.close()
    db.close()


def test_a_cold_tarball_asked_of_three_replicas_at_once_is_fetched_once(
    tmp_path: Path, pg_url: str, s3_url: str
) -> None:
    data = b"cold " * 5000
    digest = Digest("sha512", hashlib.sha512(data).digest())
    calls: list[str] = []
    migrate(pg_url)
    db = PgDatabase(pg_url)
    stores: list[SharedTarballStore] = []
    pools = []
    for i in range(3):  # each replica its own lease pool, as separate processes would have
        leases = open_leases(db)
        assert isinstance(leases, PgLeases)
        pools.append(leases.pool)
        store, _ = open_blob_stores(settings_for(tmp_path, pg_url, s3_url, f"r{i}"), leases)
        assert isinstance(store, SharedTarballStore)
        store.index.scan()
        stores.append(store)

    async def main() -> list[int]:
        sizes: list[int] = []

        async def one(i: int) -> None:
            async def fetch(sink: Any) -> int:
                calls.append(f"r{i}")
                for k in range(0, len(data), 4096):
                    sink(data[k : k + 4096])
                    await anyio.lowlevel.checkpoint()
                return len(data)

            got = await stores[i].fill(digest.key, digest, fetch, "t")
            sizes.append(got.size)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
        return sizes

    sizes = anyio.run(main)
    assert sizes == [len(data)] * 3
    assert len(calls) == 1
    assert sum(s.upstream_fills for s in stores) == 1
    for pool in pools:
        pool.close()
    db.close()


def test_notifications_reach_other_replicas_not_their_sender(pg_url: str) -> None:
    from proxy.storage.cluster import PgNotifier

    migrate(pg_url)
    db = PgDatabase(pg_url)
    sender, receiver = PgNotifier(db, "sender"), PgNotifier(db, "receiver")
    heard: dict[str, list[tuple[str, str]]] = {"sender": [], "receiver": []}

    async def main() -> None:
        got = anyio.Event()

        def on(who: str) -> Any:
            def handle(kind: str, subject: str) -> None:
                heard[who].append((kind, subject))
                if who == "receiver" and subject == "last":
                    got.set()

            return handle

        async with anyio.create_task_group() as tg:
            with anyio.fail_after(20):
                await tg.start(sender.listen, on("sender"))
                await tg.start(receiver.listen, on("receiver"))
                await anyio.to_thread.run_sync(sender.publish, "packument", "left-pad")
                await anyio.to_thread.run_sync(sender.publish, "verdict", "@scope/x")
                await anyio.to_thread.run_sync(db.query, "SELECT pg_notify('floodgate', 'junk')")
                await anyio.to_thread.run_sync(sender.publish, "verdict", "last")
                await got.wait()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert heard["receiver"] == [
        ("packument", "left-pad"),
        ("verdict", "@scope/x"),
        ("verdict", "last"),
    ]
    assert heard["sender"] == []  # its own messages are not news to it
    assert receiver.received == 3
    db.close()


def test_a_listener_that_lost_its_connection_resyncs_when_it_listens_again(pg_url: str) -> None:
    """What changed while a replica was not listening was missed: once it listens again it is
    told to resync (the service then drops its hosted documents), and hears the others again.
    A 'resync' sent by someone else is not taken for one."""
    from proxy.storage.cluster import RESYNC, PgNotifier

    migrate(pg_url)
    db = PgDatabase(pg_url)
    sender, receiver = PgNotifier(db, "sender"), PgNotifier(db, "receiver")
    heard: list[tuple[str, str]] = []

    async def main() -> None:
        before, resynced, last = anyio.Event(), anyio.Event(), anyio.Event()

        def handle(kind: str, subject: str) -> None:
            heard.append((kind, subject))
            if kind == RESYNC:
                resynced.set()
            if subject == "before":
                before.set()
            if subject == "after":
                last.set()

        async with anyio.create_task_group() as tg:
            with anyio.fail_after(30):
                await tg.start(receiver.listen, handle)
                await anyio.to_thread.run_sync(sender.publish, RESYNC, "")  # not from the listener
                await anyio.to_thread.run_sync(sender.publish, "packument", "before")
                kill = (
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
                )
                await before.wait()  # heard before the connection is lost
                assert await anyio.to_thread.run_sync(db.query, kill) == [(True,)]
                await resynced.wait()
                await anyio.to_thread.run_sync(sender.publish, "packument", "after")
                await last.wait()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert heard == [("packument", "before"), (RESYNC, ""), ("packument", "after")]
    db.close()


def test_with_the_object_store_down_tarballs_come_from_the_upstream_and_the_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.storage.blobs import S3Bucket, SharedPackumentStore
    from proxy.storage.cluster import NoLeases
    from tests.servers import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing there
    for key, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings = load_settings(
        {"cache_dir": str(tmp_path / "c"), "blob_store": "s3://down-bucket/x"}, env={}
    )
    tarballs, saved = open_blob_stores(settings, NoLeases())
    assert isinstance(tarballs, SharedTarballStore)
    assert isinstance(saved, SharedPackumentStore)
    tarballs.index.scan()
    saved.index.scan()
    data = b"served anyway"
    digest = Digest("sha512", hashlib.sha512(data).digest())
    calls: list[int] = []

    async def download(sink: Any) -> int:
        calls.append(1)
        sink(data)
        return len(data)

    got = anyio.run(tarballs.fill, digest.key, digest, download, "t")
    assert got.size == len(data)
    assert calls == [1]
    assert tarballs.get(digest.key) is not None  # in the local cache
    bucket: S3Bucket = tarballs.bucket
    assert not bucket.health.ok
    assert bucket.health.describe().startswith("down for")
    assert bucket.health.fail_fast()  # the next calls do not wait for it
    saved.save("left-pad", b"{}", '"e"')  # kept locally
    assert saved.load("left-pad") == (b"{}", '"e"')


def test_a_content_addressed_object_is_written_once_and_never_rewritten(s3_url: str) -> None:
    from proxy.storage.blobs import BlobMissing, BlobUnavailable, S3Bucket

    bucket = S3Bucket(BlobLocation.parse(s3_url))
    key = bucket.location.key("tarballs", "sha512", "ab", "abcdef")
    with pytest.raises(BlobMissing):
        bucket.get(key)
    bucket.put(key, b"first", 5, create_only=True)
    bucket.put(key, b"first", 5, create_only=True)  # another replica's upload: no error
    bucket.put(key, b"secnd", 5, create_only=True)  # never rewritten
    assert bucket.get(key) == b"first"
    with pytest.raises(BlobUnavailable, match="stored 5 bytes of 6"):
        bucket.put(key, b"other!", 6, create_only=True)  # what is there is not what we have
    bucket.put(key, b"replaced", 8)  # a plain put (saved packuments) replaces
    assert bucket.get(key) == b"replaced"
    assert bucket.health.ok


def test_a_corrupt_copy_in_the_bucket_is_replaced_from_the_upstream(
    tmp_path: Path, pg_url: str, s3_url: str
) -> None:
    data = b"the real tarball"
    digest = Digest("sha512", hashlib.sha512(data).digest())
    calls: list[int] = []

    async def download(sink: Any) -> int:
        calls.append(1)
        sink(data)
        return len(data)

    settings = settings_for(tmp_path, pg_url, s3_url, "one")
    store, _ = open_blob_stores(settings, NoLeases())
    assert isinstance(store, SharedTarballStore)
    store.index.scan()
    blob = store.blob_key(digest.key)
    store.bucket.put(blob, b"rotten bytes", 12)
    got = anyio.run(store.fill, digest.key, digest, download, "t")
    assert got.size == len(data)
    assert calls == [1]
    assert store.bucket.get(blob) == data  # replaced by the verified bytes


def test_the_package_graph_has_its_dependents_index_in_postgres(pg_url: str) -> None:
    migrate(pg_url)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'dep_edges'"
        ).fetchall()
    assert ("dep_edges_by_dep",) in rows
