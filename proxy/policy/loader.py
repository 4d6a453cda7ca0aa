"""Load and validate policy YAML. Errors name the file, the line and the key path.

version: 1
mode: enforce              # or dry-run
unscanned: open            # default for rules: open or closed (see FailMode)
rules:                     # first match wins
  - id: malicious
    match: {labels: [malicious]}
    action: block          # allow | monitor | warn | hide | block
    message: optional text users see
    unscanned: closed      # optional, overrides the default
waivers:
  - package: left-pad@1.3.0   # name (or glob) and optional semver range
    reason: why it is allowed
    owner: who decided
    expires: 2026-12-31
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

from proxy.detect.model import Label
from proxy.errors import PolicyError
from proxy.npm.semver import Range, SemverError
from proxy.policy.model import Action, FailMode, Match, Mode, Policy, Rule, Severity, Waiver

T = TypeVar("T")
KeyPath = tuple[str | int, ...]

TOP_KEYS = {"version", "name", "description", "mode", "unscanned", "rules", "waivers"}
RULE_KEYS = {"id", "description", "match", "action", "message", "unscanned", "severity"}
WAIVER_KEYS = {"package", "reason", "owner", "expires"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text, so a bad date is our error with a line number."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Invalid(Exception):
    def __init__(self, path: KeyPath, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _line_of(node: yaml.Node | None, path: KeyPath) -> int | None:
    """The 1-based line of the node at `path` (or of its deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            # the last occurrence: that is the one a duplicate-key error is about
            found = next(((k, v) for k, v in reversed(node.value) if k.value == part), None)
            if found is None:
                break
            node = found[1]
            line = found[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _no_duplicate_keys(node: yaml.Node | None, path: KeyPath) -> None:
    """YAML requires unique keys; PyYAML keeps the last silently, so check the node tree."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise _Invalid((*path, key), "duplicate key (YAML keys must be unique)")
            seen.add(key)
            _no_duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicate_keys(item, (*path, i))


def parse_policy(text: str, source: str | Path = "<policy>") -> Policy:
    """Validate policy YAML text; raise PolicyError naming `source`, line and key path."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}{where}: not valid YAML: {problem}") from exc
    try:
        _no_duplicate_keys(node, ())
        policy = _policy(data)
    except _Invalid as exc:
        line = _line_of(node, exc.path)
        where = f":{line}" if line is not None else ""
        raise PolicyError(f"{source}{where}: {_dotted(exc.path)}: {exc.message}") from None
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    src = Path(source) if isinstance(source, Path) else None
    name = policy.name or (src.stem if src is not None else "policy")
    return Policy(policy.rules, policy.waivers, policy.mode, policy.unscanned, name, digest, src)


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path} is not UTF-8 text") from exc
    return parse_policy(text, path)


# -- validation ------------------------------------------------------------------------------


