"""The table and the JSON document of `floodgate audit`, on the shared app (test_report_app)."""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, ValidationError  # type: ignore[import-untyped]

from proxy.audit import report
from proxy.audit.model import Audited
from proxy.detect.model import Confidence, Label, Severity, Verdict
from proxy.policy.model import ALLOWED, Action, Decision
from tests.audit.test_report_app import (
    ALIAS,
    BODY_PARSER,
    DETECTOR,
    DRY,
    EXPRESS,
    GIT,
    GIT_ERROR,
    INTEGRITY_NOTE,
    LOCKFILE,
    MAL_REASON,
    MISSING,
    MISSING_ERROR,
    QS,
    RESULTS,
    SCOPED,
    SEO,
    SEO_REASON,
    TEA,
    TEA_NAME,
    TEA_REASONS,
    TEA_YAML,
    WAIVED,
    WAIVER_REASON,
    WEAK,
    finding,
    result_of,
)

SCHEMAS = Path(__file__).resolve().parent.parent / "fixtures" / "schemas"
ANSI = re.compile(r"\x1b\[")


@cache
def audit_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMAS / "floodgate-audit-1.schema.json").read_text(encoding="utf-8")
    )
    return schema


def table(**kw: Any) -> str:
    return report.render_table(LOCKFILE, RESULTS, **kw)


def has_row(text: str, name: str) -> bool:
    return any(line.startswith(name + " ") for line in text.splitlines())


def row(text: str, name: str) -> str:
    """The table line that starts the row of `name`."""
    return next(line for line in text.splitlines() if line.startswith(name + " "))


# ---- reading results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "shown"),
    [
        (Decision(Action.BLOCK, "token-farming", "", Action.BLOCK), "block"),
        (Decision(Action.MONITOR, "malicious", "", Action.BLOCK), "monitor(block)"),  # dry-run
        (Decision(Action.MONITOR, "watch", "", Action.MONITOR), "monitor"),
        (Decision(Action.ALLOW, "weak-signals", "", Action.WARN, waiver="x"), "allow(warn)"),
        (Decision(Action.BLOCK, "registry", ""), "block"),  # intended left at its default
        (ALLOWED, "allow"),
    ],
)
def test_action_text(decision: Decision, shown: str) -> None:
    assert report.action_text(decision) == shown


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (result_of(TEA.name), TEA_REASONS),  # severity, then the detector's order
        (result_of(DRY.name), (MAL_REASON, "runs a postinstall script")),  # critical first
        (result_of(QS.name), ()),  # clean
        (result_of(GIT.name), ()),  # not checked
        (  # no verdict: a Floodgate registry's restriction is the reason
            Audited(EXPRESS, None, Decision(Action.BLOCK, "registry", "withheld", Action.BLOCK)),
            ("withheld",),
        ),
        (  # a low-severity finding on a clean package is still a reason
            Audited(
                EXPRESS,
                Verdict(
                    "express",
                    "4.19.2",
                    5,
                    Label.CLEAN,
                    (finding("young-package", Severity.LOW, Confidence.HIGH, "new"),),
                    DETECTOR,
                ),
                ALLOWED,
            ),
            ("new",),
        ),
    ],
    ids=["tea", "dry-run", "clean", "git", "registry", "clean-with-finding"],
)
def test_reasons_most_telling_first(result: Audited, expected: tuple[str, ...]) -> None:
    assert report.reasons(result) == expected


def test_summary_counts_every_kind_of_result() -> None:
    s = report.summarize(RESULTS)
    assert s.to_json() == {
        "packages": 12,
        "actions": {"block": 1, "hide": 1, "warn": 1, "monitor": 1, "allow": 6},
        "flagged": 4,
        "waived": 1,
        "not_checkable": 1,
        "errors": 1,
        "notes": 1,
    }


# ---- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "by_default"),
    [
        (TEA.name, True),
        (SEO.name, True),
        (WEAK.name, True),
        (DRY.name, True),
        (WAIVED.name, True),  # allowed, but only by a waiver
        (EXPRESS.name, False),
        (BODY_PARSER.name, False),
        (QS.name, False),
        (SCOPED.name, False),
        (ALIAS.alias, False),
    ],
)
def test_rows_shown_by_default_and_with_show_all(name: str, by_default: bool) -> None:
    assert has_row(table(), name) is by_default
    assert has_row(table(show_all=True), name)


def test_rows_go_most_severe_action_first() -> None:
    text = table(show_all=True)
    order = [TEA, SEO, WEAK, DRY, WAIVED, SCOPED, BODY_PARSER, EXPRESS, QS, ALIAS]
    names = [p.alias or p.name for p in order]
    starts = [ln.split()[0] for ln in text.splitlines() if ln[:1].strip()]  # no indent: a row
    assert [n for n in starts if n in names] == names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (TEA.name, ["1.0.3", "block", "spam 95"]),
        (SEO.name, ["1.0.0", "hide", "spam 80"]),
        (WEAK.name, ["0.0.2", "warn", "suspicious 40"]),
        (DRY.name, ["2.0.1", "monitor(block)", "malicious 100"]),
        (WAIVED.name, ["1.0.0", "allow(warn)", "suspicious 35"]),
    ],
)
def test_row_columns(name: str, expected: list[str]) -> None:
    line = row(table(width=200), name)
    assert re.split(r"\s{2,}", line)[1:4] == expected


