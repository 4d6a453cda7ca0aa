"""The audit as a SARIF 2.1.0 log, for code-scanning dashboards (`--format sarif`).

One run, one result per flagged package (block, hide, warn or monitor; a waived package is not
a result), located at the package's entry in the lockfile.

Rules (`tool.driver.rules`) are of two kinds, and the choice is deliberate:

- `policy/<rule id>`: one per policy rule that flagged a package. A result's `ruleId` is the
  policy rule that decided it, because that rule is why the package is reported at all: a
  result may rest on several detector signals, or on none (a name rule, a Floodgate registry's
  restriction, reported as `policy/registry`). The prefix keeps policy rule ids apart from
  signal ids, which may share a name. GitHub's `security-severity` comes from the rule's npm
  audit severity.
- `<signal id>`: one per detector signal that fired on a flagged package, with the signal's
  documentation as help. A result lists its signals in `properties.signals`.

`partialFingerprints["floodgatePackage/v1"]` hashes (name, version, policy rule), so an alert
keeps its identity when the lockfile's lines move. Packages that could not be checked are
reported as tool execution notifications, not results.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from proxy.audit.model import Audited, Lockfile
from proxy.audit.report import (
    ACTION_ORDER,
    flagged,
    installed_name,
    path_text,
    problem,
    reasons,
    summarize,
    unchecked,
)
from proxy.detect.model import Confidence, Finding, Severity, SignalSpec
from proxy.detect.signals import SIGNALS
from proxy.policy.model import Action, Decision, Severity as AuditSeverity

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
POLICY_RULE_PREFIX = "policy/"
FINGERPRINT = "floodgatePackage/v1"
MESSAGE_REASONS = 3  # reasons named in a result's message

LEVEL = {Action.BLOCK: "error", Action.HIDE: "warning", Action.WARN: "warning"}
LEVEL_DEFAULT = "note"  # monitor
VERB = {
    Action.BLOCK: "blocked",
    Action.HIDE: "hidden",
    Action.WARN: "warned about",
    Action.MONITOR: "monitored",
}
# GitHub code scanning's bands: critical > 9.0, high 7.0-8.9, medium 4.0-6.9, low 0.1-3.9;
# most severe first.
SECURITY_SEVERITY = {
    AuditSeverity.CRITICAL: "9.5",
    AuditSeverity.HIGH: "8.0",
    AuditSeverity.MODERATE: "5.5",
    AuditSeverity.LOW: "3.0",
}
SIGNAL_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning"}
PRECISION = {Confidence.HIGH: "high", Confidence.MEDIUM: "medium", Confidence.LOW: "low"}


def artifact_uri(lockfile: Path, project_dir: Path | None = None) -> str:
    """The lockfile as a relative URI: relative to `project_dir` when it is inside it, else the
    path as given when relative, else its name (the lockfile sits in the project directory)."""
    if project_dir is not None and lockfile.is_absolute() == project_dir.is_absolute():
        try:
            return quote(lockfile.relative_to(project_dir).as_posix())
        except ValueError:
            pass
    return quote(lockfile.name if lockfile.is_absolute() else lockfile.as_posix())


def policy_rule(result: Audited) -> str:
    """The id of the policy rule that flagged the result, as the policy names it."""
    d = result.decision
    assert d is not None
    return d.rule or "unnamed"


def rule_id(result: Audited) -> str:
    """The result's `ruleId`: `policy/<rule id>`."""
    return POLICY_RULE_PREFIX + policy_rule(result)


def fingerprint(name: str, version: str, rule: str) -> str:
    return hashlib.sha256(f"{name}@{version}\0{rule}".encode()).hexdigest()


def _wanted(d: Decision) -> Action:
    """What the rule asked for: `intended`, or the action when `intended` was left at allow."""
    return d.action if d.intended is Action.ALLOW else d.intended


def _policy_rule(rule: str, flagged_by: Sequence[Audited]) -> dict[str, Any]:
    decisions = [r.decision for r in flagged_by if r.decision is not None]
    intended = min((_wanted(d) for d in decisions), key=ACTION_ORDER.index)
    severity = min((d.severity for d in decisions), key=list(SECURITY_SEVERITY).index)
    name = rule.removeprefix(POLICY_RULE_PREFIX)
    if name == "registry":
        what = "The upstream Floodgate registry's own policy withholds these versions."
    else:
        what = f"Packages that Floodgate's policy rule '{name}' has {VERB[intended]}."
    return {
        "id": rule,
        "shortDescription": {"text": f"Floodgate policy rule '{name}' ({intended})"},
        "fullDescription": {"text": what},
        "help": {
            "text": what + " Each result names the package, the detector's reasons and the "
            "dependency path that brings it in. Remove or replace the dependency on that path "
            "(or move to a version without it); for a false positive, add a waiver to the "
            "policy (name, versions, reason, owner, expires)."
        },
        "defaultConfiguration": {"level": LEVEL.get(intended, LEVEL_DEFAULT)},
        "properties": {
            "tags": ["security", "supply-chain", "npm"],
            "action": str(intended),
            "security-severity": SECURITY_SEVERITY[severity],
        },
    }


