"""What the dashboard reads from the decision log and the verdict store: a handful of bounded
queries, each answered from an index or a small pre-aggregated table, never a full scan.

`prepare(path)` (run once when the proxy starts, and by the benchmark) adds to the decision
log what these queries need: covering indexes for the per-action and per-package lookups, and
`decision_hours`, decisions counted per hour and action, kept up to date by a trigger on every
insert (a log written before gets its counts filled in once, in the same transaction that
creates the trigger, so no row is counted twice or missed). Pages then read:

- the chart from `decision_hours` (a few hundred rows for 30 days);
- top packages, rules and groups from the `(action, time, ...)` covering index, over the
  refusals and warnings of the chosen window only;
- the decision log page by keyset pagination on `(time, id)`, newest first, through the index
  its filters select (package, action, rule or group);
- a package page from the `(package, time)` index and the verdict store's primary key;
- the Registry page from the hosted packages' event log (`HostedRegistry.activity`), through
  its `(package, time)` and `time` indexes; `RegistryFilter` is what it asks for.

Every function here is blocking: the web layer calls it from a worker thread.
"""

from __future__ import annotations

import contextlib
import heapq
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from proxy.decisions import DecisionRecord
from proxy.detect.model import Verdict
from proxy.hosted.store import EVENT_KINDS

HOUR = 3600
DAY = 86400
ACTED = ("block", "hide", "warn")  # what the overview counts and charts
PAGE_SIZE = 50  # decision log rows per page
TOP = 10  # rows in each top list
CAMPAIGN_SOURCES = 50  # top packages whose latest reasons are read for their campaign
PACKAGE_ROWS = 2000  # newest decisions read for a package page
RARE_GLOB = 5000  # rows a package glob matches at most to be read through the package index
MAX_FILTER = 214  # characters of a filter value (a package name's limit)
_CAMPAIGN = re.compile(r"\bof (\d+) packages of campaign (\S+) linked by")

PREPARE = """
CREATE INDEX IF NOT EXISTS decisions_action_time
    ON decisions (action, time, package, rule, client_group);
CREATE INDEX IF NOT EXISTS decisions_rule_time ON decisions (rule, time);
CREATE INDEX IF NOT EXISTS decisions_group_time ON decisions (client_group, time);
CREATE TABLE IF NOT EXISTS decision_hours (
    hour INTEGER NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, action)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_day_packages (
    day INTEGER NOT NULL, action TEXT NOT NULL, package TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, action, package)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_day_rules (
    day INTEGER NOT NULL, action TEXT NOT NULL, rule TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, action, rule)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_day_groups (
    day INTEGER NOT NULL, action TEXT NOT NULL, client_group TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, action, client_group)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_day_package_groups (
    package TEXT NOT NULL, day INTEGER NOT NULL, client_group TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (package, day, client_group)
) WITHOUT ROWID;
"""
COUNTS = (
    "decision_hours",
    "decision_day_packages",
    "decision_day_rules",
    "decision_day_groups",
    "decision_day_package_groups",
)
TRIGGERS = {
    "decisions_dashboard_hours": """
CREATE TRIGGER decisions_dashboard_hours AFTER INSERT ON decisions BEGIN
    INSERT INTO decision_hours (hour, action, n)
    VALUES (CAST(NEW.time / 3600 AS INTEGER), NEW.action, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END""",
    "decisions_dashboard_days": """
CREATE TRIGGER decisions_dashboard_days AFTER INSERT ON decisions
WHEN NEW.action IN ('block', 'hide', 'warn') BEGIN
    INSERT INTO decision_day_packages (day, action, package, n)
    VALUES (CAST(NEW.time / 86400 AS INTEGER), NEW.action, NEW.package, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO decision_day_rules (day, action, rule, n)
    VALUES (CAST(NEW.time / 86400 AS INTEGER), NEW.action, NEW.rule, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO decision_day_groups (day, action, client_group, n)
    VALUES (CAST(NEW.time / 86400 AS INTEGER), NEW.action, NEW.client_group, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO decision_day_package_groups (package, day, client_group, n)
    VALUES (NEW.package, CAST(NEW.time / 86400 AS INTEGER), NEW.client_group, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END""",
}
BACKFILL = (
    "INSERT INTO decision_hours (hour, action, n) "
    "SELECT CAST(time / 3600 AS INTEGER), action, COUNT(*) FROM decisions GROUP BY 1, 2",
    "INSERT INTO decision_day_packages (day, action, package, n) "
    "SELECT CAST(time / 86400 AS INTEGER), action, package, COUNT(*) FROM decisions "
    "WHERE action IN ('block', 'hide', 'warn') GROUP BY 1, 2, 3",
    "INSERT INTO decision_day_rules (day, action, rule, n) "
    "SELECT CAST(time / 86400 AS INTEGER), action, rule, COUNT(*) FROM decisions "
    "WHERE action IN ('block', 'hide', 'warn') GROUP BY 1, 2, 3",
    "INSERT INTO decision_day_groups (day, action, client_group, n) "
    "SELECT CAST(time / 86400 AS INTEGER), action, client_group, COUNT(*) FROM decisions "
    "WHERE action IN ('block', 'hide', 'warn') GROUP BY 1, 2, 3",
    "INSERT INTO decision_day_package_groups (package, day, client_group, n) "
    "SELECT package, CAST(time / 86400 AS INTEGER), client_group, COUNT(*) FROM decisions "
    "WHERE action IN ('block', 'hide', 'warn') GROUP BY 1, 2, 3",
)


