"""The audit's reports: the plain-text table and the JSON document, and how results read.

The reading helpers (`reasons`, `action_text`, `flagged`, `summarize`...) are shared with the
SARIF (`proxy.audit.sarif`) and CycloneDX (`proxy.audit.sbom`) writers, so that every format
orders reasons and counts actions alike. A result is one of three kinds: decided (`decision`
set; an `error` beside it is a note, such as an integrity mismatch), not checkable (a git, file,
link or tarball-URL dependency), or an error (checkable, but not decided: not fetched, or not in
the registry).

The JSON document (`to_json`), documented field by field as a JSON schema in
`tests/fixtures/schemas/floodgate-audit-1.schema.json`::

    {"schema_version": 1, "lockfile": {path, kind, version, root},
     "summary": {packages, actions: {block, hide, warn, monitor, allow}, flagged, waived,
                 not_checkable, errors, notes},
     "packages": [{name, version, alias, path, source, dev, optional, checkable, location,
                   action, intended, rule, reason, waiver, label, score, reasons, signals,
                   osv_ids, error}]}

`packages` keeps the results' order (the lockfile's); unknown values are null.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy.audit.model import Audited, LockedPackage, Lockfile
from proxy.detect.model import Confidence, Finding, Severity
from proxy.policy.model import Action, Decision

JSON_SCHEMA_VERSION = 1
MIN_WIDTH = 60  # characters: narrower tables are laid out at this width
TABLE_REASONS = 2  # reasons shown per row
ELLIPSIS = "…"
PATH_SEPARATOR = " > "

# Most severe first: the order of table rows and of the summary's counts.
ACTION_ORDER = (Action.BLOCK, Action.HIDE, Action.WARN, Action.MONITOR, Action.ALLOW)
_ACTION_RANK = {a: i for i, a in enumerate(ACTION_ORDER)}
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}
_CONFIDENCE_RANK = {Confidence.HIGH: 0, Confidence.MEDIUM: 1, Confidence.LOW: 2}


def flagged(result: Audited) -> bool:
    """True when the policy acts on the package: block, hide, warn or monitor (not allow)."""
    return result.decision is not None and result.decision.action is not Action.ALLOW


def listed(result: Audited) -> bool:
    """True when the table lists the result by default: flagged, or allowed by a waiver."""
    return result.decision is not None and result.decision.acted


def action_text(decision: Decision) -> str:
    """The action as shown: `block`, or `monitor(block)` when the rule asked for more than is
    enforced (dry-run mode), or `allow(warn)` for a waiver."""
    d = decision
    if d.intended is not d.action and d.intended is not Action.ALLOW:
        return f"{d.action}({d.intended})"
    return str(d.action)


def reasons(result: Audited) -> tuple[str, ...]:
    """Why the package was flagged, most telling first.

    The verdict's findings ordered by severity, then confidence, then the detector's order;
    without findings, the policy's own reason when a rule acted (a name rule's message, a
    Floodgate registry's restriction). Empty for a clean package.
    """
    findings: tuple[Finding, ...] = result.verdict.findings if result.verdict else ()
    if findings:
        ranked = sorted(
            findings,
            key=lambda f: (_SEVERITY_RANK[f.severity], _CONFIDENCE_RANK[f.confidence]),
        )
        return tuple(f.reason for f in ranked)
    d = result.decision
    if d is not None and d.acted and d.reason:
        return (d.reason,)
    return ()


def installed_name(package: LockedPackage) -> str:
    """The name the package is installed under: its alias, else its name."""
    return package.alias or package.name


def path_text(package: LockedPackage) -> str:
    """The dependency path as shown: `my-app > express > body-parser > qs`."""
    return PATH_SEPARATOR.join(package.path) if package.path else installed_name(package)


def package_text(package: LockedPackage) -> str:
    """`qs`, or `string-width-cjs (npm:string-width)` for an alias."""
    if package.alias and package.alias != package.name:
        return f"{package.alias} (npm:{package.name})"
    return package.name


def unchecked(result: Audited) -> bool:
    """True when the package was not decided: not checkable, or an error."""
    return not result.package.checkable or result.decision is None


def problem(result: Audited) -> str:
    """Why a not-checkable or errored result has no decision."""
    if result.error:
        return result.error
    if not result.package.checkable:
        return f"not checkable: a {result.package.source} dependency"
    return "not audited"


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over an audit's results; `actions` counts every action, most severe first."""

    packages: int
    actions: tuple[tuple[Action, int], ...]
    waived: int = 0
    not_checkable: int = 0
    errors: int = 0
    notes: int = 0

    @property
    def flagged(self) -> int:
        return sum(n for a, n in self.actions if a is not Action.ALLOW)

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "actions": {str(a): n for a, n in self.actions},
            "flagged": self.flagged,
            "waived": self.waived,
            "not_checkable": self.not_checkable,
            "errors": self.errors,
            "notes": self.notes,
        }

    def line(self) -> str:
        """`12 packages audited: 1 block, 1 hide, 1 warn, 1 monitor, 6 allow (1 waived),
        1 not checkable, 1 error`"""
        counts = ", ".join(f"{n} {a}" for a, n in self.actions)
        waived = f" ({self.waived} waived)" if self.waived else ""
        errors = "error" if self.errors == 1 else "errors"
        noun = "package" if self.packages == 1 else "packages"
        return (
            f"{self.packages} {noun} audited: {counts}{waived}, "
            f"{self.not_checkable} not checkable, {self.errors} {errors}"
        )


