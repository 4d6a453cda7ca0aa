"""The dashboard's pages as HTML strings (pure): every value from the log, the verdicts or
the policy goes through `e()` (package names, reasons and evidence are hostile input), and
every link is built with `urlencode`. No script anywhere; forms use GET and change nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from html import escape
from urllib.parse import urlencode

from proxy.dashboard.chart import ORDER, stacked_bars
from proxy.dashboard.queries import (
    Count,
    LogFilter,
    LogPage,
    Overview,
    RegistryFilter,
    VersionView,
)
from proxy.decisions import DecisionRecord
from proxy.detect.model import Verdict
from proxy.hosted.store import EVENT_KINDS, RegistryEvent
from proxy.policy.model import Match, Policy, Waiver

BASE = "/-/dashboard"
CSS = f"{BASE}/assets/dashboard.css"
WINDOWS = ((1, "24 hours"), (7, "7 days"), (30, "30 days"))
ACTIONS = ("block", "hide", "warn", "monitor", "allow")
VIAS = ("packument", "tarball", "audit")
MAX_EVIDENCE = 300  # characters of one evidence value shown
MAX_REASON = 200  # characters of a reason in the log table (all of it on hover)
SOON = 14  # days before a waiver's expiry it is marked as expiring soon


def e(value: object) -> str:
    """Escape anything for HTML text and attribute values."""
    return escape(str(value), quote=True)


def url(path: str, params: Mapping[str, str] | None = None) -> str:
    query = urlencode(dict(params)) if params else ""
    return f"{BASE}{path}" + (f"?{query}" if query else "")


def package_url(name: str) -> str:
    return url("/package", {"name": name})


def when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def group_name(group: str) -> str:
    return group or "anonymous"


def badge(kind: str, text: str | None = None) -> str:
    return f'<span class="badge {e(kind)}">{e(text if text is not None else kind)}</span>'


def page(title: str, current: str, who: str, body: str) -> str:
    """The frame every page shares: navigation, package search, who is looking."""
    nav = "".join(
        f'<a href="{url(path)}"{" class=current" if key == current else ""}>{label}</a>'
        for key, path, label in (
            ("overview", "", "Overview"),
            ("log", "/log", "Decisions"),
            ("policies", "/policies", "Policies"),
            ("registry", "/registry", "Registry"),
        )
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · Floodgate</title>"
        f'<link rel="stylesheet" href="{CSS}"><link rel="icon" href="data:,"></head><body>'
        f'<header class="top"><a class="brand" href="{url("")}">Floodgate</a>'
        f"<nav>{nav}</nav>"
        f'<form action="{url("/package")}" method="get" role="search">'
        '<input name="name" placeholder="Package name" aria-label="Package name"></form>'
        f'<span class="who">{e(who)}</span></header>'
        f"<main>{body}</main>"
        "<footer>Read-only view of Floodgate's decision log, verdicts, policy and hosted "
        "packages' events. "
        "Times are UTC.</footer></body></html>"
    )


# -- overview ---------------------------------------------------------------------------------


def overview_page(o: Overview, days: int, who: str) -> str:
    windows = "".join(
        f'<a href="{url("", {"days": str(d)})}"{" class=current" if d == days else ""}>{label}</a>'
        for d, label in WINDOWS
    )
    cards = "".join(
        f'<div class="card {a}" data-action="{a}"><div class="n">{o.totals[a]:,}</div>'
        f'<div class="what">{label} in the last {e(_window_name(days))}</div></div>'
        for a, label in (("block", "blocks"), ("hide", "hides"), ("warn", "warnings"))
    )
    legend = "".join(f'<span><i class="swatch {a}"></i>{a}</span>' for a in ORDER)
    chart = stacked_bars(o.series, o.since, o.bucket_hours)
    every = f"{o.bucket_hours} hours" if o.bucket_hours > 1 else "hour"
    body = (
        f'<h1>Overview</h1><p class="window">Window: {windows}</p>'
        f'<div class="cards">{cards}</div>'
        f'<section class="panel" id="chart"><h2>Blocks, hides and warnings per {every}</h2>'
        f'<p class="legend">{legend}</p>{chart}</section>'
        '<div class="grid2">'
        + _top_packages(o.packages)
        + _top_table("rules", "Top rules", "Rule", o.rules, "rule")
        + _top_table("groups", "Groups", "Group", o.groups, "group")
        + _campaigns(o.campaigns)
        + "</div>"
    )
    return page("Overview", "overview", who, body)


def _window_name(days: int) -> str:
    return next((label for d, label in WINDOWS if d == days), f"{days} days")


def _counts_cells(c: Count) -> str:
    return "".join(f'<td class="num">{getattr(c, a):,}</td>' for a in ("block", "hide", "warn"))


COUNT_HEADS = '<th class="num">Blocks</th><th class="num">Hides</th><th class="num">Warns</th>'


def _top_packages(rows: Sequence[Count]) -> str:
    body = "".join(
        f'<tr><td><a class="mono" href="{e(package_url(c.name))}">{e(c.name)}</a></td>'
        + _counts_cells(c)
        + "<td>"
        + ", ".join(
            f'<a href="{e(url("/log", {"package": c.name, "group": g}))}">'
            f"{e(group_name(g))}</a> ({n:,})"
            for g, n in c.groups
        )
        + "</td></tr>"
        for c in rows
    )
    return _panel(
        "packages",
        "Top blocked packages",
        f"<tr><th>Package</th>{COUNT_HEADS}<th>Groups</th></tr>",
        body,
    )


def _top_table(key: str, title: str, head: str, rows: Sequence[Count], param: str) -> str:
    body = "".join(
        f'<tr><td><a href="{e(url("/log", {param: c.name}))}">'
        f"{e(group_name(c.name) if param == 'group' else c.name or '(none)')}</a></td>"
        + _counts_cells(c)
        + "</tr>"
        for c in rows
    )
    return _panel(key, title, f"<tr><th>{head}</th>{COUNT_HEADS}</tr>", body)


def _campaigns(rows: Sequence[Count]) -> str:
    body = "".join(
        f'<tr><td class="mono">{e(c.name)}</td><td class="num">{c.size:,}</td>'
        + _counts_cells(c)
        + "<td>"
        + ", ".join(f'<a href="{e(package_url(m))}">{e(m)}</a>' for m, _ in c.groups)
        + "</td></tr>"
        for c in rows
    )
    return _panel(
        "campaigns",
        "Campaigns among the top blocked packages",
        f'<tr><th>Campaign</th><th class="num">Size</th>{COUNT_HEADS}<th>Packages</th></tr>',
        body,
    )


def _panel(key: str, title: str, head: str, body: str) -> str:
    content = (
        f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"
        if body
        else '<p class="empty">Nothing in this window.</p>'
    )
    return f'<section class="panel" id="{key}"><h2>{e(title)}</h2>{content}</section>'


# -- the decision log -------------------------------------------------------------------------


def log_page(p: LogPage, f: LogFilter, who: str) -> str:
    def options(values: Iterable[str], chosen: str) -> str:
        return '<option value="">any</option>' + "".join(
            f"<option{' selected' if v == chosen else ''}>{e(v)}</option>" for v in values
        )

    group = "*" if f.group is None else f.group
    form = (
        f'<form class="filters panel" method="get" action="{url("/log")}">'
        f'<label>Package (name or glob)<input name="package" value="{e(f.package)}"></label>'
        f'<label>Action<select name="action">{options(ACTIONS, f.action)}</select></label>'
        f'<label>Rule<input name="rule" value="{e(f.rule)}"></label>'
        f'<label>Group (* any, empty: anonymous)<input name="group" value="{e(group)}"></label>'
        f'<label>Via<select name="via">{options(VIAS, f.via)}</select></label>'
        "<button>Search</button></form>"
    )
    rows = "".join(_log_row(i, r) for i, r in p.rows)
    table = (
        '<section class="panel"><table id="log"><thead><tr><th>Time</th><th>Action</th>'
        "<th>Package</th><th>Rule</th><th>Group</th><th>Verdict</th><th>Via</th>"
        f"<th>Client</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else '<section class="panel"><p class="empty">No decision matches.</p>'
    )
    pager = '<div class="pager">'
    if f.before is not None:
        pager += f'<a class="secondary" href="{e(url("/log", f.params()))}">Newest</a>'
    if p.older is not None:
        pager += f'<a rel="next" href="{e(url("/log", f.params(p.older)))}">Older</a>'
    pager += "</div></section>"
    return page("Decisions", "log", who, f"<h1>Decisions</h1>{form}{table}{pager}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _log_row(row_id: int, r: DecisionRecord) -> str:
    reason = r.reasons[0] if r.reasons else ""
    action = badge(r.action)
    if r.intended != r.action:
        action += f' <span class="muted">(rule says {e(r.intended)})</span>'
    verdict = f"{badge(r.label)} {r.score}" if r.label else '<span class="muted">-</span>'
    return (
        f'<tr data-id="{row_id}"><td class="mono">{when(r.time)}</td><td>{action}</td>'
        f'<td class="nowrap"><a class="mono" href="{e(package_url(r.package))}">'
        f'{e(r.package)}</a><span class="mono">@{e(r.version)}</span></td>'
        f'<td><a href="{e(url("/log", {"rule": r.rule}))}">{e(r.rule or "-")}</a></td>'
        f"<td>{e(group_name(r.group))}</td><td>{verdict}</td><td>{e(r.via)}</td>"
        f'<td class="mono">{e(r.client)}</td>'
        f'<td class="reason" title="{e(reason)}">{e(_cut(reason, MAX_REASON))}</td></tr>'
    )


# -- the hosted registry's events -------------------------------------------------------------


def registry_page(
    events: Sequence[RegistryEvent],
    names: Sequence[str],
    f: RegistryFilter,
    who: str,
    hosting: bool,
    limit: int,
) -> str:
    """The hosted packages' publishes, unpublishes, deprecations, dist-tag changes and refused
    attempts, newest first, filtered by package and kind."""
    if not hosting:
        body = (
            '<h1>Registry</h1><section class="panel"><p class="empty">This Floodgate hosts no '
            "packages: it hosts the internal scopes and names (internal_scopes, "
            "internal_names) when no internal_upstream serves them.</p></section>"
        )
        return page("Registry", "registry", who, body)
    choices = list(names)
    if f.package and f.package not in choices:
        choices.insert(0, f.package)
    packages = '<option value="">any</option>' + "".join(
        f"<option{' selected' if n == f.package else ''}>{e(n)}</option>" for n in choices
    )
    kinds = '<option value="">any</option>' + "".join(
        f"<option{' selected' if k == f.event else ''}>{e(k)}</option>" for k in EVENT_KINDS
    )
    form = (
        f'<form class="filters panel" method="get" action="{url("/registry")}">'
        f'<label>Package<select name="package">{packages}</select></label>'
        f'<label>Event<select name="event">{kinds}</select></label>'
        "<button>Show</button></form>"
    )
    rows = "".join(_event_row(ev) for ev in events)
    shown = f"{len(events):,} event{'s' if len(events) != 1 else ''}" + (
        f" (the newest {limit:,})" if len(events) >= limit else ""
    )
    table = (
        f'<section class="panel"><h2>{e(shown)}, newest first</h2><table id="events"><thead>'
        "<tr><th>Time</th><th>Event</th><th>Package</th><th>Detail</th><th>Group</th>"
        f"<th>Token</th><th>Client</th></tr></thead><tbody>{rows}</tbody></table></section>"
        if rows
        else '<section class="panel"><p class="empty">No event matches.</p></section>'
    )
    return page("Registry", "registry", who, f"<h1>Registry</h1>{form}{table}")


def _event_row(ev: RegistryEvent) -> str:
    version = f'<span class="mono">@{e(ev.version)}</span>' if ev.version else ""
    return (
        f'<tr data-event="{e(ev.event)}" data-package="{e(ev.package)}">'
        f'<td class="mono nowrap">{when(ev.time)}</td><td>{badge("ev-" + ev.event, ev.event)}</td>'
        f'<td class="nowrap"><a class="mono" href="{e(url("/registry", {"package": ev.package}))}">'
        f"{e(ev.package)}</a>{version} "
        f'<a class="muted" href="{e(package_url(ev.package))}">decisions</a></td>'
        f'<td class="reason" title="{e(ev.detail)}">{e(_cut(ev.detail, MAX_REASON))}</td>'
        f'<td>{e(group_name(ev.group))}</td><td class="mono">{e(ev.token or "-")}</td>'
        f'<td class="mono">{e(ev.client)}</td></tr>'
    )


# -- a package --------------------------------------------------------------------------------


def package_page(name: str, versions: Sequence[VersionView], who: str) -> str:
    head = (
        f'<h1 class="package">{e(name)}</h1><p><a href="{e(url("/log", {"package": name}))}">'
        "All decisions on this package</a></p>"
    )
    if not versions:
        body = head + (
            '<section class="panel"><p class="empty">Floodgate has not assessed or decided '
            "on this package.</p></section>"
        )
        return page(name, "", who, body)
    rows = "".join(_version_row(v) for v in versions)
    body = (
        head + '<section class="panel"><table id="versions"><thead><tr><th>Version</th>'
        "<th>Decision</th><th>Verdict</th><th>Findings and evidence</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )
    return page(name, "", who, body)


def _version_row(v: VersionView) -> str:
    decision = '<span class="muted">no decision logged</span>'
    if v.latest is not None:
        r = v.latest
        decision = (
            f"{badge(r.action)} by rule <code>{e(r.rule or '-')}</code> of policy "
            f"<code>{e(r.policy)}</code><br><span class=muted>last {when(r.time)} "
            f"({e(r.via)}), {v.decisions:,} logged: "
            + ", ".join(f"{n:,} {e(a)}" for a, n in sorted(v.by_action.items()))
            + "</span>"
        )
        if r.waiver:
            decision += f"<br>waiver <code>{e(r.waiver)}</code>"
    return (
        f'<tr data-version="{e(v.version)}"><td class="mono">{e(v.version)}</td>'
        f"<td>{decision}</td><td>{_verdict_cell(v.verdict)}</td>"
        f"<td>{_findings(v)}</td></tr>"
    )


def _verdict_cell(v: Verdict | None) -> str:
    if v is None:
        return '<span class="muted">not assessed</span>'
    scanned = "tarball scanned" if v.tarball_scanned else "metadata only"
    return f'{badge(v.label)} score {v.score}<br><span class="muted">{scanned}</span>'


def _findings(v: VersionView) -> str:
    if v.verdict is None or not (v.verdict.findings or v.verdict.osv_ids):
        reasons = v.latest.reasons if v.latest is not None else ()
        if not reasons:
            return '<span class="muted">none</span>'
        listed = "".join(f"<li>{e(r)}</li>" for r in reasons)
        return f'<ul class="findings">{listed}</ul>'
    items: list[str] = []
    for f in v.verdict.findings:
        evidence = "".join(
            f"<dt>{e(k)}</dt><dd class=mono>{e(_evidence_text(val))}</dd>"
            for k, val in f.evidence.items()
        )
        items.append(
            f'<li data-signal="{e(f.signal_id)}"><code>{e(f.signal_id)}</code> '
            f'<span class="muted">({e(f.severity)}/{e(f.confidence)})</span> {e(f.reason)}'
            + (f'<dl class="evidence">{evidence}</dl>' if evidence else "")
            + "</li>"
        )
    if v.verdict.osv_ids:
        items.append("<li>OSV records: " + ", ".join(e(i) for i in v.verdict.osv_ids) + "</li>")
    return f'<ul class="findings">{"".join(items)}</ul>'


def _evidence_text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _cut(text, MAX_EVIDENCE)


# -- policies ---------------------------------------------------------------------------------


def policies_page(policies: Sequence[tuple[str, Policy]], today: date, who: str) -> str:
    if not policies:
        body = (
            '<h1>Policies</h1><section class="panel"><p class="empty">Enforcement is off '
            "(--no-enforce): no policy is in force.</p></section>"
        )
        return page("Policies", "policies", who, body)
    sections = "".join(_policy(label, p, today) for label, p in policies)
    return page("Policies", "policies", who, f"<h1>Policies in force</h1>{sections}")


def _policy(label: str, p: Policy, today: date) -> str:
    rules = "".join(
        f'<tr data-rule="{e(r.id)}"><td class="num">{i}</td><td><code>{e(r.id)}</code></td>'
        f"<td>{badge(r.action.value)}</td><td>{e(match_summary(r.match))}</td>"
        f"<td>{e(r.message)}</td><td>{e(r.audit_severity.value)}</td></tr>"
        for i, r in enumerate(p.rules, 1)
    )
    waivers = "".join(_waiver(w, today) for w in p.waivers)
    return (
        f'<section class="panel policy" data-policy="{e(p.name)}"><h2>{e(label)}: '
        f"<code>{e(p.name)}</code></h2><p class=muted>source {e(p.source or 'inline')}, "
        f"digest <code>{e(p.digest)}</code>, mode {e(p.mode.value)}, unscanned tarballs "
        f"fail {e(p.unscanned.value)}</p>"
        "<h3>Rules (first match wins)</h3>"
        + (
            '<table class="rules"><thead><tr><th class="num">#</th><th>Rule</th><th>Action</th>'
            f"<th>Matches</th><th>Message</th><th>Audit severity</th></tr></thead>"
            f"<tbody>{rules}</tbody></table>"
            if rules
            else '<p class="empty">No rules: everything is allowed.</p>'
        )
        + "<h3>Waivers</h3>"
        + (
            '<table class="waivers"><thead><tr><th>Package</th><th>Reason</th><th>Owner</th>'
            f"<th>Expires</th><th>Status</th></tr></thead><tbody>{waivers}</tbody></table>"
            if waivers
            else '<p class="empty">No waivers.</p>'
        )
        + "</section>"
    )


def waiver_status(w: Waiver, today: date) -> tuple[str, str]:
    """(css class, text) for a waiver on `today` (pure)."""
    left = (w.expires - today).days
    if left < 0:
        return "expired", f"expired {-left} day{'s' if left != -1 else ''} ago"
    if left == 0:
        return "soon", "expires today"
    if left <= SOON:
        return "soon", f"expires in {left} day{'s' if left != 1 else ''}"
    return "active", f"active, {left} days left"


def _waiver(w: Waiver, today: date) -> str:
    kind, text = waiver_status(w, today)
    return (
        f'<tr data-waiver="{e(w.spec)}"><td class="mono">{e(w.spec)}</td><td>{e(w.reason)}</td>'
        f"<td>{e(w.owner)}</td><td class=mono>{w.expires.isoformat()}</td>"
        f"<td>{badge(kind, text)}</td></tr>"
    )


def match_summary(m: Match) -> str:
    """A rule's conditions in one line, only those it sets (pure)."""
    parts = []
    for f in dataclasses.fields(Match):
        value = getattr(m, f.name)
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            shown = ", ".join(str(v) for v in value)
        elif isinstance(value, timedelta):
            shown = _duration(value)
        else:
            shown = str(value)
        parts.append(f"{f.name.replace('_', ' ')}: {shown}")
    return "; ".join(parts) or "everything"


def _duration(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- refusals -----------------------------------------------------------------------------------


def refusal_page(status: int, message: str) -> str:
    """401/403/501: what is wrong and what to do, without the dashboard's frame (pure)."""
    title = {401: "Log in required", 403: "Admins only"}.get(status, "Not available")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{status} {title} · Floodgate</title><link rel="stylesheet" href="{CSS}">'
        f'</head><body><main><section class="panel"><h1>{status} {title}</h1>'
        f'<p id="message">{e(message)}</p></section></main></body></html>'
    )