def prepare(path: Path) -> None:
    """Add the dashboard's indexes, counts and their triggers to the decision log at `path`
    (which `DecisionLog` has created). Idempotent; safe while the proxy writes."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.executescript(PREPARE)
        conn.execute("BEGIN IMMEDIATE")  # no insert between the backfill and the triggers
        try:
            have = {
                str(row[0])
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            }
            if not set(TRIGGERS) <= have:
                for name in TRIGGERS:
                    conn.execute(f"DROP TRIGGER IF EXISTS {name}")
                for table in COUNTS:
                    conn.execute(f"DELETE FROM {table}")  # noqa: S608
                for sql in BACKFILL:
                    conn.execute(sql)
                for sql in TRIGGERS.values():
                    conn.execute(sql)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to an SQLite file, or None when there is no such file."""
    if not path.exists():
        yield None
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        yield conn
    finally:
        conn.close()


# -- overview ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """A name (package, rule, group, campaign) with its refusals and warnings in the window."""

    name: str
    block: int = 0
    hide: int = 0
    warn: int = 0
    groups: tuple[tuple[str, int], ...] = ()  # (group, decisions), most first
    size: int = 0  # a campaign's size as the detector last saw it

    @property
    def total(self) -> int:
        return self.block + self.hide + self.warn


@dataclass(frozen=True, slots=True)
class Overview:
    since: float
    until: float
    bucket_hours: int
    series: dict[str, list[int]]  # action -> count per bucket, oldest first
    totals: dict[str, int]
    packages: tuple[Count, ...] = ()
    rules: tuple[Count, ...] = ()
    groups: tuple[Count, ...] = ()
    campaigns: tuple[Count, ...] = ()


