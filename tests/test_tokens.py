"""The token store and the proxy's cached view of it (injected clocks, a real SQLite file)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.identity import Identity
from proxy.tokens import TOKEN_PREFIX, TokenError, TokenIndex, TokenStore, digest_of


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TokenStore]:
    s = TokenStore(tmp_path / "tokens.sqlite3", clock=Clock(1_700_000_000.0))
    yield s
    s.close()


def test_create_prints_a_random_token_and_stores_only_its_hash(
    store: TokenStore, tmp_path: Path
) -> None:
    a = store.create("ci", "runner-7")
    b = store.create("ci", "runner-8")
    assert a.startswith(TOKEN_PREFIX)
    assert b.startswith(TOKEN_PREFIX)
    assert a != b
    assert len(a) > 40
    raw = (tmp_path / "tokens.sqlite3").read_bytes()
    assert a.encode() not in raw
    conn = sqlite3.connect(tmp_path / "tokens.sqlite3")
    digests = {row[0] for row in conn.execute("SELECT digest FROM tokens")}
    conn.close()
    assert digests == {digest_of(a), digest_of(b)}
    assert [(t.name, t.group, t.created, t.last_used) for t in store.list()] == [
        ("runner-7", "ci", 1_700_000_000.0, None),
        ("runner-8", "ci", 1_700_000_000.0, None),
    ]


@pytest.mark.parametrize(
    ("group", "name", "problem"),
    [
        ("ci", "", "token name"),
        ("", "x", "group"),
        ("ci", "has space", "token name"),
        ("ci", "-leading", "token name"),
        ("c/i", "x", "group"),
        ("ci", "x" * 65, "token name"),
    ],
)
def test_bad_names_are_refused_with_what_is_wrong(
    store: TokenStore, group: str, name: str, problem: str
) -> None:
    with pytest.raises(TokenError, match=problem):
        store.create(group, name)
    assert store.list() == []


def test_names_are_unique_and_revoke_needs_a_known_name(store: TokenStore) -> None:
    store.create("ci", "runner-7")
    with pytest.raises(TokenError, match="exists already"):
        store.create("developers", "runner-7")
    with pytest.raises(TokenError, match="no token named 'nobody'"):
        store.revoke("nobody")
    assert store.revoke("runner-7").group == "ci"
    assert store.list() == []


def test_index_resolves_and_revocation_applies_after_the_ttl(store: TokenStore) -> None:
    token = store.create("ci", "runner-7")
    clock = Clock()
    index = TokenIndex(store, ttl=5.0, clock=clock, wall=Clock(1_700_000_100.0))
    assert index.any()
    found = index.resolve(token)
    assert found is not None
    assert found.identity == Identity("ci", "runner-7")
    assert index.resolve(token + "x") is None
    store.revoke("runner-7")
    clock.now += 4.9  # still trusted from memory
    assert index.resolve(token) is not None
    clock.now += 0.2
    assert index.resolve(token) is None
    assert not index.any()


def test_index_records_last_use_at_most_once_a_minute(store: TokenStore) -> None:
    token = store.create("ci", "runner-7")
    clock, wall = Clock(), Clock(1_700_000_100.0)
    index = TokenIndex(store, ttl=5.0, clock=clock, wall=wall)
    index.resolve(token)
    assert store.list()[0].last_used == 1_700_000_100.0
    clock.now += 30
    wall.now += 30
    index.resolve(token)
    assert store.list()[0].last_used == 1_700_000_100.0
    clock.now += 31
    wall.now += 31
    index.resolve(token)
    assert store.list()[0].last_used == 1_700_000_161.0


def test_a_second_process_sees_changes(store: TokenStore, tmp_path: Path) -> None:
    other = TokenStore(tmp_path / "tokens.sqlite3")
    try:
        token = other.create("ci", "runner-9")
        assert store.find(digest_of(token)) is not None
    finally:
        other.close()


def test_identify_is_the_same_view_with_the_same_ttl(store: TokenStore) -> None:
    token = store.create("ci", "runner-7")
    clock = Clock()
    index = TokenIndex(store, ttl=5.0, clock=clock)
    assert index.identify(token) == Identity("ci", "runner-7")
    assert index.identify("fg_unknown") is None
    store.revoke("runner-7")
    clock.now += 4.9
    assert index.identify(token) == Identity("ci", "runner-7")
    clock.now += 0.2
    assert index.identify(token) is None


def test_an_unreadable_store_keeps_what_was_known(store: TokenStore) -> None:
    token = store.create("ci", "runner-7")
    clock = Clock()
    index = TokenIndex(store, ttl=5.0, clock=clock)
    assert index.any()
    assert index.identify(token) == Identity("ci", "runner-7")
    store.close()  # every query now raises sqlite3.ProgrammingError
    clock.now += 10
    assert index.any()
    assert index.identify(token) == Identity("ci", "runner-7")
    assert index.identify("fg_unknown") is None
    fresh = TokenIndex(store, ttl=5.0, clock=clock)
    assert fresh.any()  # nothing known: assume tokens exist, so anonymous `auto` refuses
    assert fresh.identify(token) is None
    store._conn = sqlite3.connect(":memory:")  # the fixture's close() needs an open connection
