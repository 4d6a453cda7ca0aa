"""The OSV malicious-packages feed: load records, index them by name, answer name@version.

Records come from a directory of `*.json` files (the feed's `osv/<year>/<id>.json` layout) or a
zip of them (the OpenSSF export). Only `npm` affected entries are kept; records with `withdrawn`
are skipped. A version is affected when it is listed in `versions`, or when a `SEMVER` or
`ECOSYSTEM` range covers it under the OSV evaluation rules (`introduced` opens, `fixed` closes
exclusively, `last_affected` closes inclusively, `limit` caps the range). For npm both range
types order versions by SemVer precedence.

`OsvIndex.lookup` is a dict hit on the name plus a set hit on the version; ranges are checked
only for names that have them. `OsvFeed` owns the current index and replaces it on refresh.

Sources (`OsvFeed.source`): a folder or zip on disk, a URL of a zip, or the base URL of
OSV's per-ecosystem bucket layout (the default, `proxy.settings.DEFAULT_OSV_FEED`):
`<base>/npm/all.zip` holds every record, `<base>/npm/modified_id.csv` lists
`<RFC3339 modified>,<id>` newest first, and `<base>/npm/<id>.json` is one record. From a
base URL only the malicious-packages records (`MAL-` ids) are kept; the archive is fetched
once and then rarely (`FULL_REFRESH_SECONDS`), and every refresh fetches the modified list
and only the records newer than the index (at most `MAX_INCREMENTAL`, else the archive).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from proxy.detect.facts import OsvHit
from proxy.files import write_atomically
from proxy.npm.semver import Version

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 4 * 1024 * 1024  # one OSV JSON file
MAX_FEED_BYTES = 512 * 1024 * 1024  # a downloaded feed archive
DEFAULT_REFRESH_SECONDS = 240.0
DISABLED = frozenset({"", "off", "none", "no", "false", "0"})
FULL_REFRESH_SECONDS = 24 * 3600.0  # the base layout's full archive, re-fetched once a day
MAX_INCREMENTAL = 1000  # records fetched one by one per refresh; more: the full archive
MALICIOUS_PREFIX = "MAL-"
ECOSYSTEM = "npm"
ECOSYSTEM_DIR = "npm"  # the ecosystem's folder in OSV's bucket
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


def parse_time(text: object) -> datetime | None:
    """An RFC3339 time (OSV's `modified`) as an aware datetime, or None (pure)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


class OsvIndex:
    """Records indexed by package name; immutable once built (`merged` makes a new one).

    `keep(id)` filters records (the base layout keeps `MAL-` ids only); `newest` is the latest
    `modified` time of every record read, kept or not: the watermark for incremental updates.
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]] = (),
        keep: Callable[[str], bool] | None = None,
    ):
        self._by_name: dict[str, tuple[Affected, ...]] = {}
        self._names_of: dict[str, tuple[str, ...]] = {}
        self.newest: datetime | None = None
        self._add(records, keep)

    @property
    def record_count(self) -> int:
        return len(self._names_of)

    def _add(
        self, records: Iterable[Mapping[str, Any]], keep: Callable[[str], bool] | None
    ) -> None:
        by_name, names_of = self._by_name, self._names_of
        for record in records:
            modified = parse_time(record.get("modified"))
            if modified is not None and (self.newest is None or modified > self.newest):
                self.newest = modified
            rid = record.get("id")
            if not isinstance(rid, str) or (keep is not None and not keep(rid)):
                continue
            for name in names_of.pop(rid, ()):  # a newer copy replaces the old one
                kept = tuple(a for a in by_name.get(name, ()) if a.hit.id != rid)
                if kept:
                    by_name[name] = kept
                else:
                    by_name.pop(name, None)
            pairs = parse_record(record)  # [] for a withdrawn record: it is removed
            for name, affected in pairs:
                by_name[name] = (*by_name.get(name, ()), affected)
            if pairs:
                names_of[rid] = tuple(sorted({name for name, _ in pairs}))

    def merged(
        self, records: Iterable[Mapping[str, Any]], keep: Callable[[str], bool] | None = None
    ) -> OsvIndex:
        """A new index: this one with `records` added or replacing theirs (withdrawn: removed)."""
        out = OsvIndex()
        out._by_name = dict(self._by_name)
        out._names_of = dict(self._names_of)
        out.newest = self.newest
        out._add(records, keep)
        return out

    def __contains__(self, record_id: str) -> bool:
        return record_id in self._names_of

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


def load_index(source: Path, keep: Callable[[str], bool] | None = None) -> OsvIndex:
    """Build an index from a directory or zip; raises OSError or zipfile.BadZipFile."""
    started = time.monotonic()
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    index = OsvIndex(iter_records(source), keep)
    log.info(
        "loaded %d OSV records for %d npm names from %s in %.2fs",
        index.record_count,
        index.names,
        source,
        time.monotonic() - started,
    )
    return index


Fetch = Callable[[str], bytes]
FetchHead = Callable[[str, int], bytes]  # the first n bytes of a URL (or all of it)
CSV_HEAD_BYTES = 256 * 1024  # the newest lines of modified_id.csv; usually all that changed


def feed_source(setting: str | None) -> str | None:
    """The `osv_feed` setting as a source, None when it turns the feed off (pure)."""
    if setting is None or setting.strip().lower() in DISABLED:
        return None
    return setting.strip()


def is_base_url(source: str) -> bool:
    """True for the base URL of OSV's bucket layout (a URL that does not name a zip)."""
    return source.startswith(("http://", "https://")) and not source.lower().endswith(".zip")


def _is_malicious(record_id: str) -> bool:
    return record_id.startswith(MALICIOUS_PREFIX)


def modified_since(csv: str, watermark: datetime | None) -> tuple[list[str], datetime | None, bool]:
    """The ids of `modified_id.csv` lines newer than `watermark`, the newest time seen, and
    whether a line at or before the watermark was reached (else the text may have been cut).

    Lines are `<RFC3339 modified>,<id>`, newest first, so reading stops at the first line that
    is not newer; lines that do not parse are skipped (pure)."""
    ids: list[str] = []
    newest = watermark
    for line in csv.splitlines():
        stamp, _, record_id = line.strip().partition(",")
        when = parse_time(stamp)
        record_id = record_id.strip()
        if when is None or not record_id or "/" in record_id or ".." in record_id:
            continue
        if watermark is not None and when <= watermark:
            return ids, newest, True
        ids.append(record_id)
        if newest is None or when > newest:
            newest = when
    return ids, newest, False


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class OsvFeed:
    """The current OSV index, refreshed from a path or URL at most every `interval` seconds.

    A URL source is downloaded with the injected `fetch` (the detector has no HTTP client of its
    own) into `cache_dir` with atomic replaces, then loaded. A download younger than `interval`
    (by its file time, `wall` clock) is loaded as it is on the first load, so commands that start
    often (`floodgate scan`, `audit`) fetch the feed only when it is stale. A base URL (OSV's
    bucket layout) is kept up to date incrementally: see the module docstring. A failed refresh
    keeps the index it had and logs one warning with the age of what is kept; `error` says why
    and `user_given` tells callers whether that should stop a command at startup.
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
        user_given: bool = True,
        full_interval: float = FULL_REFRESH_SECONDS,
        fetch_head: FetchHead | None = None,
    ):
        self.source = str(source) if source is not None else None
        self._fetch = fetch
        self._fetch_head = fetch_head
        self._cache_dir = cache_dir
        self.interval = interval
        self.full_interval = full_interval
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.index = OsvIndex()
        self.loaded_at: float | None = None
        self.user_given = user_given
        self.error: str | None = None
        self.updated_wall: float | None = None  # wall time of the last successful update
        self.changed = 0  # records added, changed or withdrawn by the last refresh
        self.generation = 0  # bumped whenever the index may answer differently

    @property
    def is_url(self) -> bool:
        return bool(self.source) and str(self.source).startswith(("http://", "https://"))

    def due(self) -> bool:
        return self.source is not None and (
            self.loaded_at is None or self._clock() - self.loaded_at >= self.interval
        )

    def age(self) -> float | None:
        """Seconds since the index was last brought up to date from its source, or None."""
        return None if self.updated_wall is None else self._wall() - self.updated_wall

    def describe(self) -> str:
        """One line for logs and `floodgate doctor`: source, records, freshness."""
        if self.loaded_at is None:
            return f"OSV feed {self.source}: not loaded yet"
        parts = [f"OSV feed {self.source}: {self.index.record_count} records"]
        age = self.age()
        if age is not None:
            parts.append(f"updated {_ago(age)} ago")
        newest = self.index.newest
        if newest is not None:
            stamp = newest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            parts.append(f"newest record {stamp} ({_ago(self._wall() - newest.timestamp())} old)")
        return ", ".join(parts)

    def refresh(self) -> bool:
        """Reload now; True when the index is up to date with its source."""
        if self.source is None:
            return False
        with self._lock:
            try:
                if self.is_url and is_base_url(self.source):
                    index = self._update_from_base()
                else:
                    path = self._download() if self.is_url else Path(self.source).expanduser()
                    index = load_index(path)
                    self.updated_wall = self._wall()
            except Exception as exc:  # any failure (fetch, disk, zip) keeps the old index
                # One warning when the feed becomes unavailable; while it stays so, info lines.
                level = logging.INFO if self.error is not None else logging.WARNING
                self.error = str(exc) or type(exc).__name__
                kept = (
                    f"keeping the copy updated {_ago(age)} ago ({self.index.record_count} records)"
                    if (age := self.age()) is not None
                    else "no OSV records loaded"
                )
                log.log(level, "OSV feed %s unavailable, %s: %s", self.source, kept, self.error)
                self.loaded_at = self._clock()  # retry after the interval, not on every request
                return False
            self.error = None
            if index is not self.index or self.changed:
                self.generation += 1
            self.index = index
            self.loaded_at = self._clock()
            log.info("%s (%d new or changed)", self.describe(), self.changed)
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
        self._save_zip(target, self._fetch(self.source))
        return target

    def _save_zip(self, target: Path, data: bytes) -> None:
        if len(data) > MAX_FEED_BYTES:
            raise ValueError(f"OSV feed from {self.source} is over {MAX_FEED_BYTES} bytes")
        zipfile.ZipFile(io.BytesIO(data)).testzip()  # raises BadZipFile before we replace
        write_atomically(target, data)

    # -- the base layout: full archive plus incremental updates ----------------------------

    def _paths(self) -> tuple[Path, Path, Path]:
        if self._fetch is None or self._cache_dir is None:
            raise ValueError("an OSV feed URL needs a fetch function and a cache directory")
        d = self._cache_dir
        return d / "osv-npm-all.zip", d / "osv-npm-updates", d / "osv-npm-state.json"

    def _url(self, leaf: str) -> str:
        assert self.source is not None
        return f"{self.source.rstrip('/')}/{ECOSYSTEM_DIR}/{leaf}"

    def _read_state(self, path: Path) -> dict[str, Any]:
        try:
            state = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return state if isinstance(state, dict) else {}

    def _local_copy(self, archive: Path, updates: Path) -> OsvIndex:
        index = load_index(archive, _is_malicious)
        if updates.is_dir():
            index = index.merged(iter_records(updates), _is_malicious)
        return index

    def _update_from_base(self) -> OsvIndex:
        assert self._fetch is not None
        archive, updates, state_path = self._paths()
        state = self._read_state(state_path)
        now = self._wall()
        full_at = float(state.get("full_at") or 0.0)
        checked_at = state.get("checked_at")
        watermark = parse_time(state.get("watermark"))
        self.changed = 0
        index = self.index
        if self.loaded_at is None and archive.is_file():
            # First load of this process: what an earlier run (or command) kept, at once.
            index = self.index = self._local_copy(archive, updates)
            self.generation += 1  # kept even if the update below fails
            if isinstance(checked_at, int | float):
                self.updated_wall = float(checked_at)
                if 0 <= now - checked_at < self.interval:
                    log.info(
                        "OSV feed %s: using the copy from %s ago",
                        self.source,
                        _ago(now - checked_at),
                    )
                    return index
        if not archive.is_file() or not 0 <= now - full_at < self.full_interval:
            index, watermark = self._full(archive, updates, state_path)
        ids, newest = self._modified(watermark)
        wanted = [i for i in ids if _is_malicious(i)]
        if len(wanted) > MAX_INCREMENTAL:
            log.info(
                "OSV feed %s: %d records changed, fetching the full archive",
                self.source,
                len(wanted),
            )
            index, watermark = self._full(archive, updates, state_path)
            ids, newest = self._modified(watermark)
            wanted = [i for i in ids if _is_malicious(i)][:MAX_INCREMENTAL]
        records = [r for i in reversed(wanted) if (r := self._fetch_record(i, updates)) is not None]
        if records:
            index = index.merged(records, _is_malicious)
        self.changed += len(records)
        full_at = float(self._read_state(state_path).get("full_at") or full_at)
        self._write_state(state_path, full_at, now, newest)
        self.updated_wall = now
        return index

    def _modified(self, watermark: datetime | None) -> tuple[list[str], datetime | None]:
        """The ids modified since `watermark` and the newest time listed. Only the head of
        the list is asked for first (it is newest first); the whole list when the head does
        not reach the watermark."""
        assert self._fetch is not None
        url = self._url("modified_id.csv")
        if self._fetch_head is not None and watermark is not None:
            head = self._fetch_head(url, CSV_HEAD_BYTES)
            text = head.decode("utf-8", errors="replace")
            if len(head) >= CSV_HEAD_BYTES:
                text = text[: text.rfind("\n") + 1]  # the last line may be cut
            ids, newest, reached = modified_since(text, watermark)
            if reached or len(head) < CSV_HEAD_BYTES:
                return ids, newest
        ids, newest, _ = modified_since(
            self._fetch(url).decode("utf-8", errors="replace"), watermark
        )
        return ids, newest

    def _full(
        self, archive: Path, updates: Path, state_path: Path
    ) -> tuple[OsvIndex, datetime | None]:
        """Fetch the full archive; the updates folder is cleared (the archive holds them)."""
        assert self._fetch is not None
        data = self._fetch(self._url("all.zip"))
        with contextlib.suppress(FileNotFoundError):
            state_path.unlink()  # a crash from here on starts with a full fetch again
        shutil.rmtree(updates, ignore_errors=True)
        self._save_zip(archive, data)
        index = load_index(archive, _is_malicious)
        self.changed = index.record_count
        self._write_state(state_path, self._wall(), None, index.newest)
        return index, index.newest

    def _fetch_record(self, record_id: str, updates: Path) -> Mapping[str, Any] | None:
        assert self._fetch is not None
        url = self._url(f"{record_id}.json")
        try:
            data = self._fetch(url)
        except Exception as exc:  # one missing record must not stop the others
            log.warning("OSV record %s: %s; skipped", url, exc)
            return None
        if len(data) > MAX_RECORD_BYTES:
            log.warning("OSV record %s is over %d bytes; skipped", url, MAX_RECORD_BYTES)
            return None
        record = _load_json(data, url)
        if record is None or record.get("id") != record_id:
            log.warning("OSV record %s is not the record %s; skipped", url, record_id)
            return None
        updates.mkdir(parents=True, exist_ok=True)
        write_atomically(updates / f"{record_id}.json", data)
        return record

    def _write_state(
        self, path: Path, full_at: float, checked_at: float | None, watermark: datetime | None
    ) -> None:
        state = {
            "full_at": full_at,
            "checked_at": checked_at,
            "watermark": watermark.isoformat() if watermark is not None else None,
        }
        write_atomically(path, orjson.dumps(state))

    def lookup(self, name: str, version: str) -> tuple[OsvHit, ...]:
        return self.index.lookup(name, version)

    def names_any_version(self, name: str) -> tuple[OsvHit, ...]:
        return self.index.names_any_version(name)