def window(now: float, days: int, bucket_hours: int) -> tuple[int, int]:
    """(buckets, first hour) of a window of `days` ending with the hour of `now` (pure)."""
    buckets = -(-days * 24 // bucket_hours)
    return buckets, int(now // HOUR) + 1 - buckets * bucket_hours


def overview(path: Path, now: float, days: int, bucket_hours: int) -> Overview:
    """Counts of the last `days` days, in buckets of `bucket_hours` (ending with `now`)."""
    buckets, start_hour = window(now, days, bucket_hours)
    since = float(start_hour * HOUR)
    series = {a: [0] * buckets for a in ACTED}
    empty = Overview(since, now, bucket_hours, series, dict.fromkeys(ACTED, 0))
    with reading(path) as conn:
        if conn is None or not _has_table(conn, "decision_day_package_groups"):
            return empty
        marks = ", ".join("?" for _ in ACTED)
        for hour, action, n in conn.execute(
            f"SELECT hour, action, n FROM decision_hours WHERE hour >= ? AND action IN ({marks})",  # noqa: S608
            (start_hour, *ACTED),
        ):
            index = (int(hour) - start_hour) // bucket_hours
            if 0 <= index < buckets:
                series[str(action)][index] += int(n)
        totals = {a: sum(series[a]) for a in ACTED}
        tally = _tally(conn, path, since, now)
        packages = _ranked(tally.packages, CAMPAIGN_SOURCES)
        return Overview(
            since,
            now,
            bucket_hours,
            series,
            totals,
            packages=_with_groups(conn, packages[:TOP], since, tally.package_groups),
            rules=tuple(_ranked(tally.rules, TOP)),
            groups=tuple(_ranked(tally.groups, TOP)),
            campaigns=_campaigns(conn, packages),
        )


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return found is not None


Tally = dict[str, dict[str, int]]  # name -> action -> decisions


@dataclass
class _Tallies:
    packages: Tally = field(default_factory=dict)
    rules: Tally = field(default_factory=dict)
    groups: Tally = field(default_factory=dict)
    package_groups: dict[tuple[str, str], int] = field(default_factory=dict)  # from the edge


def _add(tally: Tally, name: str, action: str, n: int) -> None:
    by = tally.setdefault(name, {})
    by[action] = by.get(action, 0) + n


def _tally(conn: sqlite3.Connection, path: Path, since: float, now: float) -> _Tallies:
    """Refusals and warnings since `since` by package, rule and group: whole UTC days from the
    day tables, the part of a day before the first whole one from the covering index (less
    than a day of rows). Packages of the days before today come ranked from `_past_packages`
    (cached: a month has tens of thousands of them); only today's and the edge's are read."""
    first_day = -(-int(since) // DAY)
    today = int(now // DAY)
    edge_end = first_day * DAY
    out = _Tallies()
    current: Tally = {}  # packages of the edge and of today
    for action in ACTED:
        for package, rule, group, n in conn.execute(
            "SELECT package, rule, client_group, COUNT(*) FROM decisions "
            "INDEXED BY decisions_action_time WHERE action = ? AND time >= ? AND time < ? "
            "GROUP BY package, rule, client_group",
            (action, since, edge_end),
        ):
            _add(current, str(package), action, int(n))
            _add(out.rules, str(rule), action, int(n))
            _add(out.groups, str(group), action, int(n))
            key = (str(package), str(group))
            out.package_groups[key] = out.package_groups.get(key, 0) + int(n)
    for table, column, tally in (
        ("decision_day_rules", "rule", out.rules),
        ("decision_day_groups", "client_group", out.groups),
    ):
        for name, action, n in conn.execute(
            f"SELECT {column}, action, SUM(n) FROM {table} WHERE day >= ? "  # noqa: S608
            f"GROUP BY {column}, action",
            (first_day,),
        ):
            _add(tally, str(name), str(action), int(n))
    for name, action, n in conn.execute(
        "SELECT package, action, n FROM decision_day_packages WHERE day >= ?",
        (max(first_day, today),),
    ):
        _add(current, str(name), str(action), int(n))
    past, past_top = _past_packages(conn, path, first_day, today, now)
    # The top of past + current is among the top of past and the packages of current: a
    # package outside both has no more than it had in the past, and the past's top had more.
    for name in {*current, *past_top}:
        by = dict(past.get(name, {}))
        for action, n in current.get(name, {}).items():
            by[action] = by.get(action, 0) + n
        out.packages[name] = by
    return out


PAST_TTL = 600.0  # seconds a day-range's package counts are reused (past days change only by
# a write batch in flight at midnight; the proxy refreshes them sooner, see `warm`)
_past_lock = threading.Lock()
_past: dict[tuple[str, int, int], tuple[float, Tally, tuple[str, ...]]] = {}


def _past_packages(
    conn: sqlite3.Connection, path: Path, first_day: int, today: int, now: float
) -> tuple[Tally, tuple[str, ...]]:
    """Packages' counts over the whole days [first_day, today) and the names of the top
    `CAMPAIGN_SOURCES`, computed once per day range (then reused for PAST_TTL seconds)."""
    key = (str(path), first_day, today)
    with _past_lock:
        found = _past.get(key)
    if found is not None and now - found[0] < PAST_TTL:
        return found[1], found[2]
    tally: Tally = {}
    if first_day < today:
        for name, action, n in conn.execute(
            "SELECT package, action, SUM(n) FROM decision_day_packages "
            "WHERE day >= ? AND day < ? GROUP BY package, action",
            (first_day, today),
        ):
            _add(tally, str(name), str(action), int(n))
    top = tuple(c.name for c in _ranked(tally, CAMPAIGN_SOURCES))
    with _past_lock:
        for old in [k for k, v in _past.items() if now - v[0] >= PAST_TTL or k[2] != today]:
            del _past[old]
        _past[key] = (now, tally, top)
    return tally, top


def warm(path: Path, now: float, windows: Iterable[tuple[int, int]]) -> None:
    """Compute the past days' package counts of each window ((days, bucket hours), as the
    pages ask) ahead of page views: the proxy calls this at start and every few minutes, well
    within PAST_TTL, so that no view pays for it."""
    with reading(path) as conn:
        if conn is None or not _has_table(conn, "decision_day_packages"):
            return
        with _past_lock:
            for key in [k for k in _past if k[0] == str(path)]:
                if now - _past[key][0] >= PAST_TTL / 2:
                    del _past[key]  # refreshed here, before views would have to
        for days, bucket_hours in windows:
            since = window(now, days, bucket_hours)[1] * HOUR
            _past_packages(conn, path, -(-since // DAY), int(now // DAY), now)


def _ranked(tally: Tally, limit: int) -> list[Count]:
    """The `limit` names with the most refusals, then warnings (then by name)."""
    best = heapq.nsmallest(
        limit,
        tally.items(),
        key=lambda item: (
            -(item[1].get("block", 0) + item[1].get("hide", 0)),
            -item[1].get("warn", 0),
            item[0],
        ),
    )
    return [
        Count(name, by.get("block", 0), by.get("hide", 0), by.get("warn", 0)) for name, by in best
    ]


def _with_groups(
    conn: sqlite3.Connection,
    packages: list[Count],
    since: float,
    edge: dict[tuple[str, str], int],
) -> tuple[Count, ...]:
    """The top packages with the groups whose requests got them refused or warned."""
    first_day = -(-int(since) // DAY)
    out = []
    for c in packages:
        groups = {g: n for (p, g), n in edge.items() if p == c.name}
        for group, n in conn.execute(
            "SELECT client_group, SUM(n) FROM decision_day_package_groups "
            "WHERE package = ? AND day >= ? GROUP BY client_group",
            (c.name, first_day),
        ):
            groups[str(group)] = groups.get(str(group), 0) + int(n)
        ordered = tuple(sorted(groups.items(), key=lambda item: (-item[1], item[0])))
        out.append(Count(c.name, c.block, c.hide, c.warn, ordered))
    return tuple(out)


def campaign_of(reasons: Sequence[str]) -> tuple[str, int] | None:
    """The campaign id and size a decision's reasons name (the detector's campaign finding
    says `one of N packages of campaign ID linked by ...`), or None (pure)."""
    for reason in reasons:
        found = _CAMPAIGN.search(reason)
        if found:
            return found.group(2), int(found.group(1))
    return None


def _campaigns(conn: sqlite3.Connection, packages: list[Count]) -> tuple[Count, ...]:
    """Campaigns among the most refused packages, from each one's latest decision."""
    by_id: dict[str, tuple[int, list[Count]]] = {}
    for c in packages:
        row = conn.execute(
            "SELECT reasons FROM decisions INDEXED BY decisions_package WHERE package = ? "
            "ORDER BY time DESC LIMIT 1",
            (c.name,),
        ).fetchone()
        if row is None:
            continue
        found = campaign_of(_reasons(row[0]))
        if found is None:
            continue
        size, members = by_id.setdefault(found[0], (found[1], []))
        by_id[found[0]] = (max(size, found[1]), [*members, c])
    ranked = sorted(by_id.items(), key=lambda item: (-sum(m.total for m in item[1][1]), item[0]))
    return tuple(
        Count(
            cid,
            sum(m.block for m in members),
            sum(m.hide for m in members),
            sum(m.warn for m in members),
            tuple((m.name, m.total) for m in members),
            size,
        )
        for cid, (size, members) in ranked[:TOP]
    )


def _reasons(text: Any) -> tuple[str, ...]:
    try:
        got = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return ()
    return tuple(str(r) for r in got) if isinstance(got, list) else ()


# -- the decision log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What the decision log page shows: exact or glob package, action, rule, group, via."""

    package: str = ""
    action: str = ""
    rule: str = ""
    group: str | None = None  # "" is anonymous; None: any
    via: str = ""
    before: tuple[float, int] | None = None  # keyset cursor: older than (time, id)

    @classmethod
    def of(cls, params: dict[str, str]) -> LogFilter:
        """From query parameters (unknown ones ignored, over-long values cut; pure)."""

        def get(key: str) -> str:
            return params.get(key, "").strip()[:MAX_FILTER]

        before = None
        cursor = get("before")
        if cursor:
            t, _, i = cursor.partition(":")
            with contextlib.suppress(ValueError):
                before = (float(t), int(i))
        group = params.get("group")
        return cls(
            get("package"),
            get("action"),
            get("rule"),
            None if group is None or group == "*" else group.strip()[:MAX_FILTER],
            get("via"),
            before,
        )

    def params(self, before: tuple[float, int] | None = None) -> dict[str, str]:
        """Query parameters that show this filter (at cursor `before`)."""
        out = {
            k: v
            for k, v in (
                ("package", self.package),
                ("action", self.action),
                ("rule", self.rule),
                ("via", self.via),
            )
            if v
        }
        if self.group is not None:
            out["group"] = self.group
        if before is not None:
            out["before"] = f"{before[0]!r}:{before[1]}"
        return out


@dataclass(frozen=True, slots=True)
class LogPage:
    rows: tuple[tuple[int, DecisionRecord], ...]
    older: tuple[float, int] | None  # cursor of the next page, None when this is the last


_RECORD_COLUMNS = [
    "time",
    "package",
    "version",
    "action",
    "intended",
    "rule",
    "label",
    "score",
    "reasons",
    "waiver",
    "via",
    "client",
    "user_agent",
    "token",
    "request_id",
    "policy",
    "policy_digest",
    "client_group",
]
_SELECT = f"SELECT id, {', '.join(_RECORD_COLUMNS)} FROM decisions"  # noqa: S608


def _record(row: Sequence[Any]) -> tuple[int, DecisionRecord]:
    values = dict(zip(_RECORD_COLUMNS, row[1:], strict=True))
    values["reasons"] = _reasons(values["reasons"])
    values["group"] = values.pop("client_group") or ""
    return int(row[0]), DecisionRecord(**values)


def log_page(path: Path, f: LogFilter, size: int = PAGE_SIZE) -> LogPage:
    """One page of the log, newest first, older than the filter's cursor."""
    with reading(path) as conn:
        if conn is None:
            return LogPage((), None)
        _ensure_columns(conn)
        where: list[str] = []
        args: list[Any] = []
        index = "decisions_time"
        if f.package:
            glob = any(ch in f.package for ch in "*?[")
            where.append("package GLOB ?" if glob else "package = ?")
            args.append(f.package)
            if not glob or _rare(conn, f.package):
                index = "decisions_package"
        for column, value, idx in (
            ("rule", f.rule, "decisions_rule_time"),
            ("client_group", f.group, "decisions_group_time"),
            ("action", f.action, "decisions_action_time"),
        ):
            if value is not None and (value or column == "client_group"):
                where.append(f"{column} = ?")
                args.append(value)
                if index == "decisions_time":
                    index = idx
        if f.via:
            where.append("via = ?")
            args.append(f.via)
        if f.before is not None:
            where.append("(time < ? OR (time = ? AND id < ?))")
            args.extend([f.before[0], f.before[0], f.before[1]])
        sql = f"{_SELECT} INDEXED BY {index}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, id DESC LIMIT ?"
        args.append(size + 1)
        rows = [_record(r) for r in conn.execute(sql, args)]
    more = len(rows) > size
    rows = rows[:size]
    older = (rows[-1][1].time, rows[-1][0]) if more and rows else None
    return LogPage(tuple(rows), older)


def _rare(conn: sqlite3.Connection, glob: str) -> bool:
    """Whether a package glob matches few rows (then its rows are read through the package
    index and sorted; a glob matching many is better found walking the log newest first).
    A glob starting with a wildcard cannot use the package index at all."""
    if glob.startswith(("*", "?", "[")):
        return False
    found = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM decisions INDEXED BY decisions_package "
        "WHERE package GLOB ? LIMIT ?)",
        (glob, RARE_GLOB),
    ).fetchone()
    return int(found[0]) < RARE_GLOB


def _ensure_columns(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    missing = [c for c in _RECORD_COLUMNS if c not in have]
    if missing:
        raise sqlite3.OperationalError(
            f"the decision log lacks {', '.join(missing)}: start `floodgate serve` once to "
            "upgrade it"
        )


# -- a package --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionView:
    """One version of a package: its verdict (if assessed) and its latest decisions."""

    version: str
    verdict: Verdict | None
    latest: DecisionRecord | None  # the newest decision logged for it
    decisions: int  # decisions logged for it (within the rows read)
    by_action: dict[str, int] = field(default_factory=dict)


def package_view(
    decisions: Path, verdicts: Path, name: str, detector_version: str
) -> list[VersionView]:
    """Each version of `name` Floodgate assessed or decided on, newest decision first."""
    latest: dict[str, DecisionRecord] = {}
    counts: dict[str, dict[str, int]] = {}
    with reading(decisions) as conn:
        if conn is not None:
            _ensure_columns(conn)
            newest: dict[str, int] = {}  # version -> id of its newest decision
            for row_id, version, action in conn.execute(
                "SELECT id, version, action FROM decisions INDEXED BY decisions_package "
                "WHERE package = ? ORDER BY time DESC, id DESC LIMIT ?",
                (name, PACKAGE_ROWS),
            ):
                newest.setdefault(str(version), int(row_id))
                by = counts.setdefault(str(version), {})
                by[str(action)] = by.get(str(action), 0) + 1
            ids = list(newest.values())
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for row in conn.execute(f"{_SELECT} WHERE id IN ({marks})", chunk):
                    _, r = _record(row)
                    latest[r.version] = r
            latest = {v: latest[v] for v in newest if v in latest}  # newest decision first
    found: dict[str, Verdict] = {}
    with reading(verdicts) as conn:
        if conn is not None and _has_table(conn, "verdicts"):
            for version, body in conn.execute(  # tarball-scanned and newer rows come last
                "SELECT version, body FROM verdicts "
                "WHERE name = ? AND detector_version = ? ORDER BY tarball_scanned, stored_at",
                (name, detector_version),
            ):
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, ValueError):
                    found[str(version)] = Verdict.from_json(orjson.loads(body))
    versions = list(latest) + sorted(v for v in found if v not in latest)
    return [
        VersionView(
            v,
            found.get(v),
            latest.get(v),
            sum(counts.get(v, {}).values()),
            counts.get(v, {}),
        )
        for v in versions
    ]


REGISTRY_ROWS = 200  # newest hosted-package events shown


@dataclass(frozen=True, slots=True)
class RegistryFilter:
    """What the Registry page shows: one hosted package's events, one kind of event."""

    package: str = ""
    event: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> RegistryFilter:
        """From query parameters (pure): an unknown event kind is no filter, an over-long
        package name is cut."""
        event = params.get("event", "").strip()
        return cls(
            params.get("package", "").strip()[:MAX_FILTER],
            event if event in EVENT_KINDS else "",
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.event,) if self.event else ()

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("package", self.package), ("event", self.event)) if v}
