"""Policy loading as tables: invalid policies name file, line and key path; valid ones parse.

Invalid rows are (text, line, where, detail): the PolicyError message must start with
`<file>:<line>: <where>: ` (where is the dotted key path, or `not valid YAML`) and contain
`detail`.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from proxy.detect.model import Label
from proxy.errors import PolicyError
from proxy.npm.semver import Range
from proxy.policy.engine import rule_matches
from proxy.policy.loader import load_policy, parse_policy, policy_warnings, split_spec
from proxy.policy.model import Action, FailMode, Match, Mode, Rule, Waiver
from tests.policy.verdicts import clean, malicious, subject

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "policies"
SOURCE = "policies/team.yaml"

RULES_OK = "rules:\n  - id: malicious\n    match: {labels: [malicious]}\n    action: block\n"


def _rule_with(match_yaml: str) -> str:
    """A one-rule policy whose `match:` block is `match_yaml` (at 6 spaces)."""
    return f"version: 1\nrules:\n  - id: r\n    match:\n{match_yaml}    action: block\n"


def _waiver(package: str = "left-pad@1.3.0", expires: str = "2026-12-31") -> str:
    return (
        RULES_OK + "waivers:\n"
        f"  - package: {package!r}\n"
        "    reason: pinned by a vendored build\n"
        "    owner: jane.doe@example.com\n"
        f"    expires: {expires}\n"
    )


INVALID: list[tuple[str, str, int, str, str]] = [
    # -- not YAML ---------------------------------------------------------------------------
    (
        "bad-indentation",
        "version: 1\nrules:\n  - id: malicious\n   action: block\n",
        4,
        "not valid YAML",
        "expected <block end>",
    ),
    ("tab-indent", "version: 1\nrules:\n\t- id: malicious\n", 3, "not valid YAML", "'\\t'"),
    (
        "unsafe-tag",
        "version: 1\nrules: !!python/object/apply:os.system ['id']\n",
        2,
        "not valid YAML",
        "could not determine a constructor",
    ),
    ("two-documents", "rules: []\n---\nrules: []\n", 2, "not valid YAML", "another document"),
    # -- top level ----------------------------------------------------------------------------
    ("top-level-list", "- id: malicious\n  action: block\n", 1, "(top level)", "got list"),
    ("unknown-top-key", "version: 1\nrule:\n  - id: a\n", 2, "rule", "unknown key"),
    ("unsupported-version", "version: 2\nrules: []\n", 1, "version", "unsupported policy"),
    ("version-as-text", "version: 'v1'\nrules: []\n", 1, "version", "'v1'"),
    ("rules-missing", "version: 1\nmode: enforce\n", 1, "rules", "expected a list of rules"),
    (
        "rules-a-mapping",
        "version: 1\nrules:\n  malicious: {action: block}\n",
        2,
        "rules",
        "expected a list of rules",
    ),
    ("rules-a-string", "version: 1\n\nrules: block\n", 3, "rules", "expected a list"),
    ("bad-mode", "version: 1\nmode: dry_run\nrules: []\n", 2, "mode", "'dry_run' is not one of"),
    ("bad-unscanned", "version: 1\nunscanned: maybe\nrules: []\n", 2, "unscanned", "'maybe'"),
    ("empty-name", "version: 1\nname: ''\nrules: []\n", 2, "name", "non-empty string"),
    # -- rules --------------------------------------------------------------------------------
    (
        "unknown-rule-key",
        "rules:\n  - id: malicious\n    match: {labels: [malicious]}\n    acton: block\n",
        4,
        "rules[0].acton",
        "unknown key (known: action, description, id, match, message, severity, unscanned)",
    ),
    (
        "bad-action",
        RULES_OK + "  - id: spam\n    match: {labels: [spam]}\n    action: deny\n",
        7,
        "rules[1].action",
        "'deny' is not one of: allow, monitor, warn, hide, block",
    ),
    (
        "missing-id",
        "rules:\n  - match: {labels: [malicious]}\n    action: block\n",
        2,
        "rules[0]",
        "a rule needs 'id'",
    ),
    (
        "missing-action",
        RULES_OK + "  - id: spam\n    match: {labels: [spam]}\n",
        5,
        "rules[1]",
        "a rule needs 'action'",
    ),
    ("id-not-text", "rules:\n  - id: 7\n    action: block\n", 2, "rules[0].id", "non-empty"),
    ("rule-not-mapping", RULES_OK + "  - block\n", 5, "rules[1]", "expected a mapping"),
    (
        "duplicate-id",
        RULES_OK + "  - id: spam\n    action: hide\n  - id: malicious\n    action: warn\n",
        7,
        "rules[2].id",
        "duplicate rule id 'malicious'",
    ),
    (
        "bad-rule-unscanned",
        "rules:\n  - id: m\n    action: block\n    unscanned: fail-closed\n",
        4,
        "rules[0].unscanned",
        "'fail-closed' is not one of: open, closed",
    ),
    # -- match --------------------------------------------------------------------------------
    (
        "match-a-list",
        "rules:\n  - id: m\n    match: [malicious]\n    action: block\n",
        3,
        "rules[0].match",
        "expected a mapping, got list",
    ),
    (
        "unknown-match-key",
        _rule_with("      labels: [spam]\n      signal: [tea-yaml]\n"),
        6,
        "rules[0].match.signal",
        "unknown key",
    ),
    (
        "bad-label-flow",
        _rule_with("      labels: [spam, malware]\n"),
        5,
        "rules[0].match.labels[1]",
        "'malware' is not one of: clean, suspicious, spam, malicious",
    ),
    (
        "bad-label-block",
        _rule_with("      labels:\n        - spam\n        - Malicious\n"),
        7,
        "rules[0].match.labels[1]",
        "'Malicious' is not one of",
    ),
    (
        "score-over-100",
        _rule_with("      min_score: 101\n"),
        5,
        "rules[0].match.min_score",
        "101 is not a score from 0 to 100",
    ),
    ("score-negative", _rule_with("      max_score: -1\n"), 5, "rules[0].match.max_score", "-1"),
    (
        "campaign-of-one",
        _rule_with("      min_campaign_size: 1\n"),
        5,
        "rules[0].match.min_campaign_size",
        "1 is not a campaign size (a whole number of 2 or more)",
    ),
    (
        "campaign-text",
        _rule_with("      min_campaign_size: many\n"),
        5,
        "rules[0].match.min_campaign_size",
        "'many' is not a campaign size",
    ),
    ("score-float", _rule_with("      min_score: 49.5\n"), 5, "rules[0].match.min_score", "49.5"),
    ("score-text", _rule_with("      min_score: '50'\n"), 5, "rules[0].match.min_score", "'50'"),
    ("score-bool", _rule_with("      min_score: true\n"), 5, "rules[0].match.min_score", "True"),
    (
        "duration-words",
        _rule_with("      version_younger_than: 3 days\n"),
        5,
        "rules[0].match.version_younger_than",
        "'3 days' is not a duration (like 90s, 30m, 12h, 7d, 2w)",
    ),
    (
        "duration-unit",
        _rule_with("      package_younger_than: 1y\n"),
        5,
        "rules[0].match.package_younger_than",
        "'1y' is not a duration",
    ),
    (
        "duration-negative",
        _rule_with("      version_younger_than: -5\n"),
        5,
        "rules[0].match.version_younger_than",
        "-5 is not a duration",
    ),
    (
        "bad-semver-range",
        _rule_with("      versions: '>=1.0.0 <banana'\n"),
        5,
        "rules[0].match.versions",
        "invalid semver range '>=1.0.0 <banana'",
    ),
    (
        "shadows-internal-text",
        _rule_with("      shadows_internal: 'yes'\n"),
        5,
        "rules[0].match.shadows_internal",
        "expected true or false",
    ),
    (
        "install-scripts-text",
        _rule_with("      install_scripts: 'yes'\n"),
        5,
        "rules[0].match.install_scripts",
        "expected true or false",
    ),
    ("empty-glob", _rule_with("      names: ['']\n"), 5, "rules[0].match.names[0]", "non-empty"),
    (
        "empty-scope-in-list",
        _rule_with("      scopes:\n        - corp\n        - ' '\n"),
        7,
        "rules[0].match.scopes[1]",
        "non-empty",
    ),
    # -- waivers ------------------------------------------------------------------------------
    (
        "waivers-a-string",
        RULES_OK + "waivers: left-pad@1.3.0\n",
        5,
        "waivers",
        "expected a list of waivers",
    ),
    (
        "unknown-waiver-key",
        RULES_OK + "waivers:\n  - package: left-pad\n    reason: r\n    owner: o\n"
        "    expiry: 2026-12-31\n",
        9,
        "waivers[0].expiry",
        "unknown key (known: expires, owner, package, reason)",
    ),
    (
        "waiver-missing-owner",
        RULES_OK + "waivers:\n  - package: left-pad\n    reason: r\n    expires: 2026-12-31\n",
        6,
        "waivers[0]",
        "a waiver needs 'owner'",
    ),
    (
        "waiver-bad-range",
        _waiver(package="left-pad@^^1"),
        6,
        "waivers[0].package",
        "invalid semver range '^^1'",
    ),
    (
        "waiver-impossible-date",
        _waiver(expires="2026-02-30"),
        9,
        "waivers[0].expires",
        "'2026-02-30' is not a date (YYYY-MM-DD)",
    ),
    (
        "waiver-date-format",
        _waiver(expires="31/12/2026"),
        9,
        "waivers[0].expires",
        "'31/12/2026' is not a date",
    ),
    ("waiver-date-number", _waiver(expires="20261231"), 9, "waivers[0].expires", "20261231"),
]


@pytest.mark.parametrize(
    ("text", "line", "where", "detail"),
    [pytest.param(*row[1:], id=row[0]) for row in INVALID],
)
def test_invalid_policy_names_file_line_and_key_path(
    text: str, line: int, where: str, detail: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}:{line}: {where}: "), message
    assert detail in message


@pytest.mark.parametrize("text", ["", "\n\n", "# to be written\n"])
def test_empty_policy_is_refused(text: str) -> None:
    # Nothing to point at: the message names the file and says the policy is empty.
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, SOURCE)
    assert str(caught.value) == f"{SOURCE}: (top level): the policy is empty"


def test_duplicate_key_in_a_mapping_is_refused() -> None:
    # YAML requires mapping keys to be unique. PyYAML keeps the last value silently, so a rule
    # written `action: block` and later `action: allow` would quietly allow everything it
    # matches. A malformed policy must be refused with the line of the repeated key.
    text = (
        "version: 1\n"
        "rules:\n"
        "  - id: malicious\n"
        "    match: {labels: [malicious]}\n"
        "    action: block\n"
        "    message: listed in the malicious-packages feed\n"
        "    action: allow\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}:7: "), message
    assert "action" in message
    assert "duplicate" in message


@pytest.mark.parametrize(
    "condition",
    ["names: []", "scopes: []", "labels: []", "signals: []", "osv: []"],
)
def test_an_empty_condition_list_never_turns_a_rule_into_match_all(condition: str) -> None:
    # `match` lists mean "any of these"; any of nothing is nothing. A templated `names: []` on
    # an allow rule must not allow every package, nor a block rule block every package: the
    # policy is either refused (naming the key) or the rule matches nothing.
    text = _rule_with(f"      {condition}\n")
    key = condition.split(":")[0]
    try:
        policy = parse_policy(text, SOURCE)
    except PolicyError as exc:
        refused = str(exc)
    else:
        for verdict in (clean(), malicious()):
            assert not rule_matches(policy.rules[0], subject(verdict)), (condition, verdict.label)
        return
    assert refused.startswith(f"{SOURCE}:5: rules[0].match.{key}"), refused


# -- files ----------------------------------------------------------------------------------

INVALID_FILES = [
    ("unknown-match-key.yaml", 11, "rules[1].match.label", "unknown key"),
    ("bad-yaml.yaml", 5, "not valid YAML", "expected <block end>"),
    ("duplicate-rule-id.yaml", 9, "rules[2].id", "duplicate rule id 'spam'"),
    ("bad-waiver-date.yaml", 10, "waivers[0].expires", "'2026-02-30' is not a date"),
    ("bad-action.yaml", 7, "rules[0].action", "'deny' is not one of"),
]


@pytest.mark.parametrize(("filename", "line", "where", "detail"), INVALID_FILES)
def test_invalid_policy_file(filename: str, line: int, where: str, detail: str) -> None:
    path = FIXTURES / "invalid" / filename
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: {where}: "), message
    assert detail in message


def test_comments_only_file_is_refused() -> None:
    path = FIXTURES / "invalid" / "comments-only.yaml"
    with pytest.raises(PolicyError, match="the policy is empty") as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"cannot read policy file .*missing\.yaml"):
        load_policy(tmp_path / "missing.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("rules: []\n# propriétaire\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"latin1\.yaml is not UTF-8 text"):
        load_policy(latin1)


def test_full_valid_file_parses_every_key() -> None:
    path = FIXTURES / "valid" / "team-ci.yaml"
    policy = load_policy(path)
    assert policy.name == "team-ci"
    assert policy.mode is Mode.DRY_RUN
    assert policy.unscanned is FailMode.CLOSED
    assert policy.source == path
    assert policy.rules == (
        Rule("trust-own-scope", Match(scopes=("@corp", "@corp-tools")), Action.ALLOW),
        Rule(
            "malicious",
            Match(labels=(Label.MALICIOUS,), osv=("*",)),
            Action.BLOCK,
            message="listed in the malicious-packages feed",
        ),
        Rule(
            "token-farming",
            Match(labels=(Label.SPAM,), signals=("tea-yaml", "tea-wallet-reuse"), min_score=50),
            Action.BLOCK,
            unscanned=FailMode.CLOSED,
        ),
        Rule(
            "fresh-with-scripts",
            Match(
                names=("*-sdk", "@aws-sdk/*"),
                versions=Range.parse(">=1.0.0 <3.0.0-0 || 3.0.0-beta.2"),
                version_younger_than=timedelta(hours=12),
                package_younger_than=timedelta(weeks=2),
                install_scripts=True,
            ),
            Action.WARN,
            unscanned=FailMode.OPEN,
        ),
        Rule("weak", Match(labels=(Label.SUSPICIOUS,), max_score=40), Action.MONITOR),
    )
    assert policy.waivers == (
        Waiver(
            "@corp/legacy-spa",
            Range.parse("^1.2.0"),
            "tea.yaml kept from an old open-source grant; code reviewed in INC-4411",
            "payments-platform",
            date(2026, 12, 31),
        ),
        Waiver(
            "left-pad",
            None,
            "pinned by a vendored build, replacement tracked in PAY-812",
            "jane.doe@example.com",
            date(2027, 1, 15),
        ),
    )
    assert [w.spec for w in policy.waivers] == ["@corp/legacy-spa@^1.2.0", "left-pad"]


def test_minimal_valid_file_takes_defaults() -> None:
    path = FIXTURES / "valid" / "minimal.yaml"
    policy = load_policy(path)
    assert policy.name == "minimal"  # the file's stem when the policy has no name
    assert policy.mode is Mode.ENFORCE
    assert policy.unscanned is FailMode.OPEN
    assert policy.waivers == ()
    assert policy.rules == (Rule("malicious", Match(labels=(Label.MALICIOUS,)), Action.BLOCK),)
    assert len(policy.digest) == 16
    assert int(policy.digest, 16) >= 0


@pytest.mark.parametrize(
    ("yaml_match", "expected"),
    [
        ("names: left-pad", Match(names=("left-pad",))),
        ("names: ['@corp/*', '*-sdk']", Match(names=("@corp/*", "*-sdk"))),
        ("scopes: [corp, '@corp-tools']", Match(scopes=("@corp", "@corp-tools"))),
        ("scopes: corp", Match(scopes=("@corp",))),
        ("labels: spam", Match(labels=(Label.SPAM,))),
        ("labels: [malicious, spam]", Match(labels=(Label.MALICIOUS, Label.SPAM))),
        ("min_score: 0", Match(min_score=0)),
        ("max_score: 100", Match(max_score=100)),
        ("signals: tea-yaml", Match(signals=("tea-yaml",))),
        ("osv: ['*']", Match(osv=("*",))),
        ("min_campaign_size: 3", Match(min_campaign_size=3)),
        ("osv: [MAL-2026-11724]", Match(osv=("MAL-2026-11724",))),
        ("versions: '^1.2.0'", Match(versions=Range.parse("^1.2.0"))),
        ("versions: 1.x", Match(versions=Range.parse("1.x"))),
        ("versions: '1.2.3 - 2.3'", Match(versions=Range.parse("1.2.3 - 2.3"))),
        ("install_scripts: false", Match(install_scripts=False)),
        ("version_younger_than: 90s", Match(version_younger_than=timedelta(seconds=90))),
        ("version_younger_than: 30m", Match(version_younger_than=timedelta(minutes=30))),
        ("version_younger_than: 12h", Match(version_younger_than=timedelta(hours=12))),
        ("version_younger_than: 1.5h", Match(version_younger_than=timedelta(minutes=90))),
        ("package_younger_than: 7d", Match(package_younger_than=timedelta(days=7))),
        ("package_younger_than: 2w", Match(package_younger_than=timedelta(days=14))),
        ("package_younger_than: 3600", Match(package_younger_than=timedelta(hours=1))),
    ],
)
def test_match_values(yaml_match: str, expected: Match) -> None:
    policy = parse_policy(_rule_with(f"      {yaml_match}\n"), SOURCE)
    assert policy.rules[0].match == expected


def test_an_empty_match_matches_everything_on_purpose() -> None:
    policy = parse_policy(
        "rules:\n  - id: everything\n    match: {}\n    action: monitor\n", SOURCE
    )
    assert policy.rules == (Rule("everything", Match(), Action.MONITOR),)


def test_a_rule_without_match_is_refused() -> None:
    # A forgotten `match:` would make the rule match every package (and block everything).
    with pytest.raises(PolicyError) as caught:
        parse_policy(RULES_OK + "  - id: all\n    action: block\n", SOURCE)
    assert str(caught.value) == (
        f"{SOURCE}:5: rules[1]: a rule needs 'match' (write `match: {{}}` to match every package)"
    )


@pytest.mark.parametrize(
    ("expires", "warned"),
    [(date(2026, 5, 31), True), (date(2026, 6, 1), False), (date(2027, 1, 1), False)],
)
def test_expired_waivers_are_warned_about(expires: date, warned: bool) -> None:
    text = RULES_OK + (
        "waivers:\n  - package: '@corp/legacy@^1.2.0'\n    reason: reviewed\n"
        f"    owner: sec@example.invalid\n    expires: {expires.isoformat()}\n"
    )
    warnings = policy_warnings(parse_policy(text, SOURCE), today=date(2026, 6, 1))
    if warned:
        assert warnings == [
            "waiver for @corp/legacy@^1.2.0 (owner sec@example.invalid) expired on 2026-05-31 "
            "and no longer applies"
        ]
    else:
        assert warnings == []


@pytest.mark.parametrize(
    ("package", "name", "versions"),
    [
        ("left-pad", "left-pad", None),
        ("left-pad@1.3.0", "left-pad", "1.3.0"),
        ("left-pad@", "left-pad", None),
        ("@scope/name", "@scope/name", None),
        ("@scope/name@^1.2.0", "@scope/name", "^1.2.0"),
        ("@types/*", "@types/*", None),
        ("@corp/*@>=2 <3", "@corp/*", ">=2 <3"),
    ],
)
def test_waiver_package_specs(package: str, name: str, versions: str | None) -> None:
    assert split_spec(package) == (name, versions)
    waiver = parse_policy(_waiver(package=package), SOURCE).waivers[0]
    assert waiver.name == name
    assert waiver.versions == (Range.parse(versions) if versions is not None else None)
    assert waiver.expires == date(2026, 12, 31)
    assert waiver.owner == "jane.doe@example.com"


def test_digest_follows_the_text_not_the_source() -> None:
    a = parse_policy(RULES_OK, "a.yaml")
    assert parse_policy(RULES_OK, "b.yaml").digest == a.digest
    assert parse_policy(RULES_OK + "# a comment\n", "a.yaml").digest != a.digest
    assert parse_policy(RULES_OK.replace("block", "hide"), "a.yaml").digest != a.digest


def test_name_from_yaml_beats_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "ci.yaml"
    path.write_text("name: payments-ci\n" + RULES_OK, encoding="utf-8")
    assert load_policy(path).name == "payments-ci"
    path.write_text(RULES_OK, encoding="utf-8")
    assert load_policy(path).name == "ci"


def test_rule_severity_for_npm_audit() -> None:
    text = (
        "rules:\n  - id: a\n    action: warn\n    severity: critical\n    match: {}\n"
        "  - id: b\n    action: block\n    match: {}\n"
    )
    policy = parse_policy(text, "p.yaml")
    assert policy.rules[0].audit_severity.value == "critical"
    assert policy.rules[1].audit_severity.value == "high"  # from the action
    with pytest.raises(PolicyError, match=r"p\.yaml:4: rules\[0\]\.severity: 'urgent' is not one"):
        parse_policy(text.replace("critical", "urgent"), "p.yaml")
