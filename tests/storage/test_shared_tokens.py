"""Client tokens in the shared database: made once with the CLI, accepted by every replica,
revoked everywhere, and still known to a replica while the database is away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg
import pytest

from proxy.cli import main
from proxy.identity import Identity
from proxy.settings import load_settings
from proxy.storage.backends import open_database, open_token_store
from proxy.tokens import TokenIndex
from tests.conftest import ProxyFactory, publish_basics
from tests.fakes.registry import FakeRegistry
from tests.servers import Postgres


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(argv) == 0
    return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_token_commands_with_a_database_url(
    pg_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = ["--cache-dir", str(tmp_path / "here"), "--database-url", pg_url]
    (made,) = cli_json(
        ["token", "create", "--group", "ci", "--name", "runner-7", "--json", *here], capsys
    )
    assert made["name"] == "runner-7"
    token = made["token"]
    assert isinstance(token, str)
    # Another machine: another cache folder, the database named in the environment.
    monkeypatch.setenv("FLOODGATE_DATABASE_URL", pg_url)
    there = ["--cache-dir", str(tmp_path / "there")]
    listed = cli_json(["token", "list", "--json", *there], capsys)
    assert [(t["name"], t["group"]) for t in listed] == [("runner-7", "ci")]
    assert main(["token", "create", "--group", "ci", "--name", "runner-7", *there]) == 2
    assert "exists already" in capsys.readouterr().err
    # Nothing was kept in either cache folder: the shared database holds the tokens.
    assert not (tmp_path / "here" / "tokens.sqlite3").exists()
    assert not (tmp_path / "there" / "tokens.sqlite3").exists()
    settings = load_settings({"cache_dir": str(tmp_path / "x"), "database_url": pg_url}, env={})
    db = open_database(settings)
    store = open_token_store(settings, db)
    try:
        assert TokenIndex(store).identify(token) == Identity("ci", "runner-7")
    finally:
        store.close()
        assert db is not None
        db.close()
    assert main(["token", "revoke", "runner-7", *there]) == 0
    assert "revoked token 'runner-7'" in capsys.readouterr().out
    assert cli_json(["token", "list", "--json", *here], capsys) == []
    assert main(["token", "revoke", "runner-7", *here]) == 2
    assert "no token named" in capsys.readouterr().err


def test_two_replicas_accept_a_token_made_once(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    pg_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish_basics(registry)
    cli = ["--cache-dir", str(tmp_path / "cli"), "--database-url", pg_url]
    (made,) = cli_json(
        ["token", "create", "--group", "ci", "--name", "runner-7", "--json", *cli], capsys
    )
    one = make_proxy(cache_dir=str(tmp_path / "one"), database_url=pg_url)
    two = make_proxy(cache_dir=str(tmp_path / "two"), database_url=pg_url)
    good = {"authorization": f"Bearer {made['token']}"}
    bad = {"authorization": "Bearer fg_not-one-of-ours"}
    for proxy in (one, two):
        assert proxy.client.get("/fg-alpha", headers=good).status_code == 200
        assert proxy.client.get("/fg-alpha", headers=bad).status_code == 401
        assert proxy.client.get("/fg-alpha").status_code == 401  # tokens exist: not anonymous


@contextmanager
def unreachable(postgres: Postgres, url: str) -> Iterator[None]:
    """The database at `url` refuses connections and its open ones are cut (as when its server
    is away), until the block ends."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_while_the_database_is_down_known_tokens_are_still_accepted(
    postgres: Postgres, pg_url: str, tmp_path: Path
) -> None:
    settings = load_settings({"cache_dir": str(tmp_path), "database_url": pg_url}, env={})
    admin_db = open_database(settings)
    replica_db = open_database(settings, degrade=True)  # as `floodgate serve` opens it
    assert admin_db is not None
    assert replica_db is not None
    admin, replica = open_token_store(settings, admin_db), open_token_store(settings, replica_db)
    clock = Clock()
    index = TokenIndex(replica, ttl=5.0, clock=clock)
    try:
        known = admin.create("ci", "runner-7")
        other = admin.create("ci", "runner-8")  # made, but never seen by this replica
        assert index.identify(known) == Identity("ci", "runner-7")
        with unreachable(postgres, pg_url):
            clock.now += 5.0
            assert index.identify(known) == Identity("ci", "runner-7")
            assert index.identify(other) is None  # cannot be checked: not accepted
            assert index.any()
            assert not replica_db.health.ok
        # Back: the replica reads the database again (after the health's retry pause).
        admin.revoke("runner-7")
        deadline = time.monotonic() + 30
        while index.identify(known) is not None:
            assert time.monotonic() < deadline, "the revocation never reached the replica"
            clock.now += 5.0
            time.sleep(0.1)
        assert index.identify(other) == Identity("ci", "runner-8")
        assert replica_db.health.ok
    finally:
        admin_db.close()
        replica_db.close()
