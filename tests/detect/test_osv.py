"""OSV feed: loading (folder, zip), exact versions, SEMVER/ECOSYSTEM ranges, withdrawn, refresh."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from proxy.detect.osv import OsvFeed, OsvIndex, load_index, parse_record

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "osv"


def record(
    rid: str, name: str, *, versions: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "npm", "name": name}}
    if versions is not None:
        affected["versions"] = versions
    if "ranges" in extra:
        affected["ranges"] = extra.pop("ranges")
    return {
        "id": rid,
        "summary": f"Malicious code in {name} (npm)",
        "affected": [affected],
        **extra,
    }


def rng(kind: str, *events: dict[str, str]) -> list[dict[str, Any]]:
    return [{"type": kind, "events": list(events)}]


def test_real_records_load_from_folder() -> None:
    index = load_index(FIXTURES)
    assert index.record_count == 2
    hits = index.lookup("hwi-lib", "1.0.2")
    assert [h.id for h in hits] == ["LWA-2026-10086"]
    assert hits[0].aliases == ("MAL-2026-12067",)
    assert hits[0].category == "malware"
    assert index.lookup("hwi-lib", "1.0.3") == ()
    assert index.lookup("@or-sdk/sdk-api", "0.29.4")[0].id == "LWA-2026-10072"
    assert index.lookup("react", "18.2.0") == ()


def test_zip_export_loads(tmp_path: Path) -> None:
    target = tmp_path / "all.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for path in FIXTURES.glob("*.json"):
            zf.writestr(path.name, path.read_bytes())
        zf.writestr("README.txt", "not a record")
        zf.writestr("broken.json", "{")
    index = load_index(target)
    assert index.record_count == 2
    assert index.lookup("hwi-lib", "1.0.2")


@pytest.mark.parametrize(
    ("rec", "version", "affected"),
    [
        # exact versions: a record for react@35.0.0 must not flag react@18
        (record("A", "react", versions=["35.0.0"]), "35.0.0", True),
        (record("A", "react", versions=["35.0.0"]), "18.2.0", False),
        # SEMVER introduced/fixed: [1.2.0, 1.4.0)
        (
            record("B", "p", ranges=rng("SEMVER", {"introduced": "1.2.0"}, {"fixed": "1.4.0"})),
            "1.3.9",
            True,
        ),
        (
            record("B", "p", ranges=rng("SEMVER", {"introduced": "1.2.0"}, {"fixed": "1.4.0"})),
            "1.4.0",
            False,
        ),
        (
            record("B", "p", ranges=rng("SEMVER", {"introduced": "1.2.0"}, {"fixed": "1.4.0"})),
            "1.1.9",
            False,
        ),
        # ECOSYSTEM with last_affected (inclusive)
        (
            record(
                "C", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"}, {"last_affected": "2.0.0"})
            ),
            "2.0.0",
            True,
        ),
        (
            record(
                "C", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"}, {"last_affected": "2.0.0"})
            ),
            "2.0.1",
            False,
        ),
        (
            record(
                "C", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"}, {"last_affected": "2.0.0"})
            ),
            "0.0.1-alpha",
            True,
        ),
        # introduced 0, nothing closes it: every version, and an unknown one
        (record("D", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"})), "99.0.0", True),
        (record("D", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"})), "", True),
        (record("A", "react", versions=["35.0.0"]), "", False),
        # two windows in one range; limit caps it
        (
            record(
                "E",
                "p",
                ranges=rng(
                    "SEMVER",
                    {"introduced": "1.0.0"},
                    {"fixed": "1.1.0"},
                    {"introduced": "2.0.0"},
                    {"fixed": "2.1.0"},
                ),
            ),
            "2.0.5",
            True,
        ),
        (
            record(
                "E",
                "p",
                ranges=rng(
                    "SEMVER",
                    {"introduced": "1.0.0"},
                    {"fixed": "1.1.0"},
                    {"introduced": "2.0.0"},
                    {"fixed": "2.1.0"},
                ),
            ),
            "1.5.0",
            False,
        ),
        (
            record("F", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"}, {"limit": "3.0.0"})),
            "3.0.0",
            False,
        ),
        (
            record("F", "p", ranges=rng("ECOSYSTEM", {"introduced": "0"}, {"limit": "3.0.0"})),
            "2.9.9",
            True,
        ),
        # GIT ranges mean nothing for npm versions
        (record("G", "p", ranges=rng("GIT", {"introduced": "abc"})), "1.0.0", False),
        # withdrawn records are ignored
        (record("H", "p", versions=["1.0.0"], withdrawn="2024-01-01T00:00:00Z"), "1.0.0", False),
        # other ecosystems are ignored
        (
            {
                "id": "I",
                "affected": [
                    {"package": {"ecosystem": "PyPI", "name": "p"}, "versions": ["1.0.0"]}
                ],
            },
            "1.0.0",
            False,
        ),
        # a version that is not semver matches only exactly
        (record("J", "p", versions=["latest-ish"]), "latest-ish", True),
    ],
)
def test_ranges(rec: dict[str, Any], version: str, affected: bool) -> None:
    index = OsvIndex([rec])
    name = rec["affected"][0]["package"]["name"]
    assert bool(index.lookup(name, version)) is affected


def test_parse_record_keeps_aliases_and_spam_category() -> None:
    rec = record("K", "p", versions=["1.0.0"], aliases=["MAL-2024-1"],
                 details="Package publishes tea.xyz token farming spam.")  # fmt: skip
    ((name, aff),) = parse_record(rec)
    assert name == "p"
    assert aff.hit.aliases == ("MAL-2024-1",)
    assert aff.hit.category == "spam"


def _zip(records: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for r in records:
            zf.writestr(f"{r['id']}.json", json.dumps(r))
    return buf.getvalue()


def test_feed_refreshes_from_url_with_injected_fetch(tmp_path: Path) -> None:
    now = [0.0]
    served = [_zip([record("A", "evil", versions=["1.0.0"])])]
    urls: list[str] = []

    def fetch(url: str) -> bytes:
        urls.append(url)
        return served[0]

    feed = OsvFeed("https://feed.invalid/all.zip", fetch=fetch, cache_dir=tmp_path,
                   interval=60, clock=lambda: now[0])  # fmt: skip
    assert feed.due()
    assert feed.refresh_if_due()
    assert feed.lookup("evil", "1.0.0")
    assert (tmp_path / "osv-feed.zip").exists()
    assert not feed.due()
    assert not feed.refresh_if_due()
    served[0] = _zip([record("B", "other", versions=["2.0.0"])])
    now[0] = 61.0
    assert feed.refresh_if_due()
    assert not feed.lookup("evil", "1.0.0")
    assert feed.lookup("other", "2.0.0")
    assert urls == ["https://feed.invalid/all.zip"] * 2
    # a broken download keeps the index it had
    served[0] = b"not a zip"
    now[0] = 200.0
    assert not feed.refresh()
    assert feed.lookup("other", "2.0.0")


def test_feed_from_path_and_missing_path(tmp_path: Path) -> None:
    feed = OsvFeed(FIXTURES)
    assert feed.refresh()
    assert feed.lookup("hwi-lib", "1.0.2")
    missing = OsvFeed(tmp_path / "nope")
    assert not missing.refresh()
    assert missing.lookup("hwi-lib", "1.0.2") == ()
    assert not OsvFeed(None).refresh()
