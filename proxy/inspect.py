"""`open_detector(settings)`: the inspect step's equipment, the same for every command.

`floodgate serve`, `scan`, `audit` and `policy explain` all assess packages with one detector
(its clone, wallet and dependency indexes), one verdict store and one OSV feed, all under
`cache_dir/detector/`, so a verdict one of them made is reused by the others and a feed URL is
downloaded into one place and fetched again only when it is older than `osv_refresh_seconds`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from proxy.detect.evaluate import Detector
from proxy.detect.osv import OsvFeed
from proxy.detect.store import VerdictStore
from proxy.settings import Settings
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


def open_feed(settings: Settings) -> OsvFeed | None:
    """The configured OSV feed (not loaded yet: call `refresh`), or None."""
    if not settings.osv_feed:
        return None
    return OsvFeed(
        settings.osv_feed,
        fetch=FeedClient(settings.ca_file),
        cache_dir=detector_dir(settings),
        interval=settings.osv_refresh_seconds,
    )


def open_detector(settings: Settings, *, load_feed: bool = True) -> Inspector:
    """Open the detector, its verdict store and (with `load_feed`) load the OSV feed now."""
    directory = detector_dir(settings)
    feed = open_feed(settings)
    if feed is not None and load_feed:
        feed.refresh()
        log.info("OSV feed %s: %d records", feed.source, feed.index.record_count)
    return Inspector(Detector.open(directory, feed), VerdictStore(directory / VERDICTS_FILE), feed)
