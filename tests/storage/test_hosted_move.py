"""Hosted packages move with `floodgate storage import` / `export`: published over HTTP to a
single node (embedded), imported into a real PostgreSQL and S3 store and served from there by
a node with an empty cache folder, then exported to another single node and served again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from proxy.cli import main
from proxy.hosted.store import HostedStore
from proxy.storage.blobs import BlobLocation
from tests.conftest import ProxyFactory
from tests.fakes.publish import path_of as package_path
from tests.servers import S3Server
from tests.storage.hosted_helpers import bearer, publish_body, tarball_path
from tests.web.test_auth import make_token

NAME = "@acme/widget"
HOSTING = {"internal_scopes": "@acme"}


def test_hosted_packages_move_up_to_shared_storage_and_back_down(
    tmp_path: Path,
    make_proxy: ProxyFactory,
    pg_url: str,
    s3_url: str,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    single = tmp_path / "single-node"
    single.mkdir()
    token = make_token(single, "admin", "release-bot")
    node = make_proxy(cache_dir=str(single), **HOSTING)
    tarballs = {}
    for version in ("1.0.0", "1.1.0"):
        body, tgz = publish_body(NAME, version)
        tarballs[version] = tgz
        put = node.client.put(package_path(NAME), json=body, headers=bearer(token))
        assert put.status_code == 201, put.text
    node.stop()

    shared = ["--database-url", pg_url, "--blob-store", s3_url]
    assert main(["storage", "import", "--embedded", str(single), *shared]) == 0
    out = capsys.readouterr().out
    assert "hosted tarballs: 2" in out
    assert "hosted_packages: 1 rows" in out
    assert "hosted_events: 2 rows" in out  # the two publishes
    assert main(["storage", "import", "--embedded", str(single), *shared]) == 0
    again = capsys.readouterr().out  # nothing is copied twice
    assert "hosted tarballs: 0" in again
    assert "hosted_packages: 0 rows" in again
    assert "hosted_events: 0 rows" in again

    # In the database: the document and who owns which tarball; the bytes are objects.
    with psycopg.connect(pg_url) as conn:
        owners = conn.execute(
            "SELECT digest, package, length(data) FROM hosted_tarballs"
        ).fetchall()
    keys = {hashlib.sha512(tgz).hexdigest() for tgz in tarballs.values()}
    assert sorted(owners) == sorted((key, NAME, 0) for key in keys)
    location = BlobLocation.parse(s3_url)
    listed = s3_server.client().list_objects_v2(
        Bucket=location.bucket, Prefix=location.key("hosted") + "/"
    )
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
        location.key("hosted", "sha512", key[:2], key) for key in keys
    )

    # Another machine: an empty cache folder, the shared storage (tokens were moved too).
    elsewhere = make_proxy(
        cache_dir=str(tmp_path / "replica"), database_url=pg_url, blob_store=s3_url, **HOSTING
    )
    doc = elsewhere.client.get(package_path(NAME), headers=bearer(token))
    assert doc.status_code == 200, doc.text
    assert sorted(doc.json()["versions"]) == ["1.0.0", "1.1.0"]
    assert doc.json()["dist-tags"]["latest"] == "1.1.0"
    for version, tgz in tarballs.items():
        got = elsewhere.client.get(tarball_path(NAME, version), headers=bearer(token))
        assert got.status_code == 200, got.text
        assert got.content == tgz
    # and it publishes there
    body, tgz = publish_body(NAME, "1.2.0")
    tarballs["1.2.0"] = tgz
    put = elsewhere.client.put(package_path(NAME), json=body, headers=bearer(token))
    assert put.status_code == 201, put.text
    elsewhere.stop()

    down = tmp_path / "copy"
    assert main(["storage", "export", "--embedded", str(down), *shared]) == 0
    out = capsys.readouterr().out
    assert "hosted tarballs: 3" in out
    assert "hosted_packages: 1 rows" in out
    assert "hosted_events: 3 rows" in out
    exported = HostedStore.in_cache(down)
    try:
        assert [e.version for e in exported.events(kinds=("publish",))] == [
            "1.2.0",
            "1.1.0",
            "1.0.0",
        ]
        for tgz in tarballs.values():  # the bytes are in the single node's database again
            assert exported.get_tarball(hashlib.sha512(tgz).hexdigest()) == tgz
    finally:
        exported.close()
    node = make_proxy(cache_dir=str(down), **HOSTING)
    doc = node.client.get(package_path(NAME), headers=bearer(token))
    assert doc.status_code == 200, doc.text
    assert sorted(doc.json()["versions"]) == ["1.0.0", "1.1.0", "1.2.0"]
    got = node.client.get(tarball_path(NAME, "1.2.0"), headers=bearer(token))
    assert got.status_code == 200
    assert got.content == tarballs["1.2.0"]


def test_a_hosted_tarball_that_does_not_match_its_key_is_skipped_and_listed(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    single = tmp_path / "single-node"
    store = HostedStore.in_cache(single)
    good = hashlib.sha512(b"good bytes").hexdigest()
    bad = hashlib.sha512(b"other bytes").hexdigest()
    store.put_tarball(good, NAME, b"good bytes")
    store.put_tarball(bad, NAME, b"damaged bytes")  # a damaged row: not what its key says
    store.close()
    # Without blob_store the shared side keeps hosted tarballs in the database.
    assert main(["storage", "import", "--embedded", str(single), "--database-url", pg_url]) == 1
    out = capsys.readouterr().out
    assert "hosted tarballs: 1" in out
    assert f"skipped hosted tarball {bad[:16]}... of {NAME}: does not match its digest" in out
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT digest, package, data FROM hosted_tarballs").fetchall()
    assert rows == [(good, NAME, b"good bytes")]
