"""`floodgate audit --format sarif`: SARIF 2.1.0, checked against the OASIS schema offline."""

from __future__ import annotations

import copy
import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, ValidationError  # type: ignore[import-untyped]

from proxy.audit import sarif
from proxy.audit.model import Audited, Lockfile
from tests.audit.test_report_app import (
    DRY,
    FLAGGED,
    GIT,
    LOCKFILE,
    MISSING,
    RESULTS,
    SEO,
    TEA,
    TEA_YAML,
    WAIVED,
    WEAK,
    result_of,
)

SCHEMAS = Path(__file__).resolve().parent.parent / "fixtures" / "schemas"
VERSION = "0.1.0"


@cache
def validator() -> Any:
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    return Draft7Validator(schema)


def log(results: tuple[Audited, ...] = RESULTS, lockfile: Lockfile = LOCKFILE) -> dict[str, Any]:
    return sarif.to_sarif(lockfile, results, tool_version=VERSION)


def results_by_package(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["properties"]["package"]: r for r in doc["runs"][0]["results"]}


def test_log_validates_against_the_sarif_schema() -> None:
    validator().validate(log())


@pytest.mark.parametrize(
    ("path", "change"),
    [
        (("runs", 0, "results", 0, "level"), "fatal"),  # not a SARIF level
        (("runs", 0, "results", 0, "locations", 0, "physicalLocation", "region", "startLine"), 0),
        (("version",), "2.2.0"),
        (("runs", 0, "tool", "driver", "rules", 0, "shortDescription"), "not a message"),
    ],
    ids=["level", "start-line", "version", "message"],
)
def test_schema_rejects_a_broken_log(path: tuple[str | int, ...], change: object) -> None:
    doc = copy.deepcopy(log())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = change
    with pytest.raises(ValidationError):
        validator().validate(doc)


def test_schema_rejects_a_log_without_runs() -> None:
    doc = log()
    del doc["runs"]
    with pytest.raises(ValidationError):
        validator().validate(doc)


