"""`floodgate migrate`, `floodgate storage check|import|export` against the real servers."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from proxy.cache.store import PackumentStore
from proxy.cli import main
from proxy.decisions import DecisionLog, query
from proxy.detect.campaigns import CampaignIndex
from proxy.detect.clones import CloneIndex
from proxy.detect.evaluate import Detector
from proxy.detect.facts import facts_from_case
from proxy.detect.store import VerdictStore
from proxy.files import write_atomically
from proxy.storage.ops import tarball_matches
from proxy.storage.sql import latest_version
from proxy.tokens import TokenStore
from tests.detect.helpers import case
from tests.servers import free_port
from tests.storage.test_contract import record

CLOCK = datetime(2024, 3, 1, tzinfo=UTC)


def test_migrate_command(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--database-url", pg_url]) == 0
    assert f"from version 0 to {latest_version()}" in capsys.readouterr().out
    assert main(["migrate", "--database-url", pg_url]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_migrate_without_a_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--cache-dir", str(tmp_path)]) == 2
    assert "set database_url" in capsys.readouterr().err


def test_storage_check(pg_url: str, s3_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["storage", "check", "--database-url", pg_url, "--blob-store", s3_url]
    assert main(args) == 1  # not migrated yet
    out = capsys.readouterr().out
    assert "ok   database: PostgreSQL 15 answers" in out or "ok   database: PostgreSQL" in out
    assert f"FAIL schema: version 0, this Floodgate needs {latest_version()}" in out
    assert "ok   object store" in out
    assert main(["migrate", "--database-url", pg_url]) == 0
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"ok   schema: version {latest_version()} (current)" in out
    assert "ok   permissions" in out


def test_storage_check_names_what_cannot_be_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = f"postgresql://floodgate@127.0.0.1:{closed}/postgres"
    assert main(["storage", "check", "--database-url", url, "--blob-store", "s3://nope"]) == 1
    out = capsys.readouterr().out
    assert "FAIL database: cannot connect" in out
    assert "FAIL object store: s3://nope" in out


@pytest.mark.parametrize(
    ("relative", "data", "ok"),
    [
        (f"sha512/ab/{hashlib.sha512(b'x').hexdigest()}", b"x", True),
        (f"sha512/ab/{hashlib.sha512(b'x').hexdigest()}", b"y", False),
        (f"sha1/ab/{hashlib.sha1(b'x').hexdigest()}", b"x", True),
        ("nonsense", b"x", False),
        ("md99/ab/00", b"x", False),
    ],
)
def test_tarball_matches(relative: str, data: bytes, ok: bool) -> None:
    assert tarball_matches(relative, data) is ok


def make_embedded(cache: Path) -> tuple[str, str]:
    """An embedded storage with one of everything; (tarball key, the verdict's name)."""
    package, _version, tarball = facts_from_case(case("uniset"))
    verdict = Detector(clock=lambda: CLOCK).assess(package, "1.0.0", tarball)
    store = VerdictStore(cache / "detector" / "verdicts.sqlite3")
    store.put(verdict, "sha512-abc")
    store.close()
    clones = CloneIndex(cache / "detector" / "detector.sqlite3")
    clones.record("farm-a", ["h1", "h2"])
    clones.db.close()
    campaigns = CampaignIndex(cache / "detector" / "detector.sqlite3")
    campaigns.record("farm_one_x1", "", ["empty"], ["wallet:0x1"])
    campaigns.record("farm_two_x2", "", ["empty"], ["wallet:0x1"])
    campaigns.db.close()
    log = DecisionLog(cache / "decisions.sqlite3")
    log.record(record("farm-a", "block", 1000.0), record("react", "allow", 1001.0))
    log.close()
    data = b"a tarball"
    digest = hashlib.sha512(data).hexdigest()
    write_atomically(cache / "tarballs" / "sha512" / digest[:2] / digest, data)
    bad = hashlib.sha512(b"other").hexdigest()
    write_atomically(cache / "tarballs" / "sha512" / bad[:2] / bad, b"not the other")
    PackumentStore(cache / "packuments", 1 << 20).save("left-pad", b"{}", '"e1"')
    tokens = TokenStore.in_cache(cache)
    tokens.create("ci", "runner-7")
    tokens.close()
    return f"sha512-{digest}", verdict.name


def test_import_then_export(
    tmp_path: Path, pg_url: str, s3_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "single-node"
    key, name = make_embedded(cache)
    shared = ["--database-url", pg_url, "--blob-store", s3_url]
    assert main(["storage", "import", "--embedded", str(cache), *shared]) == 1  # one bad file
    out = capsys.readouterr().out
    assert "verdicts: 1 rows" in out
    assert "decisions: 2 rows" in out
    assert "clone_files: 2 rows" in out
    assert "tokens: 1 rows" in out
    assert "tarballs: 1" in out
    assert "saved packuments: 1" in out
    assert "does not match its digest" in out
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone() == (2,)
    # again: nothing is copied twice
    main(["storage", "import", "--embedded", str(cache), *shared])
    out = capsys.readouterr().out
    assert "decisions: 0 rows" in out
    assert "verdicts: 0 rows" in out
    assert "tokens: 0 rows" in out
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone() == (2,)

    down = tmp_path / "copy"
    assert main(["storage", "export", "--embedded", str(down), *shared]) == 0
    capsys.readouterr()
    rows = list(query(down / "decisions.sqlite3"))
    assert [r.package for r in rows] == ["react", "farm-a"]
    assert rows == list(query(cache / "decisions.sqlite3"))
    exported = VerdictStore(down / "detector" / "verdicts.sqlite3")
    original = VerdictStore(cache / "detector" / "verdicts.sqlite3")
    assert exported.get(name, "1.0.0", "sha512-abc") == original.get(name, "1.0.0", "sha512-abc")
    exported.close()
    original.close()
    algorithm, _, digest = key.partition("-")
    assert (down / "tarballs" / algorithm / digest[:2] / digest).read_bytes() == b"a tarball"
    assert PackumentStore(down / "packuments", 1 << 20).load("left-pad") == (b"{}", '"e1"')
    moved, kept = TokenStore.in_cache(down), TokenStore.in_cache(cache)
    assert moved.list() == kept.list()
    assert [t.name for t in moved.list()] == ["runner-7"]
    moved.close()
    kept.close()


def test_the_commands_reading_floodgates_memory_read_the_shared_database(
    tmp_path: Path, pg_url: str, s3_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_embedded(tmp_path / "single-node")
    shared = ["--database-url", pg_url, "--blob-store", s3_url]
    main(["storage", "import", "--embedded", str(tmp_path / "single-node"), *shared])
    capsys.readouterr()
    empty = str(tmp_path / "elsewhere")  # another machine: nothing embedded
    assert main(["decisions", "--cache-dir", empty, "--database-url", pg_url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["package"] for r in rows] == ["react", "farm-a"]
    assert main(["decisions", "--database-url", pg_url, "--package", "farm-*", "--json"]) == 0
    assert [json.loads(x)["package"] for x in capsys.readouterr().out.splitlines()] == ["farm-a"]
    assert main(["campaigns", "--cache-dir", empty, "--database-url", pg_url]) == 0
    out = capsys.readouterr().out
    assert "2 members" in out
    assert "farm_one_x1, farm_two_x2" in out
