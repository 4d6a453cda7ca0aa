"""The OSV feed from OSV's bucket layout: the archive once, then only the records modified since;
withdrawn records removed; restarts reuse the download; failures warn or stop by who chose the
source. The fetch is injected (a dict of URL paths), the clocks too."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxy.detect import osv
from proxy.detect.osv import OsvFeed, feed_source, is_base_url, modified_since
from proxy.errors import SettingsError
from proxy.inspect import load_feed
from tests.fakes.osv_bucket import OsvBucket, mal_record

BASE = "https://osv.invalid"


class Fetcher:
    def __init__(self, bucket: OsvBucket):
        self.bucket = bucket
        self.urls: list[str] = []
        self.down = False

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.down:
            raise ConnectionError("connection refused")
        path = url.removeprefix(BASE)
        files = self.bucket.files()
        if path not in files:
            raise LookupError(f"{url} answered 404")
        return files[path]

    def took(self) -> list[str]:
        got, self.urls = self.urls, []
        return [u.removeprefix(BASE + "/osv/npm/") for u in got]


def T(minute: int) -> str:
    return f"2026-11-30T10:{minute:02d}:00Z"


@pytest.mark.parametrize(
    ("setting", "source"),
    [
        (None, None),
        ("off", None),
        ("None", None),
        (" ", None),
        ("./feed.zip", "./feed.zip"),
        (BASE, BASE),
    ],
)
def test_feed_source(setting: str | None, source: str | None) -> None:
    assert feed_source(setting) == source


@pytest.mark.parametrize(
    ("source", "base"),
    [(BASE, True), (BASE + "/osv/", True), (BASE + "/npm/all.zip", False), ("/tmp/x", False)],
)
def test_is_base_url(source: str, base: bool) -> None:
    assert is_base_url(source) is base


def test_modified_since_stops_at_the_watermark() -> None:
    csv = f"{T(5)},MAL-3\n{T(4)},GHSA-x\nnot a line\n{T(3)},MAL-2\n{T(1)},MAL-1\n"
    mark = datetime(2026, 11, 30, 10, 3, tzinfo=UTC)
    ids, newest, reached = modified_since(csv, mark)
    assert ids == ["MAL-3", "GHSA-x"]
    assert newest == datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    assert reached
    assert modified_since(csv, newest) == ([], newest, True)
    assert modified_since(csv, datetime(2026, 1, 1, tzinfo=UTC))[2] is False  # never reached
    assert modified_since(csv, None)[0] == ["MAL-3", "GHSA-x", "MAL-2", "MAL-1"]
    assert modified_since(f"{T(9)},../etc\n", None)[0] == []  # never a path out of the layout


def make_feed(tmp_path: Path, fetch: Fetcher, wall: list[float], **kw: object) -> OsvFeed:
    now = [0.0]
    feed = OsvFeed(
        BASE + "/osv", fetch=fetch, cache_dir=tmp_path, interval=60,
        clock=lambda: now[0] + wall[0], wall=lambda: wall[0], **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return feed


def test_incremental_updates_fetch_only_new_records(tmp_path: Path) -> None:
    bucket = OsvBucket()
    bucket.publish(mal_record("MAL-1", "evil-one", ["1.0.0"], T(1)), in_archive=True)
    bucket.publish(mal_record("GHSA-aaaa", "lodash", ["4.17.0"], T(2)), in_archive=True)
    fetch = Fetcher(bucket)
    wall = [datetime(2026, 11, 30, 12, 2, tzinfo=UTC).timestamp()]
    feed = make_feed(tmp_path, fetch, wall)
    assert feed.describe() == "OSV feed https://osv.invalid/osv: not loaded yet"
    assert feed.refresh()
    assert fetch.took() == ["all.zip", "modified_id.csv"]
    assert feed.describe() == (
        "OSV feed https://osv.invalid/osv: 1 records, updated 0 s ago, "
        "newest record 2026-11-30T10:02:00Z (2.0 h old)"
    )
    assert feed.lookup("evil-one", "1.0.0")
    assert not feed.lookup("lodash", "4.17.0")  # only the malicious-packages records
    assert feed.index.record_count == 1
    first_generation = feed.generation

    # Nothing new: only the list is read, and the index is the same.
    wall[0] += 61
    assert feed.refresh_if_due()
    assert fetch.took() == ["modified_id.csv"]
    assert feed.generation == first_generation

    # A record published meanwhile is fetched alone (a new advisory is not fetched at all).
    bucket.publish(mal_record("MAL-2", "evil-two", ["2.0.0"], T(3)))
    bucket.publish(mal_record("GHSA-bbbb", "left-pad", ["1.0.0"], T(4)))
    wall[0] += 61
    assert feed.refresh_if_due()
    assert fetch.took() == ["modified_id.csv", "MAL-2.json"]
    assert feed.lookup("evil-two", "2.0.0")
    assert feed.generation > first_generation
    assert (tmp_path / "osv-npm-updates" / "MAL-2.json").is_file()

    # Withdrawn: the record leaves the index.
    bucket.publish(mal_record("MAL-1", "evil-one", ["1.0.0"], T(5), withdrawn=T(5)))
    wall[0] += 61
    assert feed.refresh_if_due()
    assert fetch.took() == ["modified_id.csv", "MAL-1.json"]
    assert not feed.lookup("evil-one", "1.0.0")
    assert feed.lookup("evil-two", "2.0.0")
    assert feed.index.record_count == 1

    # A restart within the interval uses the copy on disk without any fetch.
    again = make_feed(tmp_path, fetch, wall)
    assert again.refresh()
    assert fetch.took() == []
    assert again.generation == 1  # plans made before the load are made again
    assert again.lookup("evil-two", "2.0.0")
    assert not again.lookup("evil-one", "1.0.0")
    # ... and later reads only the list again.
    wall[0] += 61
    assert again.refresh_if_due()
    assert fetch.took() == ["modified_id.csv"]


def test_too_many_changes_fetch_the_archive_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(osv, "MAX_INCREMENTAL", 2)
    bucket = OsvBucket()
    bucket.publish(mal_record("MAL-1", "evil-one", ["1.0.0"], T(1)), in_archive=True)
    fetch = Fetcher(bucket)
    wall = [1_000_000.0]
    feed = make_feed(tmp_path, fetch, wall)
    assert feed.refresh()
    fetch.took()
    for i in range(2, 6):
        bucket.publish(mal_record(f"MAL-{i}", f"evil-{i}", ["1.0.0"], T(i)), in_archive=True)
    wall[0] += 61
    assert feed.refresh_if_due()
    assert fetch.took() == ["modified_id.csv", "all.zip", "modified_id.csv"]
    assert feed.lookup("evil-one", "1.0.0")
    assert all(feed.lookup(f"evil-{i}", "1.0.0") for i in range(2, 6))


def test_the_archive_is_fetched_again_after_a_day(tmp_path: Path) -> None:
    bucket = OsvBucket()
    bucket.publish(mal_record("MAL-1", "evil-one", ["1.0.0"], T(1)), in_archive=True)
    fetch = Fetcher(bucket)
    wall = [1_000_000.0]
    feed = make_feed(tmp_path, fetch, wall, full_interval=3600.0)
    assert feed.refresh()
    fetch.took()
    wall[0] += 3601
    assert feed.refresh_if_due()
    assert fetch.took() == ["all.zip", "modified_id.csv"]


def test_default_source_unreachable_warns_with_the_age_of_the_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = OsvBucket()
    bucket.publish(mal_record("MAL-1", "evil-one", ["1.0.0"], T(1)), in_archive=True)
    fetch = Fetcher(bucket)
    wall = [1_000_000.0]
    fetch.down = True
    fresh = make_feed(tmp_path, fetch, wall, user_given=False)
    with caplog.at_level(logging.WARNING):
        load_feed(fresh)  # no exception: the default source only warns
    assert "unavailable, no OSV records loaded: connection refused" in caplog.text
    fetch.down = False
    assert fresh.refresh()
    # Later, down again: a restarted command keeps the copy on disk and says how old it is.
    fetch.down = True
    wall[0] += 7200
    caplog.clear()
    restarted = make_feed(tmp_path, fetch, wall, user_given=False)
    with caplog.at_level(logging.WARNING):
        load_feed(restarted)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "keeping the copy updated 2.0 h ago (1 records)" in warnings[0]
    assert restarted.lookup("evil-one", "1.0.0")
    assert restarted.generation == 1
    # Still down at the next refresh: an info line, not another warning.
    caplog.clear()
    wall[0] += 61
    with caplog.at_level(logging.INFO):
        assert not restarted.refresh_if_due()
    assert [r.levelno for r in caplog.records if "unavailable" in r.getMessage()] == [logging.INFO]
    assert "keeping the copy updated 2.0 h ago" in caplog.text
    assert "updated 2.0 h ago" in restarted.describe()


def test_user_given_source_that_fails_stops_the_command(tmp_path: Path) -> None:
    fetch = Fetcher(OsvBucket())
    fetch.down = True
    feed = make_feed(tmp_path, fetch, [0.0], user_given=True)
    with pytest.raises(SettingsError, match=r"the OSV feed https://osv\.invalid/osv cannot be"):
        load_feed(feed)
    missing = OsvFeed(tmp_path / "nope", user_given=True)
    with pytest.raises(SettingsError, match="nope does not exist"):
        load_feed(missing)


class HeadFetcher(Fetcher):
    """Also answers Range requests, as OSV's bucket does: the first n bytes."""

    def head(self, url: str, nbytes: int) -> bytes:
        body = self(url)
        self.urls[-1] = "head:" + url
        return body[:nbytes]


