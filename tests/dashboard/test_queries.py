"""The dashboard's queries over a real decision log (written by `DecisionLog`) and a real
verdict store, with real-shaped rows."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.dashboard.queries import (
    HOUR,
    LogFilter,
    campaign_of,
    log_page,
    overview,
    package_view,
    prepare,
)
from proxy.decisions import DecisionLog, DecisionRecord
from proxy.detect.evaluate import DETECTOR_VERSION
from proxy.detect.model import Confidence, Finding, Label, Severity, Verdict
from proxy.detect.store import VerdictStore

NOW = 1_780_000_000.0  # a fixed "now", so that buckets are predictable
CAMPAIGN_REASON = (
    "one of 4 packages of campaign c-1a2b linked by code, wallet: fg-farm-b, fg-farm-c, fg-farm-d"
)


def row(
    package: str,
    action: str,
    ago_hours: float,
    *,
    rule: str = "spam",
    group: str = "",
    version: str = "1.0.0",
    reasons: tuple[str, ...] = ("a tea.yaml wallet",),
    via: str = "tarball",
) -> DecisionRecord:
    return DecisionRecord(
        time=NOW - ago_hours * HOUR,
        package=package,
        version=version,
        action=action,
        intended=action,
        rule=rule,
        label="spam" if action != "allow" else "clean",
        score=90 if action != "allow" else 0,
        reasons=reasons,
        waiver="",
        via=via,
        client="127.0.0.1",
        user_agent="npm/11",
        token="runner-7" if group else "",
        request_id="1",
        policy="default",
        policy_digest="d",
        group=group,
    )


ROWS = [
    row("fg-farm-a", "block", 1, rule="token-farming", group="ci", reasons=(CAMPAIGN_REASON,)),
    row("fg-farm-a", "block", 2, rule="token-farming", group="ci", reasons=(CAMPAIGN_REASON,)),
    row("fg-farm-a", "block", 3, rule="token-farming", group="developers"),
    row("fg-farm-b", "block", 5, rule="token-farming", reasons=(CAMPAIGN_REASON,)),
    row("fg-mixed", "hide", 26, rule="spam", group="ci", version="1.1.0"),
    row("fg-hello", "warn", 30, rule="weak-signals", group="developers"),
    row("fg-hello", "warn", 200, rule="weak-signals"),  # 8 days ago: outside 7 days
    row("fg-clean", "allow", 0.5, rule=""),
]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.sqlite3"
    log = DecisionLog(path)
    log.close()
    prepare(path)
    log = DecisionLog(path)
    log.record(*ROWS)
    log.close()
    return path


def test_overview_counts_charts_and_ranks(log_path: Path) -> None:
    o = overview(log_path, NOW, days=7, bucket_hours=4)
    assert o.totals == {"block": 4, "hide": 1, "warn": 1}
    assert len(o.series["block"]) == 42
    assert sum(o.series["block"]) == 4
    assert o.series["block"][-1] == 3  # 1, 2 and 3 hours ago share the last 4-hour bucket...
    assert o.series["block"][-2] == 1  # ...5 hours ago is in the one before
    assert [c.name for c in o.packages] == ["fg-farm-a", "fg-farm-b", "fg-mixed", "fg-hello"]
    assert o.packages[0].block == 3
    assert o.packages[0].groups == (("ci", 2), ("developers", 1))
    assert o.packages[1].groups == (("", 1),)
    assert [(c.name, c.block, c.hide, c.warn) for c in o.rules] == [
        ("token-farming", 4, 0, 0),
        ("spam", 0, 1, 0),
        ("weak-signals", 0, 0, 1),
    ]
    assert {c.name: c.total for c in o.groups} == {"ci": 3, "developers": 2, "": 1}
    [campaign] = o.campaigns
    assert (campaign.name, campaign.size, campaign.block) == ("c-1a2b", 4, 4)
    assert [m for m, _ in campaign.groups] == ["fg-farm-a", "fg-farm-b"]
    # 30 days: the warning of 8 days ago is in, in daily buckets.
    month = overview(log_path, NOW, days=30, bucket_hours=24)
    assert month.totals["warn"] == 2
    assert len(month.series["warn"]) == 30


def test_prepare_fills_in_an_older_log_once(tmp_path: Path) -> None:
    path = tmp_path / "decisions.sqlite3"
    log = DecisionLog(path)
    log.record(*ROWS)
    log.close()
    prepare(path)  # counts the rows already there...
    prepare(path)  # ...once
    log = DecisionLog(path)
    log.record(row("fg-late", "block", 0))  # and the trigger counts new ones
    log.close()
    assert overview(path, NOW, days=7, bucket_hours=4).totals == {"block": 5, "hide": 1, "warn": 1}


def test_a_missing_log_is_an_empty_overview(tmp_path: Path) -> None:
    o = overview(tmp_path / "none.sqlite3", NOW, days=1, bucket_hours=1)
    assert o.totals == {"block": 0, "hide": 0, "warn": 0}
    assert o.packages == ()
    assert log_page(tmp_path / "none.sqlite3", LogFilter()).rows == ()


@pytest.mark.parametrize(
    ("params", "packages"),
    [
        ({}, ["fg-clean", "fg-farm-a", "fg-farm-a", "fg-farm-a", "fg-farm-b", "fg-mixed",
              "fg-hello", "fg-hello"]),
        ({"package": "fg-farm-a"}, ["fg-farm-a"] * 3),
        ({"package": "fg-farm-*"}, ["fg-farm-a"] * 3 + ["fg-farm-b"]),
        ({"package": "*mix*"}, ["fg-mixed"]),
        ({"action": "warn"}, ["fg-hello", "fg-hello"]),
        ({"rule": "token-farming", "group": "ci"}, ["fg-farm-a", "fg-farm-a"]),
        ({"group": ""}, ["fg-clean", "fg-farm-b", "fg-hello"]),
        ({"group": "*"}, ["fg-clean", "fg-farm-a", "fg-farm-a", "fg-farm-a", "fg-farm-b",
                          "fg-mixed", "fg-hello", "fg-hello"]),
        ({"package": "fg-farm-a", "action": "allow"}, []),
        ({"package": "<script>alert(1)</script>"}, []),
    ],
)  # fmt: skip
def test_log_filters(log_path: Path, params: dict[str, str], packages: list[str]) -> None:
    page = log_page(log_path, LogFilter.of(params))
    assert [r.package for _, r in page.rows] == packages
    assert page.older is None


def test_log_pages_are_keyset_cursors_newest_first(log_path: Path) -> None:
    seen: list[str] = []
    f = LogFilter()
    pages = 0
    while True:
        page = log_page(log_path, f, size=3)
        pages += 1
        seen += [f"{r.package}@{r.time}" for _, r in page.rows]
        if page.older is None:
            break
        f = LogFilter.of(f.params(page.older))
        assert f.before == page.older  # the cursor survives its trip through a URL
    assert pages == 3
    assert len(seen) == len(ROWS) == len(set(seen))
    times = [float(s.rsplit("@", 1)[1]) for s in seen]
    assert times == sorted(times, reverse=True)


def test_log_filter_from_hostile_parameters() -> None:
    f = LogFilter.of({"package": "x" * 1000, "before": "nan:zz", "action": " block "})
    assert len(f.package) == 214
    assert f.before is None
    assert f.action == "block"
    assert f.group is None


def test_campaign_of() -> None:
    assert campaign_of(("unrelated", CAMPAIGN_REASON)) == ("c-1a2b", 4)
    assert campaign_of(("a tea.yaml wallet",)) is None


def test_package_view_joins_verdicts_and_decisions(log_path: Path, tmp_path: Path) -> None:
    verdicts_path = tmp_path / "verdicts.sqlite3"
    store = VerdictStore(verdicts_path)
    finding = Finding(
        "tea-yaml",
        Severity.HIGH,
        Confidence.HIGH,
        "a tea.yaml registration file",
        {"wallet": "0xabc", "file": "tea.yaml"},
    )
    meta = Verdict("fg-farm-a", "1.0.0", 60, Label.SUSPICIOUS, (), DETECTOR_VERSION)
    store.put(meta, "sha512-a")
    scanned = replace(meta, score=95, label=Label.SPAM, findings=(finding,), tarball_scanned=True)
    store.put(scanned, "sha512-a")
    store.put(replace(meta, version="0.9.0"), "sha512-b")  # assessed, never decided on
    store.close()
    views = package_view(log_path, verdicts_path, "fg-farm-a", DETECTOR_VERSION)
    assert [v.version for v in views] == ["1.0.0", "0.9.0"]
    first = views[0]
    assert first.verdict is not None
    assert first.verdict.tarball_scanned
    assert first.verdict.findings[0].evidence["wallet"] == "0xabc"
    assert first.latest is not None
    assert first.latest.group == "ci"
    assert (first.decisions, first.by_action) == (3, {"block": 3})
    assert views[1].latest is None
    assert package_view(log_path, tmp_path / "none", "nobody", DETECTOR_VERSION) == []


def test_queries_use_indexes_not_scans(log_path: Path) -> None:
    """The plans of the page queries: every access to decisions goes through an index."""
    conn = sqlite3.connect(log_path)
    sqls = [
        "SELECT package, COUNT(*) FROM decisions INDEXED BY decisions_action_time "
        "WHERE action = 'block' AND time >= 0 GROUP BY package",
        "SELECT * FROM decisions INDEXED BY decisions_rule_time WHERE rule = 'x' "
        "AND (time < 1 OR (time = 1 AND id < 5)) ORDER BY time DESC, id DESC LIMIT 51",
        "SELECT * FROM decisions INDEXED BY decisions_time ORDER BY time DESC, id DESC LIMIT 51",
    ]
    for sql in sqls:
        steps = [str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        on_table = [s for s in steps if " decisions" in s]
        assert on_table, steps
        assert all("INDEX" in s for s in on_table), steps
    conn.close()


def test_window_counts_are_exact_across_day_boundaries(tmp_path: Path) -> None:
    """Whole days come from the day tables, the rest of the window from the index: the sum
    must be what counting the rows gives, wherever the window starts."""
    import random

    rng = random.Random(3)
    actions = ["block", "hide", "warn", "allow"]
    rows = [
        row(
            f"p{rng.randrange(6)}",
            rng.choice(actions),
            rng.random() * 24 * 9,
            rule=rng.choice(["r1", "r2"]),
            group=rng.choice(["", "ci"]),
        )
        for _ in range(400)
    ]
    path = tmp_path / "decisions.sqlite3"
    DecisionLog(path).close()
    prepare(path)
    log = DecisionLog(path)
    log.record(*rows)
    log.close()
    for now in (NOW, NOW + 5 * HOUR, NOW + 13 * HOUR + 7, NOW + 23 * HOUR):
        for days, bucket in ((1, 1), (7, 4)):
            o = overview(path, now, days, bucket)
            inside = [r for r in rows if o.since <= r.time and r.action != "allow"]
            for counts, key in ((o.rules, "rule"), (o.groups, "group")):
                want: dict[str, int] = {}
                for r in inside:
                    want[getattr(r, key)] = want.get(getattr(r, key), 0) + 1
                assert {c.name: c.total for c in counts} == want
            by_package: dict[str, dict[str, int]] = {}
            for r in inside:
                groups = by_package.setdefault(r.package, {})
                groups[r.group] = groups.get(r.group, 0) + 1
            assert {c.name: dict(c.groups) for c in o.packages} == by_package
            assert sum(o.totals.values()) == len([r for r in inside if r.time <= now])


def test_common_and_rare_globs_find_the_same_rows(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = LogFilter.of({"package": "fg-farm-*"})
    through_package_index = log_page(log_path, f)
    monkeypatch.setattr("proxy.dashboard.queries.RARE_GLOB", 1)  # every glob is "common"
    assert log_page(log_path, f) == through_package_index
    assert len(through_package_index.rows) == 4


def test_warm_computes_the_past_days_views_then_read(log_path: Path) -> None:
    from proxy.dashboard import queries

    now = NOW + 3 * 86400  # every row is in a past day of the 7- and 30-day windows
    queries.warm(log_path, now, [(7, 4), (30, 24)])
    cached = [k for k in queries._past if k[0] == str(log_path)]
    assert len(cached) == 2
    o = overview(log_path, now, days=30, bucket_hours=24)
    assert [k for k in queries._past if k[0] == str(log_path)] == cached  # read, not redone
    assert (o.totals, o.packages[0].name) == ({"block": 4, "hide": 1, "warn": 2}, "fg-farm-a")
