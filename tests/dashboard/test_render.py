"""The dashboard's HTML (pure functions): hostile values are escaped everywhere, the chart and
the policy summaries say what they should."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from proxy.dashboard import render
from proxy.dashboard.chart import nice_max, stacked_bars
from proxy.dashboard.queries import Count, LogFilter, LogPage, Overview, VersionView
from proxy.decisions import DecisionRecord
from proxy.detect.evaluate import DETECTOR_VERSION
from proxy.detect.model import Confidence, Finding, Label, Severity, Verdict
from proxy.npm.semver import Range
from proxy.policy.model import Action, Match, Mode, Policy, Rule, Waiver

EVIL = '<script>alert("x")</script>&"\''
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#x27;"


def record(**kw: object) -> DecisionRecord:
    values: dict[str, object] = {
        "time": 1_780_000_000.0,
        "package": EVIL,
        "version": EVIL,
        "action": "block",
        "intended": "block",
        "rule": EVIL,
        "label": "spam",
        "score": 90,
        "reasons": (EVIL,),
        "waiver": EVIL,
        "via": "tarball",
        "client": EVIL,
        "user_agent": EVIL,
        "token": "",
        "request_id": "1",
        "policy": EVIL,
        "policy_digest": "d",
        "group": EVIL,
    }
    values.update(kw)
    return DecisionRecord(**values)  # type: ignore[arg-type]


def assert_escaped(html: str) -> None:
    assert "<script" not in html
    assert ESCAPED in html or "&lt;script&gt;" in html


def test_every_page_escapes_hostile_values() -> None:
    count = Count(EVIL, 1, 0, 0, ((EVIL, 1),), 3)
    series = {"block": [1], "hide": [0], "warn": [0]}
    totals = {"block": 1, "hide": 0, "warn": 0}
    o = Overview(0.0, 3600.0, 1, series, totals, (count,), (count,), (count,), (count,))
    assert_escaped(render.overview_page(o, 1, EVIL))
    assert_escaped(render.log_page(LogPage(((1, record()),), (1.0, 1)), LogFilter(EVIL), EVIL))
    finding = Finding("tea-yaml", Severity.HIGH, Confidence.HIGH, EVIL, {EVIL: [EVIL, 1]})
    verdict = Verdict(EVIL, EVIL, 90, Label.SPAM, (finding,), DETECTOR_VERSION, (EVIL,), True)
    html = render.package_page(EVIL, [VersionView(EVIL, verdict, record(), 1, {"block": 1})], EVIL)
    assert_escaped(html)
    rule = Rule(EVIL, Match(names=(EVIL,)), Action.BLOCK, EVIL)
    waiver = Waiver(EVIL, None, EVIL, EVIL, date(2030, 1, 1))
    policy = Policy((rule,), (waiver,), name=EVIL, digest=EVIL, source=Path(EVIL))
    assert_escaped(render.policies_page([(EVIL, policy)], date(2029, 1, 1), EVIL))
    assert_escaped(render.refusal_page(403, EVIL))


def test_links_carry_names_as_query_parameters() -> None:
    assert render.package_url("@scope/a&b") == "/-/dashboard/package?name=%40scope%2Fa%26b"
    f = LogFilter(package="@s/*", group="")
    assert render.url("/log", f.params((1.5, 7))) == (
        "/-/dashboard/log?package=%40s%2F%2A&group=&before=1.5%3A7"
    )


@pytest.mark.parametrize(
    ("expires", "kind", "text"),
    [
        (date(2026, 5, 30), "expired", "expired 2 days ago"),
        (date(2026, 5, 31), "expired", "expired 1 day ago"),
        (date(2026, 6, 1), "soon", "expires today"),
        (date(2026, 6, 2), "soon", "expires in 1 day"),
        (date(2026, 6, 15), "soon", "expires in 14 days"),
        (date(2026, 6, 16), "active", "active, 15 days left"),
    ],
)
def test_waiver_status(expires: date, kind: str, text: str) -> None:
    w = Waiver("fg-farm", None, "vetted", "sec@example.com", expires)
    assert render.waiver_status(w, date(2026, 6, 1)) == (kind, text)


@pytest.mark.parametrize(
    ("match", "text"),
    [
        (Match(), "everything"),
        (Match(labels=(Label.SPAM,), signals=("tea-yaml", "tea-wallet-reuse")),
         "labels: spam; signals: tea-yaml, tea-wallet-reuse"),
        (Match(names=("@corp/*",), versions=Range.parse(">=2")), "names: @corp/*; versions: >=2"),
        (Match(min_score=70, version_younger_than=timedelta(days=3)),
         "min score: 70; version younger than: 3d"),
        (Match(install_scripts=False, osv=("*",)), "osv: *; install scripts: False"),
    ],
)  # fmt: skip
def test_match_summary(match: Match, text: str) -> None:
    assert render.match_summary(match) == text


def test_policies_page_lists_rules_and_waivers_with_status() -> None:
    rule = Rule("token-farming", Match(labels=(Label.SPAM,)), Action.BLOCK)
    waivers = (
        Waiver("fg-old", None, "was vetted", "a@example.invalid", date(2026, 1, 1)),
        Waiver("fg-new", Range.parse("^1.0.0"), "vetted", "b@example.invalid", date(2027, 1, 1)),
    )
    policy = Policy((rule,), waivers, Mode.DRY_RUN, name="corp", digest="abc123")
    html = render.policies_page([("Everyone", policy)], date(2026, 6, 1), "alice (admin)")
    assert 'data-rule="token-farming"' in html
    assert 'data-waiver="fg-old"' in html
    assert "expired 151 days ago" in html
    assert 'data-waiver="fg-new@^1.0.0"' in html
    assert "active, 214 days left" in html
    assert "mode dry-run" in html
    assert "Enforcement is off" in render.policies_page([], date(2026, 6, 1), "x")


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (250, 500), (1001, 2000)]
)
def test_nice_max(value: int, top: int) -> None:
    assert nice_max(value) == top


def test_chart_stacks_bars_with_counts_and_titles() -> None:
    svg = stacked_bars({"block": [0, 2, 1], "hide": [0, 1, 0], "warn": [0, 0, 4]}, 0.0, 24)
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert svg.count('<g class="bar"') == 3
    assert svg.count("<rect") == 4  # empty segments are not drawn
    assert "<title>Jan 02: 2 block, 1 hide, 0 warn</title>" in svg
    assert 'class="warn"' in svg
    assert 'data-count="4"' in svg
