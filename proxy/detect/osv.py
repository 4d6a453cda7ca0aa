"""The OSV malicious-packages feed: load records, index them by name, answer name@version.

Records come from a directory of `*.json` files (the feed's `osv/<year>/<id>.json` layout) or a
zip of them (the OpenSSF export). Only `npm` affected entries are kept; records with `withdrawn`
are skipped. A version is affected when it is listed in `versions`, or when a `SEMVER` or
`ECOSYSTEM` range covers it under the OSV evaluation rules (`introduced` opens, `fixed` closes
exclusively, `last_affected` closes inclusively, `limit` caps the range). For npm both range
types order versions by SemVer precedence.

`OsvIndex.lookup` is a dict hit on the name plus a set hit on the version; ranges are checked
only for names that have them. `OsvFeed` owns the current index and replaces it on refresh.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from proxy.detect.facts import OsvHit
from proxy.files import write_atomically
from proxy.npm.semver import Version

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 4 * 1024 * 1024  # one OSV JSON file
MAX_FEED_BYTES = 512 * 1024 * 1024  # a downloaded feed archive
DEFAULT_REFRESH_SECONDS = 6 * 3600.0
ECOSYSTEM = "npm"
_RANGE_TYPES = frozenset({"SEMVER", "ECOSYSTEM"})


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str  # introduced, fixed, last_affected, limit
    version: Version


@dataclass(frozen=True, slots=True)
class AffectedRange:
    """One SEMVER/ECOSYSTEM range: its events, sorted by version."""

    events: tuple[_Event, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> AffectedRange | None:
        events: list[_Event] = []
        for e in raw.get("events") or ():
            if not isinstance(e, dict) or len(e) != 1:
                continue
            ((kind, value),) = e.items()
            if kind not in ("introduced", "fixed", "last_affected", "limit"):
                continue
            text = str(value)
            v = Version(0, 0, 0, (0,)) if text == "0" else Version.try_parse(text)
            if v is None:
                log.debug("OSV range event %s=%r is not a version; skipped", kind, text)
                continue
            events.append(_Event(kind, v))
        if not any(e.kind == "introduced" for e in events):
            return None
        order = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
        return cls(tuple(sorted(events, key=lambda e: (e.version, order[e.kind]))))

    def contains(self, v: Version) -> bool:
        limits = [e.version for e in self.events if e.kind == "limit"]
        if limits and not any(v < lim for lim in limits):
            return False
        affected = False
        for e in self.events:
            if e.kind == "introduced" and v >= e.version:
                affected = True
            elif (e.kind == "fixed" and v >= e.version) or (
                e.kind == "last_affected" and v > e.version
            ):
                affected = False
        return affected

    @property
    def open_ended_from_zero(self) -> bool:
        """True when the range covers every version (introduced 0, nothing closes it)."""
        first = self.events[0]
        return (
            first.kind == "introduced"
            and first.version == Version(0, 0, 0, (0,))
            and all(e.kind == "introduced" for e in self.events)
        )


@dataclass(frozen=True, slots=True)
class Affected:
    """One record's statement about one package name."""

    hit: OsvHit
    versions: frozenset[str]
    ranges: tuple[AffectedRange, ...]

    def covers(self, version: str) -> bool:
        """True when `version` is affected; `""` (unknown version) only when all versions are."""
        if not version:
            return bool(self.ranges) and any(r.open_ended_from_zero for r in self.ranges)
        if version in self.versions:
            return True
        if not self.ranges:
            return False
        v = Version.try_parse(version)
        return v is not None and any(r.contains(v) for r in self.ranges)


def _category(record: Mapping[str, Any]) -> str:
    specific = record.get("database_specific")
    if isinstance(specific, dict):
        for value in specific.values():
            if isinstance(value, dict) and isinstance(value.get("category"), str):
                return str(value["category"])
    text = f"{record.get('summary') or ''} {record.get('details') or ''}".lower()
    if "tea.xyz" in text or "token farming" in text or " spam" in text:
        return "spam"
    return ""


def parse_record(record: Mapping[str, Any]) -> list[tuple[str, Affected]]:
    """The (npm name, Affected) pairs of one OSV record; [] for withdrawn or foreign records."""
    if record.get("withdrawn") or not isinstance(record.get("id"), str):
        return []
    aliases = tuple(str(a) for a in record.get("aliases") or () if isinstance(a, str))
    hit = OsvHit(str(record["id"]), aliases, str(record.get("summary") or ""), _category(record))
    out: list[tuple[str, Affected]] = []
    for entry in record.get("affected") or ():
        if not isinstance(entry, dict):
            continue
        pkg = entry.get("package")
        if not isinstance(pkg, dict) or str(pkg.get("ecosystem", "")).lower() != ECOSYSTEM:
            continue
        name = pkg.get("name")
        if not isinstance(name, str) or not name:
            continue
        versions = frozenset(str(v) for v in entry.get("versions") or () if isinstance(v, str))
        ranges = tuple(
            r
            for raw in entry.get("ranges") or ()
            if isinstance(raw, dict) and raw.get("type") in _RANGE_TYPES
            if (r := AffectedRange.parse(raw)) is not None
        )
        if versions or ranges:
            out.append((name, Affected(hit, versions, ranges)))
    return out