def summarize(results: Sequence[Audited]) -> Summary:
    actions = dict.fromkeys(ACTION_ORDER, 0)
    waived = not_checkable = errors = notes = 0
    for r in results:
        if not r.package.checkable:
            not_checkable += 1
        elif r.decision is None:
            errors += 1
        else:
            actions[r.decision.action] += 1
            waived += bool(r.decision.waiver)
            notes += r.error is not None
    return Summary(len(results), tuple(actions.items()), waived, not_checkable, errors, notes)


# ---- the table ------------------------------------------------------------------------------

_HEADERS = ("PACKAGE", "VERSION", "ACTION", "LABEL", "REASONS", "PATH")
_CAPS = (32, 16, 16, 16)  # widest package, version, action and label columns; longer ones wrap
_MIN_FREE = 40  # characters the reasons and path columns need; narrower tables stack them
_REASON_LINES = 3  # lines of reasons per row; more are cut with an ellipsis
_GAP = "  "
_INDENT = "    "


def _wrap(text: str, width: int, indent: str = "", lines: int | None = None) -> list[str]:
    """`text` in at most `lines` lines of at most `width`, breaking at spaces where it can (a
    dependency path breaks between hops); continuation lines start with `indent`."""
    return textwrap.wrap(
        text,
        width,
        subsequent_indent=indent,
        break_on_hyphens=False,
        max_lines=lines,
        placeholder=" " + ELLIPSIS,
    ) or [""]


def _row_key(r: Audited) -> tuple[int, int, str, str]:
    d = r.decision
    assert d is not None
    return (_ACTION_RANK[d.action], _ACTION_RANK[d.intended], r.package.name, r.package.version)


def _cells(r: Audited) -> tuple[str, ...]:
    d = r.decision
    assert d is not None
    v = r.verdict
    why = list(reasons(r)[:TABLE_REASONS])
    if d.waiver:  # the waiver explains the allow; the top finding explains the rule
        why = [d.reason, *why[:1]]
    return (
        package_text(r.package),
        r.package.version or "-",
        action_text(d),
        f"{v.label} {v.score}" if v is not None else "-",
        "; ".join(why) or "-",
        path_text(r.package),
    )


def _lines(columns: Sequence[list[str]], widths: Sequence[int]) -> list[str]:
    """Cells already wrapped to their widths, side by side."""
    out = []
    for i in range(max(len(c) for c in columns)):
        parts = [
            (c[i] if i < len(c) else "").ljust(w) for c, w in zip(columns, widths, strict=True)
        ]
        out.append(_GAP.join(parts).rstrip())
    return out