def test_one_run_by_floodgate() -> None:
    doc = log()
    assert doc["version"] == "2.1.0"
    assert len(doc["runs"]) == 1
    driver = doc["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("floodgate", VERSION)


def test_one_result_per_flagged_package() -> None:
    by_package = results_by_package(log())
    assert set(by_package) == FLAGGED
    assert len(log()["runs"][0]["results"]) == len(FLAGGED)
    assert WAIVED.name not in by_package  # allowed by its waiver


@pytest.mark.parametrize(
    ("package", "level", "rule_id", "line"),
    [
        (TEA, "error", "policy/token-farming", 260),
        (SEO, "warning", "policy/spam", 100),
        (WEAK, "warning", "policy/weak-signals", 150),
        (DRY, "note", "policy/malicious", 96),  # monitor (dry-run) even though it would block
    ],
    ids=lambda v: v.name if hasattr(v, "name") else str(v),
)
def test_result_level_rule_and_location(package: Any, level: str, rule_id: str, line: int) -> None:
    doc = log()
    r = results_by_package(doc)[package.name]
    assert (r["level"], r["ruleId"]) == (level, rule_id)
    assert doc["runs"][0]["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == rule_id
    physical = r["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "package-lock.json"
    assert physical["region"] == {"startLine": line, "startColumn": 5}


def test_message_names_package_action_rule_reasons_and_path() -> None:
    text = results_by_package(log())[TEA.name]["message"]["text"]
    assert text.startswith("tea-farm-0042@1.0.3 is blocked by policy rule 'token-farming'")
    assert "(label spam, score 95)" in text
    assert f": {TEA_YAML};" in text
    assert text.endswith("Dependency path: my-app > express > body-parser > qs > tea-farm-0042.")


def test_dry_run_message_says_what_would_happen() -> None:
    text = results_by_package(log())[DRY.name]["message"]["text"]
    assert "evil-postinstall@2.0.1 would be blocked (monitor only: dry-run)" in text


def test_result_properties() -> None:
    props = results_by_package(log())[DRY.name]["properties"]
    assert props["label"] == "malicious"
    assert props["score"] == 100
    assert props["osvIds"] == ["MAL-2025-4242"]
    assert (props["action"], props["intended"], props["rule"]) == ("monitor", "block", "malicious")
    assert props["signals"] == ["install-scripts", "known-malicious"]
    assert props["dependencyPath"] == ["my-app", "left-padder", "evil-postinstall"]


def test_rules_are_the_policy_rules_then_the_signals_that_fired() -> None:
    rules = log()["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [
        "policy/malicious",
        "policy/spam",
        "policy/token-farming",
        "policy/weak-signals",
        "generated-name",
        "install-scripts",
        "known-malicious",
        "spam-name",
        "tea-yaml",
        "trivial-code",
        "young-package",
    ]  # publish-burst fired only on the waived package, which is not a result


def test_signal_rules_carry_the_signal_documentation() -> None:
    rules = {r["id"]: r for r in log()["runs"][0]["tool"]["driver"]["rules"]}
    tea = rules["tea-yaml"]
    assert tea["shortDescription"]["text"] == "tea.xyz registration file"
    assert tea["help"]["text"].startswith("tea-yaml: the package ships a tea.xyz registration")
    assert tea["properties"]["precision"] == "high"
    assert rules["policy/token-farming"]["properties"]["security-severity"] == "8.0"
    assert rules["policy/weak-signals"]["properties"]["security-severity"] == "5.5"


def test_unknown_signal_is_described_from_its_finding() -> None:
    tea = result_of(TEA.name)
    assert tea.verdict is not None
    old = dataclasses.replace(tea.verdict.findings[0], signal_id="retired-signal")
    verdict = dataclasses.replace(tea.verdict, findings=(old,))
    doc = log((dataclasses.replace(tea, verdict=verdict),))
    validator().validate(doc)
    rule = doc["runs"][0]["tool"]["driver"]["rules"][-1]
    assert (rule["id"], rule["shortDescription"]["text"]) == ("retired-signal", "retired-signal")


def test_region_is_omitted_when_the_location_is_unknown() -> None:
    tea = result_of(TEA.name)
    nowhere = dataclasses.replace(tea, package=dataclasses.replace(tea.package, location=None))
    doc = log((nowhere,))
    validator().validate(doc)
    physical = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "package-lock.json"}}


def test_fingerprints_are_stable_per_name_version_and_rule() -> None:
    tea = result_of(TEA.name)
    moved = dataclasses.replace(
        tea, package=dataclasses.replace(tea.package, location=None, path=("my-app", TEA.name))
    )
    assert tea.decision is not None
    other_rule = dataclasses.replace(tea, decision=dataclasses.replace(tea.decision, rule="x"))
    prints = [
        log((r,))["runs"][0]["results"][0]["partialFingerprints"] for r in (tea, moved, other_rule)
    ]
    assert prints[0] == prints[1] != prints[2]
    assert prints[0] == {
        "floodgatePackage/v1": sarif.fingerprint(TEA.name, "1.0.3", "token-farming")
    }


@pytest.mark.parametrize(
    ("lockfile", "project_dir", "uri"),
    [
        ("/srv/my-app/package-lock.json", None, "package-lock.json"),
        ("/srv/repo/apps/web/pnpm-lock.yaml", "/srv/repo", "apps/web/pnpm-lock.yaml"),
        ("apps/web/yarn.lock", None, "apps/web/yarn.lock"),
        ("apps/web/yarn.lock", "apps", "web/yarn.lock"),
        ("/elsewhere/package-lock.json", "/srv/repo", "package-lock.json"),
        ("/srv/my app/package-lock.json", "/srv", "my%20app/package-lock.json"),
    ],
)
def test_artifact_uri_is_relative_to_the_project(
    lockfile: str, project_dir: str | None, uri: str
) -> None:
    base = Path(project_dir) if project_dir else None
    assert sarif.artifact_uri(Path(lockfile), base) == uri
    moved = dataclasses.replace(LOCKFILE, path=Path(lockfile))
    doc = sarif.to_sarif(moved, RESULTS, tool_version=VERSION, project_dir=base)
    assert {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in doc["runs"][0]["results"]
    } == {uri}


def test_unchecked_packages_are_notifications() -> None:
    invocation = log()["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True
    notes = invocation["toolExecutionNotifications"]
    assert [(n["level"], n["message"]["text"].split(" ")[0]) for n in notes] == [
        ("note", GIT.name),
        ("warning", MISSING.spec),
    ]


def test_nothing_flagged_is_an_empty_valid_run() -> None:
    doc = log((result_of("qs"), result_of(WAIVED.name)))
    validator().validate(doc)
    assert doc["runs"][0]["results"] == []
    assert doc["runs"][0]["tool"]["driver"]["rules"] == []