def _mapping(value: Any, path: KeyPath, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in keys:
            raise _Invalid((*path, str(key)), f"unknown key (known: {', '.join(sorted(keys))})")
    return value


def _enum(kind: Callable[[str], T], value: Any, path: KeyPath, choices: list[str]) -> T:
    try:
        return kind(str(value))
    except ValueError:
        raise _Invalid(path, f"{value!r} is not one of: {', '.join(choices)}") from None


def _str(value: Any, path: KeyPath) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(path, "expected a non-empty string")
    return value.strip()


def _strings(value: Any, path: KeyPath) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        # An empty list would make the condition vanish, and the rule match everything.
        raise _Invalid(path, "an empty list matches nothing; remove the key to match any")
    return tuple(_str(item, (*path, i)) for i, item in enumerate(items))


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `30m`, `12h`, `7d`, `2w` (a number and a unit) as a timedelta; None otherwise."""
    m = _DURATION.match(text)
    return timedelta(seconds=float(m[1]) * _UNITS[m[2]]) if m else None


def _duration(value: Any, path: KeyPath) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    found = parse_duration(str(value))
    if found is None:
        raise _Invalid(path, f"{value!r} is not a duration (like 90s, 30m, 12h, 7d, 2w)")
    return found


def _range(value: Any, path: KeyPath) -> Range:
    try:
        return Range.parse(str(value))
    except SemverError as exc:
        raise _Invalid(path, str(exc)) from None


def _score(value: Any, path: KeyPath) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise _Invalid(path, f"{value!r} is not a score from 0 to 100")
    return value


def _campaign_size(value: Any, path: KeyPath) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise _Invalid(path, f"{value!r} is not a campaign size (a whole number of 2 or more)")
    return value


MATCH_KEYS = {
    "names",
    "scopes",
    "versions",
    "labels",
    "min_score",
    "max_score",
    "signals",
    "osv",
    "min_campaign_size",
    "version_younger_than",
    "package_younger_than",
    "install_scripts",
    "shadows_internal",
}


def _match(value: Any, path: KeyPath) -> Match:
    if value is None:
        return Match()
    m = _mapping(value, path, MATCH_KEYS)
    labels = tuple(
        _enum(Label, item, (*path, "labels", i), [lb.value for lb in Label])
        for i, item in enumerate(_strings(m["labels"], (*path, "labels")) if "labels" in m else ())
    )
    scopes = tuple(
        s if s.startswith("@") else "@" + s
        for s in (_strings(m["scopes"], (*path, "scopes")) if "scopes" in m else ())
    )
    scripts = m.get("install_scripts")
    if scripts is not None and not isinstance(scripts, bool):
        raise _Invalid((*path, "install_scripts"), "expected true or false")
    shadows = m.get("shadows_internal")
    if shadows is not None and not isinstance(shadows, bool):
        raise _Invalid((*path, "shadows_internal"), "expected true or false")

    def opt(key: str, convert: Callable[[Any, KeyPath], T]) -> T | None:
        return convert(m[key], (*path, key)) if key in m else None

    low, high = opt("min_score", _score), opt("max_score", _score)
    if low is not None and high is not None and low > high:
        raise _Invalid((*path, "min_score"), f"min_score {low} is above max_score {high}")
    return Match(
        names=_strings(m["names"], (*path, "names")) if "names" in m else (),
        scopes=scopes,
        versions=opt("versions", _range),
        labels=labels,
        min_score=opt("min_score", _score),
        max_score=opt("max_score", _score),
        signals=_strings(m["signals"], (*path, "signals")) if "signals" in m else (),
        osv=_strings(m["osv"], (*path, "osv")) if "osv" in m else (),
        min_campaign_size=opt("min_campaign_size", _campaign_size),
        version_younger_than=opt("version_younger_than", _duration),
        package_younger_than=opt("package_younger_than", _duration),
        install_scripts=scripts,
        shadows_internal=shadows,
    )


def _fail_mode(value: Any, path: KeyPath) -> FailMode:
    return _enum(FailMode, value, path, [f.value for f in FailMode])


def _rule(value: Any, path: KeyPath) -> Rule:
    r = _mapping(value, path, RULE_KEYS)
    for required in ("id", "action"):
        if required not in r:
            raise _Invalid(path, f"a rule needs {required!r}")
    return Rule(
        id=_str(r["id"], (*path, "id")),
        match=_match(r.get("match"), (*path, "match")),
        action=_enum(Action, r["action"], (*path, "action"), [a.value for a in Action]),
        message=_str(r["message"], (*path, "message")) if "message" in r else "",
        unscanned=_fail_mode(r["unscanned"], (*path, "unscanned")) if "unscanned" in r else None,
        severity=(
            _enum(Severity, r["severity"], (*path, "severity"), [v.value for v in Severity])
            if "severity" in r
            else None
        ),
    )


def split_spec(spec: str) -> tuple[str, str | None]:
    """`name@range` (scoped names keep their leading @) into (name, range or None)."""
    at = spec.rfind("@")
    if at > 0:
        return spec[:at], spec[at + 1 :] or None
    return spec, None


def _waiver(value: Any, path: KeyPath) -> Waiver:
    w = _mapping(value, path, WAIVER_KEYS)
    for required in sorted(WAIVER_KEYS):
        if required not in w:
            raise _Invalid(path, f"a waiver needs {required!r}")
    name, rng = split_spec(_str(w["package"], (*path, "package")))
    expires = w["expires"]
    if isinstance(expires, str):
        try:
            expires = date.fromisoformat(expires)
        except ValueError:
            raise _Invalid((*path, "expires"), f"{expires!r} is not a date (YYYY-MM-DD)") from None
    if not isinstance(expires, date):
        raise _Invalid((*path, "expires"), f"{expires!r} is not a date (YYYY-MM-DD)")
    return Waiver(
        name=name,
        versions=_range(rng, (*path, "package")) if rng else None,
        reason=_str(w["reason"], (*path, "reason")),
        owner=_str(w["owner"], (*path, "owner")),
        expires=expires,
    )


def _policy(data: Any) -> Policy:
    if data is None:
        raise _Invalid((), "the policy is empty")
    top = _mapping(data, (), TOP_KEYS)
    version = top.get("version", 1)
    if isinstance(version, bool) or version != 1:
        raise _Invalid(("version",), f"unsupported policy version {top['version']!r} (known: 1)")
    raw_rules = top.get("rules")
    if not isinstance(raw_rules, list):
        raise _Invalid(("rules",), "expected a list of rules")
    rules = tuple(_rule(r, ("rules", i)) for i, r in enumerate(raw_rules))
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise _Invalid(("rules", i, "id"), f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
    for i, raw in enumerate(raw_rules):
        if "match" not in raw:
            # Without it the rule matches every package: one forgotten line blocks everything.
            raise _Invalid(
                ("rules", i), "a rule needs 'match' (write `match: {}` to match every package)"
            )
    raw_waivers = top.get("waivers", [])
    if raw_waivers is None:
        raw_waivers = []
    if not isinstance(raw_waivers, list):
        raise _Invalid(("waivers",), "expected a list of waivers")
    return Policy(
        rules=rules,
        waivers=tuple(_waiver(w, ("waivers", i)) for i, w in enumerate(raw_waivers)),
        mode=_enum(Mode, top.get("mode", "enforce"), ("mode",), [m.value for m in Mode]),
        unscanned=_fail_mode(top.get("unscanned", "open"), ("unscanned",)),
        name=_str(top["name"], ("name",)) if "name" in top else "",
    )


def policy_warnings(policy: Policy, today: date) -> list[str]:
    """What is valid but probably not meant: waivers that no longer apply (pure)."""
    return [
        f"waiver for {w.name}{'@' + w.versions.raw if w.versions else ''} "
        f"(owner {w.owner}) expired on {w.expires.isoformat()} and no longer applies"
        for w in policy.waivers
        if not w.active(today)
    ]
