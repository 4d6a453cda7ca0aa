"""Hosted packages on two `floodgate serve` replicas sharing one PostgreSQL and one S3 store:
a publish through one is served at once by the other (the change notification, not the
packument TTL), two publishes at once through both both land, and with the database stopped a
hosted read or write is a 503 that loses nothing, never a 404. Publishes are `PUT /<name>` as
npm sends them, built in Python."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import pytest

from proxy.settings import load_settings
from proxy.storage.backends import token_store
from tests.e2e.npm import Floodgate, serve
from tests.fakes.publish import path_of as package_path
from tests.fakes.registry import running_registry
from tests.servers import Postgres, S3Server, wait_for
from tests.storage.hosted_helpers import bearer, publish_body, tarball_path

NAME = "@acme/widget"
PREFIX = "hosted-replicas"  # the replicas' keys in the session's bucket


@dataclass
class Pair:
    a: Floodgate
    b: Floodgate
    token: str
    postgres: Postgres
    tarballs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # as published

    def get(self, replica: Floodgate, path: str) -> httpx.Response:
        return httpx.get(replica.url + path, headers=bearer(self.token), timeout=30)

    def publish(self, replica: Floodgate, name: str, version: str) -> httpx.Response:
        body, tgz = publish_body(name, version)
        self.tarballs[name, version] = tgz  # gzip stamps the time: each build differs
        return httpx.put(
            replica.url + package_path(name), json=body, headers=bearer(self.token), timeout=60
        )

    def versions(self, replica: Floodgate, name: str = NAME) -> list[str]:
        got = self.get(replica, package_path(name))
        assert got.status_code == 200, got.text
        return sorted(got.json()["versions"])


@pytest.fixture(scope="module")
def pair(
    postgres: Postgres, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    database = postgres.create_database()
    work = tmp_path_factory.mktemp("hosted-replicas")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    env.update(s3_server.env())
    blob_store = f"s3://{s3_server.bucket}/{PREFIX}"
    with token_store(load_settings({"database_url": database}, env={})) as tokens:
        token = tokens.create("admin", "release-bot")
    with ExitStack() as stack, running_registry() as (upstream, _server):

        def start(name: str) -> Floodgate:
            args = [
                "--upstream", upstream.url, "--port", "0",
                "--cache-dir", str(work / f"replica-{name}"), "--render-workers", "0",
                "--database-url", database, "--blob-store", blob_store,
                "--internal-scopes", "@acme",
            ]  # fmt: skip  # the packument TTL is the default (300 s): never waited out here
            return stack.enter_context(serve(args, work / f"replica-{name}.log", env=env))

        a, b = start("a"), start("b")
        wait_for(lambda: a.logged("listening for other replicas' changes"), "A listening", 20)
        wait_for(lambda: b.logged("listening for other replicas' changes"), "B listening", 20)
        yield Pair(a, b, token, postgres)


def test_a_publish_through_one_replica_is_served_at_once_by_the_other(pair: Pair) -> None:
    a, b = pair.a, pair.b
    missing = pair.get(b, package_path(NAME))
    assert missing.status_code == 404  # remembered for not_found_ttl (30 s)...
    published = pair.publish(a, NAME, "1.0.0")
    assert published.status_code == 201, published.text
    # ... and forgotten when A says the package changed.
    wait_for(lambda: pair.get(b, package_path(NAME)).status_code == 200, "B to see it", 20)
    assert pair.versions(b) == ["1.0.0"]  # B holds this document in memory now
    got = pair.get(b, tarball_path(NAME, "1.0.0"))
    assert got.status_code == 200, got.text
    assert got.content == pair.tarballs[NAME, "1.0.0"]

    assert pair.publish(a, NAME, "1.1.0").status_code == 201
    # B served the old document before; it drops it on A's notification, long before its
    # packument TTL (300 s) would have.
    wait_for(lambda: pair.versions(b) == ["1.0.0", "1.1.0"], "B to drop its copy", 20)
    assert pair.get(b, package_path(NAME)).json()["dist-tags"]["latest"] == "1.1.0"
    assert pair.versions(a) == ["1.0.0", "1.1.0"]


def test_two_publishes_at_once_through_both_replicas_both_land(pair: Pair) -> None:
    name = "@acme/racing"
    assert pair.publish(pair.a, name, "0.1.0").status_code == 201
    barrier = threading.Barrier(2)
    codes: dict[str, int] = {}

    def publish(replica: Floodgate, version: str) -> None:
        barrier.wait(10)
        codes[version] = pair.publish(replica, name, version).status_code

    threads = [
        threading.Thread(target=publish, args=(pair.a, "1.0.0")),
        threading.Thread(target=publish, args=(pair.b, "1.1.0")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == {"1.0.0": 201, "1.1.0": 201}
    for replica in (pair.a, pair.b):
        wait_for(
            lambda r=replica: pair.versions(r, name) == ["0.1.0", "1.0.0", "1.1.0"],  # type: ignore[misc]
            "every version on every replica",
            20,
        )


def test_with_the_database_stopped_hosted_reads_and_writes_are_503_and_lose_nothing(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    unread = "@acme/unread"  # published, never read: no replica has a copy of it
    assert pair.publish(a, unread, "1.0.0").status_code == 201
    assert pair.versions(b) == ["1.0.0", "1.1.0"]  # B has the widget in memory
    pair.postgres.stop()
    try:
        for replica in (a, b):
            got = pair.get(replica, package_path(unread))
            assert got.status_code == 503, got.text  # never "not published"
            assert "hosted packages" in got.json()["error"]
            tarball = pair.get(replica, tarball_path(unread, "1.0.0"))
            assert tarball.status_code == 503, tarball.text
        refused = pair.publish(a, unread, "1.1.0")
        assert refused.status_code == 503, refused.text
        assert "nothing was lost" in refused.json()["error"]
        # What a replica holds in memory it serves meanwhile (stale, as a proxied package).
        assert pair.versions(b) == ["1.0.0", "1.1.0"]
    finally:
        pair.postgres.start()

    def back() -> bool:
        return pair.get(b, package_path(unread)).status_code == 200

    wait_for(back, "hosted reads once the database is back", 60)
    assert pair.versions(b, unread) == ["1.0.0"]
    assert pair.get(b, tarball_path(unread, "1.0.0")).content == pair.tarballs[unread, "1.0.0"]
    assert pair.publish(a, unread, "1.1.0").status_code == 201  # the client's retry
    # B may not be listening again yet (it retries with a growing pause) and miss A's
    # notification; once it listens it drops its hosted documents, so it never waits out the
    # packument TTL (300 s) for them.
    wait_for(lambda: pair.versions(b, unread) == ["1.0.0", "1.1.0"], "the retried publish", 60)
    assert pair.publish(a, NAME, "1.2.0").status_code == 201
    wait_for(lambda: pair.versions(b) == ["1.0.0", "1.1.0", "1.2.0"], "B's copy dropped", 60)
    assert b.logged("hosted packages dropped from memory", 60)


def test_the_hosted_tarballs_are_objects_apart_from_the_tarball_cache(
    pair: Pair, s3_server: S3Server
) -> None:
    name = "@acme/stored"
    assert pair.publish(pair.b, name, "1.0.0").status_code == 201
    tgz = pair.tarballs[name, "1.0.0"]
    key = hashlib.sha512(tgz).hexdigest()
    client = s3_server.client()
    hosted = f"{PREFIX}/hosted/sha512/{key[:2]}/{key}"
    assert client.get_object(Bucket=s3_server.bucket, Key=hosted)["Body"].read() == tgz
    assert pair.get(pair.a, tarball_path(name, "1.0.0")).content == tgz