class OsvIndex:
    """Records indexed by package name; immutable once built."""

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()):
        by_name: dict[str, list[Affected]] = {}
        count = 0
        for record in records:
            pairs = parse_record(record)
            count += bool(pairs)
            for name, affected in pairs:
                by_name.setdefault(name, []).append(affected)
        self._by_name = {k: tuple(v) for k, v in by_name.items()}
        self.record_count = count

    @property
    def names(self) -> int:
        return len(self._by_name)

    def lookup(self, name: str, version: str) -> tuple[OsvHit, ...]:
        """The records that affect `name@version` (version `""`: those affecting all versions)."""
        found = self._by_name.get(name)
        if not found:
            return ()
        hits = {a.hit.id: a.hit for a in found if a.covers(version)}
        return tuple(hits[k] for k in sorted(hits))

    def names_any_version(self, name: str) -> tuple[OsvHit, ...]:
        """Every record naming `name`, whatever versions it affects."""
        return tuple({a.hit.id: a.hit for a in self._by_name.get(name, ())}.values())


def _load_json(data: bytes, where: str) -> Mapping[str, Any] | None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        log.warning("skipping OSV file %s: not JSON (%s)", where, exc)
        return None
    if isinstance(doc, dict) and "id" in doc and "affected" in doc:
        return doc
    return None  # e.g. the feed's index.json


def iter_records(source: Path) -> Iterator[Mapping[str, Any]]:
    """OSV records from a directory tree of JSON files or from a zip of them."""
    if source.is_dir():
        for path in sorted(source.rglob("*.json")):
            if path.stat().st_size > MAX_RECORD_BYTES:
                log.warning("skipping OSV file %s: over %d bytes", path, MAX_RECORD_BYTES)
                continue
            doc = _load_json(path.read_bytes(), str(path))
            if doc is not None:
                yield doc
        return
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            if info.file_size > MAX_RECORD_BYTES:
                log.warning(
                    "skipping %s in %s: over %d bytes", info.filename, source, MAX_RECORD_BYTES
                )
                continue
            with zf.open(info) as fh:
                data = fh.read(MAX_RECORD_BYTES + 1)
            doc = _load_json(data, f"{source}:{info.filename}")
            if doc is not None:
                yield doc


def load_index(source: Path) -> OsvIndex:
    """Build an index from a directory or zip; raises OSError or zipfile.BadZipFile."""
    started = time.monotonic()
    index = OsvIndex(iter_records(source))
    log.info(
        "loaded %d OSV records for %d npm names from %s in %.2fs",
        index.record_count,
        index.names,
        source,
        time.monotonic() - started,
    )
    return index


Fetch = Callable[[str], bytes]


class OsvFeed:
    """The current OSV index, refreshed from a path or URL at most every `interval` seconds.

    A URL source is downloaded with the injected `fetch` (the detector has no HTTP client of its
    own) into `cache_dir` with an atomic replace, then loaded. A download younger than
    `interval` (by its file time, `wall` clock) is loaded as it is, so commands that start often
    (`floodgate scan`, `audit`) fetch the feed only when it is stale. A failed refresh keeps
    the index it had and logs why.
    """

    def __init__(
        self,
        source: str | Path | None,
        *,
        fetch: Fetch | None = None,
        cache_dir: Path | None = None,
        interval: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.source = str(source) if source is not None else None
        self._fetch = fetch
        self._cache_dir = cache_dir
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.index = OsvIndex()
        self.loaded_at: float | None = None

    @property
    def is_url(self) -> bool:
        return bool(self.source) and str(self.source).startswith(("http://", "https://"))

    def due(self) -> bool:
        return self.source is not None and (
            self.loaded_at is None or self._clock() - self.loaded_at >= self.interval
        )

    def refresh(self) -> bool:
        """Reload now; True when a new index is in place."""
        if self.source is None:
            return False
        with self._lock:
            try:
                path = self._download() if self.is_url else Path(self.source).expanduser()
                index = load_index(path)
            except Exception as exc:  # any failure (fetch, disk, zip) keeps the old index
                log.warning(
                    "OSV refresh from %s failed, keeping the old index: %s", self.source, exc
                )
                self.loaded_at = self._clock()  # retry after the interval, not on every request
                return False
            self.index = index
            self.loaded_at = self._clock()
            return True

    def refresh_if_due(self) -> bool:
        return self.refresh() if self.due() else False

    def _download(self) -> Path:
        """The feed archive: the cached download while it is younger than `interval` (on the
        first load of this process), else a fresh one written atomically over it."""
        if self._fetch is None or self._cache_dir is None:
            raise ValueError("an OSV feed URL needs a fetch function and a cache directory")
        assert self.source is not None
        target = self._cache_dir / "osv-feed.zip"
        if self.loaded_at is None:
            try:
                age: float | None = self._wall() - target.stat().st_mtime
            except OSError:
                age = None
            if age is not None and 0 <= age < self.interval:
                log.info("OSV feed %s: using the download from %.0f s ago", self.source, age)
                return target
        data = self._fetch(self.source)
        if len(data) > MAX_FEED_BYTES:
            raise ValueError(f"OSV feed from {self.source} is over {MAX_FEED_BYTES} bytes")
        zipfile.ZipFile(io.BytesIO(data)).testzip()  # raises BadZipFile before we replace
        write_atomically(target, data)
        return target

    def lookup(self, name: str, version: str) -> tuple[OsvHit, ...]:
        return self.index.lookup(name, version)
