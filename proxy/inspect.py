"""`open_detector(settings)`: the inspect step's equipment, the same for every command.

`floodgate serve`, `scan`, `audit` and `policy explain` all assess packages with one detector
(its clone, wallet and dependency indexes), one verdict store and one OSV feed, all under
`cache_dir/detector/`, so a verdict one of them made is reused by the others and a feed URL is
downloaded into one place and fetched again only when it is older than `osv_refresh_seconds`.

The feed is on by default (`DEFAULT_OSV_FEED`, OSV's bucket). When the default source cannot be
reached the command warns and goes on with what it has; a source the user typed that does not
work on its first load stops every command with a `SettingsError` (exit 2), so a typo is never
a silent "0 records".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from proxy.detect.evaluate import Detector
from proxy.detect.osv import OsvFeed, feed_source
from proxy.detect.store import VerdictStore
from proxy.errors import SettingsError
from proxy.settings import DEFAULT_OSV_FEED, Settings
from proxy.storage.sql import SqlDatabase
from proxy.upstream.feed import FeedClient

log = logging.getLogger(__name__)

VERDICTS_FILE = "verdicts.sqlite3"


def detector_dir(settings: Settings) -> Path:
    return settings.cache_dir / "detector"


@dataclass
class Inspector:
    """A detector with its verdict store and feed; `close` releases their databases."""

    detector: Detector
    verdicts: VerdictStore
    feed: OsvFeed | None

    def close(self) -> None:
        self.verdicts.close()
        self.detector.close()

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feed_is_user_given(settings: Settings) -> bool:
    """True when `osv_feed` names a source other than the default (pure)."""
    source = feed_source(settings.osv_feed)
    return source is not None and source.rstrip("/") != DEFAULT_OSV_FEED


def open_feed(settings: Settings) -> OsvFeed | None:
    """The configured OSV feed (not loaded yet: call `refresh` or `load_feed`), or None."""
    source = feed_source(settings.osv_feed)
    if source is None:
        return None
    client = FeedClient(settings.ca_file)
    return OsvFeed(
        source,
        fetch=client,
        fetch_head=client.head,
        cache_dir=detector_dir(settings),
        interval=settings.osv_refresh_seconds,
        user_given=feed_is_user_given(settings),
    )


def load_feed(feed: OsvFeed) -> None:
    """The first load: a source the user typed that fails raises SettingsError; the default
    one only warns (`OsvFeed.refresh` logged it) and the command goes on without it."""
    if not feed.refresh() and feed.user_given:
        raise SettingsError(
            f"the OSV feed {feed.source} cannot be loaded: {feed.error} "
            "(fix --osv-feed / FLOODGATE_OSV_FEED, or set it to off)"
        )


def open_detector(
    settings: Settings, *, load_feed_now: bool = True, db: SqlDatabase | None = None
) -> Inspector:
    """Open the detector, its verdict store and (with `load_feed_now`) load the OSV feed now.
    Their indexes and verdicts are in `db` when given (the shared database), else in SQLite
    files under the cache folder; without `db` but with `database_url` set, the shared
    database is opened (and migrated) here. Raises SettingsError when a user-given feed fails
    to load, or the shared database cannot be reached."""
    directory = detector_dir(settings)
    if db is None and settings.database_url is not None:
        from proxy.storage.backends import open_database

        db = open_database(settings)
    feed = open_feed(settings)
    if feed is not None and load_feed_now:
        load_feed(feed)
    if db is not None:
        return Inspector(Detector.open(None, feed, db=db), VerdictStore(db=db), feed)
    return Inspector(Detector.open(directory, feed), VerdictStore(directory / VERDICTS_FILE), feed)