def test_deep_package_shows_its_dependency_path_and_reasons() -> None:
    line = row(table(width=300), TEA.name)
    assert line.endswith("my-app > express > body-parser > qs > tea-farm-0042")
    assert f"{TEA_YAML}; {TEA_NAME}" in line  # the first two reasons, most severe first


@pytest.mark.parametrize("width", [120, 100, 80, 60])
def test_narrow_tables_wrap_and_keep_the_path_and_reason(width: int) -> None:
    text = table(width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    flat = " ".join(text.split())  # wrapped cells, joined back
    for hop in TEA.path:
        assert hop in flat
    assert "ships a tea.yaml" in flat
    assert SEO_REASON.split()[0] in flat


def test_waived_row_names_the_waiver() -> None:
    assert WAIVER_REASON[:40] in row(table(width=240), WAIVED.name)


def test_unchecked_and_notes_sections() -> None:
    text = table(width=300)
    assert "Not checked (2):" in text
    assert f"  internal-ui: {GIT_ERROR} (via my-app > internal-ui)" in text
    assert f"  left-pad@1.3.0: {MISSING_ERROR} (via my-app > left-pad)" in text
    assert f"Notes (1):\n  body-parser@1.20.2: {INTEGRITY_NOTE}" in text
    assert not any(ln.startswith(("internal-ui ", "left-pad ")) for ln in text.splitlines())


def test_summary_line_ends_the_table() -> None:
    assert table().splitlines()[-1] == (
        "12 packages audited: 1 block, 1 hide, 1 warn, 1 monitor, 6 allow (1 waived), "
        "1 not checkable, 1 error"
    )


def test_plain_text_only() -> None:
    assert not ANSI.search(table(show_all=True))


@pytest.mark.parametrize(
    ("results", "line"),
    [
        ((), "No packages audited."),
        ((result_of(QS.name), result_of(EXPRESS.name)), "No flagged packages."),
    ],
)
def test_nothing_to_list(results: tuple[Audited, ...], line: str) -> None:
    text = report.render_table(LOCKFILE, results)
    assert line in text.splitlines()
    assert "PACKAGE" not in text


# ---- the JSON document ----------------------------------------------------------------------


def test_json_validates_against_its_schema() -> None:
    Draft7Validator(audit_schema()).validate(report.to_json(LOCKFILE, RESULTS))


def test_json_schema_rejects_a_broken_document() -> None:
    doc = report.to_json(LOCKFILE, RESULTS)
    doc["packages"][0]["action"] = "quarantine"
    with pytest.raises(ValidationError):
        Draft7Validator(audit_schema()).validate(doc)


def test_json_document_shape() -> None:
    doc = report.to_json(LOCKFILE, RESULTS)
    assert doc["schema_version"] == 1
    assert doc["lockfile"] == {
        "path": "/srv/my-app/package-lock.json",
        "kind": "package-lock.json",
        "version": "3",
        "root": "my-app",
    }
    assert doc["summary"] == report.summarize(RESULTS).to_json()
    assert [p["name"] for p in doc["packages"]] == [r.package.name for r in RESULTS]
    json.dumps(doc)  # JSON-able as it is


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        (
            TEA.name,
            {
                "version": "1.0.3",
                "path": ["my-app", "express", "body-parser", "qs", "tea-farm-0042"],
                "action": "block",
                "intended": "block",
                "rule": "token-farming",
                "label": "spam",
                "score": 95,
                "reasons": list(TEA_REASONS),
                "signals": ["tea-yaml", "generated-name", "trivial-code"],
                "location": {"line": 260, "column": 5},
                "error": None,
            },
        ),
        (DRY.name, {"action": "monitor", "intended": "block", "osv_ids": ["MAL-2025-4242"]}),
        (WAIVED.name, {"action": "allow", "waiver": "tiny-helpers@1.0.0", "reason": WAIVER_REASON}),
        (
            GIT.name,
            {
                "version": None,
                "source": "git",
                "checkable": False,
                "action": None,
                "label": None,
                "error": GIT_ERROR,
            },
        ),
        (MISSING.name, {"checkable": True, "action": None, "error": MISSING_ERROR}),
        (ALIAS.name, {"alias": "string-width-cjs", "path": ["my-app", "string-width-cjs"]}),
        (SCOPED.name, {"dev": True, "rule": None, "waiver": None, "reasons": []}),
        (BODY_PARSER.name, {"action": "allow", "error": INTEGRITY_NOTE}),
        (DRY.name, {"optional": True, "dev": False}),
    ],
)
def test_json_package_fields(name: str, fields: dict[str, Any]) -> None:
    entry = next(p for p in report.to_json(LOCKFILE, RESULTS)["packages"] if p["name"] == name)
    assert {k: entry[k] for k in fields} == fields


def test_json_of_an_empty_audit() -> None:
    empty = dataclasses.replace(LOCKFILE, packages=())
    doc = report.to_json(empty, [])
    Draft7Validator(audit_schema()).validate(doc)
    assert doc["packages"] == []
    assert doc["summary"]["packages"] == 0