def test_only_the_head_of_the_modified_list_is_read_when_it_reaches_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = len(f"{T(1)},MAL-1\n")
    monkeypatch.setattr(osv, "CSV_HEAD_BYTES", 2 * line + 5)  # two lines and a bit
    bucket = OsvBucket()
    for i in range(1, 9):
        bucket.publish(mal_record(f"MAL-{i}", f"evil-{i}", ["1.0.0"], T(i)), in_archive=True)
    fetch = HeadFetcher(bucket)
    wall = [1_000_000.0]
    feed = OsvFeed(
        BASE + "/osv", fetch=fetch, fetch_head=fetch.head, cache_dir=tmp_path, interval=60,
        clock=lambda: wall[0], wall=lambda: wall[0],
    )  # fmt: skip
    assert feed.refresh()
    fetch.took()
    # One new record: the head reaches the index's newest time; the rest is never read.
    bucket.publish(mal_record("MAL-9", "evil-9", ["1.0.0"], T(9)))
    wall[0] += 61
    assert feed.refresh_if_due()
    assert fetch.took() == ["head:https://osv.invalid/osv/npm/modified_id.csv", "MAL-9.json"]
    assert feed.lookup("evil-9", "1.0.0")
    # Three new ones: the head does not reach the index, so the whole list is read.
    for i in range(10, 13):
        bucket.publish(mal_record(f"MAL-{i}", f"evil-{i}", ["1.0.0"], T(i)))
    wall[0] += 61
    assert feed.refresh_if_due()
    got = fetch.took()
    assert got[:2] == ["head:https://osv.invalid/osv/npm/modified_id.csv", "modified_id.csv"]
    assert sorted(got[2:]) == ["MAL-10.json", "MAL-11.json", "MAL-12.json"]
    assert all(feed.lookup(f"evil-{i}", "1.0.0") for i in range(10, 13))