@functools.cache
def _signal_docs() -> dict[str, tuple[SignalSpec, str]]:
    """Every registered signal's spec and documentation (its module docstring)."""
    return {
        spec.id: (spec, inspect.cleandoc(sys.modules[check.__module__].__doc__ or ""))
        for spec, check in SIGNALS
    }


def _signal_rule(signal: str, example: Finding) -> dict[str, Any]:
    """The signal's descriptor; one the registry no longer has (a stored verdict of an older
    detector) is described from the finding."""
    title, doc = signal, f"Floodgate detector signal '{signal}'."
    severity, confidence = example.severity, example.confidence
    if signal in _signal_docs():
        spec, doc = _signal_docs()[signal]
        title, severity, confidence = spec.title, spec.severity, spec.confidence
    return {
        "id": signal,
        "shortDescription": {"text": title},
        "fullDescription": {"text": doc.partition("\n")[0]},
        "help": {"text": doc},
        "defaultConfiguration": {"level": SIGNAL_LEVEL.get(severity, "note")},
        "properties": {
            "tags": ["security", "supply-chain", str(example.family)],
            "precision": PRECISION[confidence],
        },
    }


def _location(result: Audited, uri: str) -> dict[str, Any]:
    p = result.package
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if p.location is not None:
        physical["region"] = {"startLine": p.location.line, "startColumn": p.location.column}
    logical = {"name": installed_name(p), "fullyQualifiedName": path_text(p), "kind": "module"}
    return {"physicalLocation": physical, "logicalLocations": [logical]}


def _message(result: Audited) -> str:
    p, d, v = result.package, result.decision, result.verdict
    assert d is not None
    subject = p.spec + (f" (installed as {p.alias})" if p.alias and p.alias != p.name else "")
    if d.intended is not d.action and d.intended is not Action.ALLOW:
        done = f"would be {VERB[d.intended]} ({d.action} only: dry-run)"
    else:
        done = f"is {VERB[d.action]}"
    text = f"{subject} {done} by policy rule '{policy_rule(result)}'"
    if v is not None:
        text += f" (label {v.label}, score {v.score})"
    why = reasons(result)[:MESSAGE_REASONS]
    if why:
        text += ": " + "; ".join(why)
    return f"{text}. Dependency path: {path_text(p)}."


def _result(result: Audited, uri: str, index: dict[str, int]) -> dict[str, Any]:
    p, d, v = result.package, result.decision, result.verdict
    assert d is not None
    rule = rule_id(result)
    properties: dict[str, Any] = {
        "package": p.name,
        "version": p.version,
        "action": str(d.action),
        "intended": str(d.intended),
        "rule": d.rule,
        "label": str(v.label) if v else None,
        "score": v.score if v else None,
        "osvIds": list(v.osv_ids) if v else [],
        "signals": sorted(v.signal_ids) if v else [],
        "dependencyPath": list(p.path),
    }
    if p.alias:
        properties["alias"] = p.alias
    return {
        "ruleId": rule,
        "ruleIndex": index[rule],
        "level": LEVEL.get(d.action, LEVEL_DEFAULT),
        "message": {"text": _message(result)},
        "locations": [_location(result, uri)],
        "partialFingerprints": {FINGERPRINT: fingerprint(p.name, p.version, d.rule)},
        "properties": properties,
    }


def _notification(result: Audited, uri: str) -> dict[str, Any]:
    p = result.package
    level = "warning" if p.checkable else "note"  # an error, or a git/file/link dependency
    text = f"{p.spec} was not checked: {problem(result)}. Dependency path: {path_text(p)}."
    return {"level": level, "message": {"text": text}, "locations": [_location(result, uri)]}


def to_sarif(
    lockfile: Lockfile,
    results: Sequence[Audited],
    *,
    tool_version: str,
    project_dir: Path | None = None,
) -> dict[str, Any]:
    """The audit as a SARIF 2.1.0 log (a JSON-able dict); see the module docstring.

    Result locations point at `lockfile.path` relative to `project_dir` (see `artifact_uri`).
    """
    uri = artifact_uri(lockfile.path, project_dir)
    hits = [r for r in results if flagged(r)]
    by_rule: dict[str, list[Audited]] = {}
    for r in hits:
        by_rule.setdefault(rule_id(r), []).append(r)
    signals: dict[str, Finding] = {}
    for r in hits:
        for f in r.verdict.findings if r.verdict else ():
            signals.setdefault(f.signal_id, f)
    rules = [_policy_rule(rule, by_rule[rule]) for rule in sorted(by_rule)]
    rules += [_signal_rule(s, signals[s]) for s in sorted(signals)]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    missed = [r for r in results if unchecked(r)]
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "floodgate",
                        "version": tool_version,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [_notification(r, uri) for r in missed],
                    }
                ],
                "columnKind": "unicodeCodePoints",
                "results": [_result(r, uri, index) for r in hits],
                "properties": {
                    "lockfile": {
                        "uri": uri,
                        "kind": str(lockfile.kind),
                        "version": lockfile.version,
                        "root": lockfile.root,
                    },
                    "summary": summarize(results).to_json(),
                },
            }
        ],
    }