def _table(rows: Sequence[tuple[str, ...]], width: int) -> list[str]:
    """Six columns when the reasons and the path get `_MIN_FREE` characters; else the four
    short columns, with the reasons and the path (`via ...`) on indented lines below each row.
    Long cells wrap within their column."""
    want = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(_HEADERS)]
    fixed = [min(w, cap) for w, cap in zip(want, _CAPS, strict=False)]
    free = width - sum(fixed) - len(_GAP) * 5
    if free >= _MIN_FREE:
        path_w = want[5] if want[4] + want[5] <= free else max(free // 2, free - want[4])
        widths = [*fixed, free - path_w, path_w]
        out = _lines([[h] for h in _HEADERS], widths)
        for cells in rows:
            columns = [_wrap(c, w) for c, w in zip(cells, widths, strict=True)]
            columns[4] = _wrap(cells[4], widths[4], lines=_REASON_LINES)
            out += _lines(columns, widths)
        return out
    while sum(fixed) + len(_GAP) * 3 > width:  # shrink the widest short column
        fixed[fixed.index(max(fixed))] -= 1
    out = _lines([[h] for h in _HEADERS[:4]], fixed)
    for cells in rows:
        out += _lines([_wrap(c, w) for c, w in zip(cells[:4], fixed, strict=False)], fixed)
        if cells[4] != "-":
            out += _wrap(_INDENT + cells[4], width, _INDENT, _REASON_LINES)
        out += _wrap(f"{_INDENT}via {cells[5]}", width, _INDENT + "    ")
    return out


def render_table(
    lockfile: Lockfile, results: Sequence[Audited], *, show_all: bool = False, width: int = 120
) -> str:
    """The audit as a plain-text table, every line at most `width` (at least MIN_WIDTH) long.

    By default only flagged packages (block, hide, warn, monitor) and waived ones are listed;
    `show_all` lists clean ones too. Rows go most severe action first, then by name. Packages
    that could not be checked, and notes, follow in short sections; a summary line ends it.
    """
    width = max(width, MIN_WIDTH)
    decided = [r for r in results if not unchecked(r)]
    shown = sorted((r for r in decided if show_all or listed(r)), key=_row_key)
    lines = _wrap(f"{lockfile.root}: {lockfile.path} ({lockfile.kind} v{lockfile.version})", width)
    lines.append("")
    if shown:
        lines += _table([_cells(r) for r in shown], width)
    else:
        lines.append("No flagged packages." if decided else "No packages audited.")
    missed = [r for r in results if unchecked(r)]
    if missed:
        lines += ["", f"Not checked ({len(missed)}):"]
        for r in missed:
            spec = package_text(r.package) + (f"@{r.package.version}" if r.package.version else "")
            text = f"  {spec}: {problem(r)} (via {path_text(r.package)})"
            lines += _wrap(text, width, _INDENT)
    notes = [r for r in decided if r.error]
    if notes:
        lines += ["", f"Notes ({len(notes)}):"]
        lines += [
            ln for r in notes for ln in _wrap(f"  {r.package.spec}: {r.error}", width, _INDENT)
        ]
    lines += ["", *_wrap(summarize(results).line(), width)]
    return "\n".join(lines)


# ---- the JSON document ----------------------------------------------------------------------


def _package_json(r: Audited) -> dict[str, Any]:
    p, d, v = r.package, r.decision, r.verdict
    return {
        "name": p.name,
        "version": p.version or None,
        "alias": p.alias,
        "path": list(p.path),
        "source": str(p.source),
        "dev": p.dev,
        "optional": p.optional,
        "checkable": p.checkable,
        "location": (
            {"line": p.location.line, "column": p.location.column} if p.location else None
        ),
        "action": str(d.action) if d else None,
        "intended": str(d.intended) if d else None,
        "rule": (d.rule or None) if d else None,
        "reason": d.reason if d else None,
        "waiver": (d.waiver or None) if d else None,
        "label": str(v.label) if v else None,
        "score": v.score if v else None,
        "reasons": list(reasons(r)),
        "signals": [f.signal_id for f in v.findings] if v else [],
        "osv_ids": list(v.osv_ids) if v else [],
        "error": problem(r) if d is None else r.error,
    }


def to_json(lockfile: Lockfile, results: Sequence[Audited]) -> dict[str, Any]:
    """The audit as a JSON-able dict, in the shape the module docstring documents."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "lockfile": {
            "path": lockfile.path.as_posix(),
            "kind": str(lockfile.kind),
            "version": lockfile.version,
            "root": lockfile.root,
        },
        "summary": summarize(results).to_json(),
        "packages": [_package_json(r) for r in results],
    }
