"""The policy engine as tables: each condition with rows that hold and rows that do not, then
`decide`'s order (first match, fail-closed, waivers, dry-run), all with a fixed clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from proxy.detect.model import Label, Verdict
from proxy.npm.semver import Range
from proxy.policy.engine import (
    Subject,
    check_match,
    decide,
    decide_by_rules,
    decider,
    rule_matches,
)
from proxy.policy.model import (
    ALLOWED,
    Action,
    Decision,
    FailMode,
    Match,
    Mode,
    Policy,
    Rule,
    ScanState,
    Severity,
    Waiver,
)
from tests.policy.verdicts import (
    NOW,
    campaign_spam,
    clean,
    days_ago,
    malicious,
    osv_spam,
    seo_spam,
    subject,
    suspicious,
    tea_spam,
    with_scripts,
)

WEEK = timedelta(days=7)

# (id, match, subject, expected holds); each match sets exactly one condition.
CONDITIONS: list[tuple[str, Match, Subject, bool]] = [
    # names: globs, case-sensitive, any of the list
    ("name-exact", Match(names=("left-pad",)), subject(None, name="left-pad"), True),
    ("name-exact-miss", Match(names=("left-pad",)), subject(None, name="left-pads"), False),
    ("name-case", Match(names=("Left-Pad",)), subject(None, name="left-pad"), False),
    ("name-scope-glob", Match(names=("@corp/*",)), subject(None, name="@corp/ui-kit"), True),
    ("name-scope-glob-miss", Match(names=("@corp/*",)), subject(None, name="@corpx/ui"), False),
    ("name-suffix-glob", Match(names=("*-sdk",)), subject(None, name="aws-sdk"), True),
    ("name-suffix-glob-miss", Match(names=("*-sdk",)), subject(None, name="sdk-tools"), False),
    ("name-any-of", Match(names=("lodash", "left-*")), subject(None, name="left-pad"), True),
    ("name-none-of", Match(names=("lodash", "left-*")), subject(None, name="right-pad"), False),
    # scopes: the name's scope, not a prefix of it
    ("scope", Match(scopes=("@corp",)), subject(None, name="@corp/ui-kit"), True),
    ("scope-any-of", Match(scopes=("@a", "@corp")), subject(None, name="@corp/ui-kit"), True),
    ("scope-longer", Match(scopes=("@corp",)), subject(None, name="@corporate/ui"), False),
    ("scope-unscoped", Match(scopes=("@corp",)), subject(None, name="corp-ui"), False),
    # versions: npm ranges, node-semver's prerelease rule
    ("caret-in", Match(versions=Range.parse("^1.2.0")), subject(None, version="1.4.2"), True),
    ("caret-low", Match(versions=Range.parse("^1.2.0")), subject(None, version="1.1.9"), False),
    ("caret-next", Match(versions=Range.parse("^1.2.0")), subject(None, version="2.0.0"), False),
    (
        "prerelease-outside-range-tuple",
        Match(versions=Range.parse("^1.2.0")),
        subject(None, version="1.3.0-beta.1"),
        False,
    ),
    (
        "prerelease-named-by-range",
        Match(versions=Range.parse(">=1.3.0-beta.0 <2.0.0")),
        subject(None, version="1.3.0-beta.1"),
        True,
    ),
    (
        "prerelease-below-named",
        Match(versions=Range.parse(">=1.3.0-beta.2 <2.0.0")),
        subject(None, version="1.3.0-beta.1"),
        False,
    ),
    ("union", Match(versions=Range.parse("1.x || >=3")), subject(None, version="3.1.0"), True),
    ("union-gap", Match(versions=Range.parse("1.x || >=3")), subject(None, version="2.9.9"), False),
    ("not-semver", Match(versions=Range.parse("*")), subject(None, version="latest"), False),
    # labels
    ("label", Match(labels=(Label.SPAM, Label.MALICIOUS)), subject(tea_spam()), True),
    ("label-other", Match(labels=(Label.SPAM, Label.MALICIOUS)), subject(suspicious()), False),
    ("label-clean", Match(labels=(Label.CLEAN,)), subject(clean()), True),
    ("label-no-verdict", Match(labels=(Label.CLEAN,)), subject(None), False),
    # scores: inclusive bounds; no verdict never matches
    ("min-score-above", Match(min_score=50), subject(tea_spam()), True),
    ("min-score-equal", Match(min_score=50), subject(seo_spam()), True),
    ("min-score-below", Match(min_score=50), subject(suspicious()), False),
    ("min-score-no-verdict", Match(min_score=0), subject(None), False),
    ("max-score-below", Match(max_score=20), subject(suspicious()), True),
    ("max-score-equal", Match(max_score=19), subject(suspicious()), True),
    ("max-score-above", Match(max_score=20), subject(tea_spam()), False),
    ("max-score-no-verdict", Match(max_score=100), subject(None), False),
    # campaign size: the campaign finding's member count; no campaign is size 0
    ("campaign-large", Match(min_campaign_size=3), subject(campaign_spam(5)), True),
    ("campaign-equal", Match(min_campaign_size=5), subject(campaign_spam(5)), True),
    ("campaign-small", Match(min_campaign_size=6), subject(campaign_spam(5)), False),
    ("campaign-none", Match(min_campaign_size=2), subject(tea_spam()), False),
    ("campaign-no-verdict", Match(min_campaign_size=2), subject(None), False),
    # signals: any of them fired
    ("signal", Match(signals=("tea-yaml", "tea-wallet-reuse")), subject(tea_spam()), True),
    ("signal-other", Match(signals=("tea-yaml", "tea-wallet-reuse")), subject(seo_spam()), False),
    ("signal-weak", Match(signals=("trivial-code",)), subject(suspicious()), True),
    ("signal-clean", Match(signals=("trivial-code",)), subject(clean()), False),
    ("signal-no-verdict", Match(signals=("spam-name",)), subject(None), False),
    # osv: a listed id (primary or alias), or "*" for any record
    ("osv-alias", Match(osv=("MAL-2026-11724",)), subject(malicious()), True),
    ("osv-id", Match(osv=("LWA-2026-10072",)), subject(malicious()), True),
    ("osv-other-id", Match(osv=("MAL-2026-12067",)), subject(malicious()), False),
    ("osv-any", Match(osv=("*",)), subject(osv_spam()), True),
    ("osv-any-no-record", Match(osv=("*",)), subject(tea_spam()), False),
    ("osv-any-no-verdict", Match(osv=("*",)), subject(None), False),
    # ages: strictly younger than; an unknown publish time never matches
    (
        "version-young",
        Match(version_younger_than=WEEK),
        subject(None, published=days_ago(2)),
        True,
    ),
    ("version-old", Match(version_younger_than=WEEK), subject(None, published=days_ago(8)), False),
    (
        "version-exact",
        Match(version_younger_than=WEEK),
        subject(None, published=days_ago(7)),
        False,
    ),
    ("version-unknown", Match(version_younger_than=WEEK), subject(None, published=None), False),
    (
        "version-age-ignores-created",
        Match(version_younger_than=WEEK),
        subject(None, published=days_ago(400), created=days_ago(1)),
        False,
    ),
    (
        "package-young",
        Match(package_younger_than=timedelta(days=30)),
        subject(None, created=days_ago(3), published=days_ago(400)),
        True,
    ),
    (
        "package-old",
        Match(package_younger_than=timedelta(days=30)),
        subject(None, created=days_ago(400), published=days_ago(1)),
        False,
    ),
    (
        "package-unknown",
        Match(package_younger_than=timedelta(days=30)),
        subject(None, created=None, published=days_ago(1)),
        False,
    ),
    # install scripts: true, false, unknown (unknown matches neither)
    ("scripts-yes-yes", Match(install_scripts=True), subject(None, install_scripts=True), True),
    ("scripts-yes-no", Match(install_scripts=True), subject(None, install_scripts=False), False),
    ("scripts-yes-unknown", Match(install_scripts=True), subject(None), False),
    ("scripts-no-no", Match(install_scripts=False), subject(None, install_scripts=False), True),
    ("scripts-no-yes", Match(install_scripts=False), subject(None, install_scripts=True), False),
    ("scripts-no-unknown", Match(install_scripts=False), subject(None), False),
    # a twin of an internal name (the gate knows which; see proxy.internal)
    (
        "shadows-yes",
        Match(shadows_internal=True),
        subject(clean(), name="acme_utils", shadows="acme-utils"),
        True,
    ),
    ("shadows-no", Match(shadows_internal=True), subject(clean()), False),
    ("not-shadows", Match(shadows_internal=False), subject(clean()), True),
]


@pytest.mark.parametrize(
    ("match", "s", "holds"), [pytest.param(*row[1:], id=row[0]) for row in CONDITIONS]
)
def test_each_condition(match: Match, s: Subject, holds: bool) -> None:
    checks = check_match(match, s)
    assert len(checks) == 1
    assert checks[0].holds is holds, checks[0].detail
    assert rule_matches(Rule("r", match, Action.BLOCK), s) is holds


def test_conditions_are_named_after_their_keys() -> None:
    every = Match(
        names=("*",),
        scopes=("@corp",),
        versions=Range.parse("*"),
        labels=(Label.SPAM,),
        min_score=0,
        max_score=100,
        signals=("tea-yaml",),
        osv=("*",),
        min_campaign_size=2,
        version_younger_than=WEEK,
        package_younger_than=WEEK,
        install_scripts=True,
    )
    names = [c.condition for c in check_match(every, subject(tea_spam()))]
    assert names == [
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
    ]


@pytest.mark.parametrize(
    ("match", "s", "matches"),
    [
        pytest.param(Match(), subject(None), True, id="empty-match-everything"),
        pytest.param(Match(), subject(malicious()), True, id="empty-match-malicious"),
        pytest.param(
            Match(scopes=("@or-sdk",), labels=(Label.MALICIOUS,)),
            subject(malicious()),
            True,
            id="all-hold",
        ),
        pytest.param(
            Match(scopes=("@or-sdk",), labels=(Label.MALICIOUS,)),
            subject(malicious(name="hwi-lib", version="1.0.2")),
            False,
            id="one-fails",
        ),
        pytest.param(
            Match(labels=(Label.SUSPICIOUS,), install_scripts=True),
            subject(with_scripts(), install_scripts=True),
            True,
            id="label-and-scripts",
        ),
        pytest.param(
            Match(labels=(Label.SUSPICIOUS,), install_scripts=True),
            subject(suspicious(), install_scripts=False),
            False,
            id="label-without-scripts",
        ),
    ],
)
def test_all_conditions_must_hold(match: Match, s: Subject, matches: bool) -> None:
    assert rule_matches(Rule("r", match, Action.BLOCK), s) is matches


# -- first match ------------------------------------------------------------------------------

ORDERED = Policy(
    rules=(
        Rule("own-scope", Match(scopes=("@or-sdk",)), Action.ALLOW),
        Rule("malicious", Match(labels=(Label.MALICIOUS,)), Action.BLOCK),
        Rule(
            "token-farming",
            Match(labels=(Label.SPAM,), signals=("tea-yaml",)),
            Action.BLOCK,
            message="tea.xyz token farming",
        ),
        Rule("spam", Match(labels=(Label.SPAM,)), Action.HIDE),
        Rule("scripts", Match(labels=(Label.SUSPICIOUS,), install_scripts=True), Action.MONITOR),
        Rule("weak", Match(labels=(Label.SUSPICIOUS,)), Action.WARN),
    ),
    name="ordered",
)


@pytest.mark.parametrize(
    ("s", "action", "rule", "reason"),
    [
        # an earlier allow wins over a later block
        pytest.param(subject(malicious()), Action.ALLOW, "own-scope", "", id="allow-first"),
        pytest.param(
            subject(malicious(name="hwi-lib", version="1.0.2")),
            Action.BLOCK,
            "malicious",
            "the malicious-packages feed lists @or-sdk/sdk-api@0.29.4 as malicious "
            "(LWA-2026-10072, MAL-2026-11724)",
            id="block",
        ),
        # token-farming (block) comes before spam (hide); the rule's message is the reason
        pytest.param(
            subject(tea_spam()), Action.BLOCK, "token-farming", "tea.xyz token farming", id="tea"
        ),
        pytest.param(
            subject(seo_spam()),
            Action.HIDE,
            "spam",
            "the name is built from SEO-spam words "
            "(vbucks, free, generator, 2024, human, verification)",
            id="seo",
        ),
        pytest.param(
            subject(with_scripts(), install_scripts=True),
            Action.MONITOR,
            "scripts",
            "the entry point index.js is empty or only prints a greeting; "
            "it runs a preinstall script: 'node setup.mjs'",
            id="monitor",
        ),
        pytest.param(
            subject(with_scripts(), install_scripts=None),
            Action.WARN,
            "weak",
            "the entry point index.js is empty or only prints a greeting; "
            "it runs a preinstall script: 'node setup.mjs'",
            id="scripts-unknown-falls-through",
        ),
        pytest.param(subject(clean()), Action.ALLOW, "", "no rule matched", id="no-match"),
        pytest.param(subject(None), Action.ALLOW, "", "no rule matched", id="no-verdict"),
    ],
)
def test_first_match_wins(s: Subject, action: Action, rule: str, reason: str) -> None:
    d = decide(ORDERED, s)
    assert (d.action, d.intended, d.rule) == (action, action, rule)
    if reason:
        assert d.reason == reason
    assert not d.pending
    assert d.details == (s.verdict.reasons if s.verdict is not None else ())


def test_no_match_is_allow() -> None:
    assert decide(ORDERED, subject(clean())) == ALLOWED
    assert not ALLOWED.acted
    assert decide(Policy(rules=()), subject(malicious())) == ALLOWED


def test_reason_without_message_or_findings_names_the_rule() -> None:
    policy = Policy(rules=(Rule("fresh", Match(version_younger_than=WEEK), Action.WARN),))
    d = decide(policy, subject(clean(), published=days_ago(1)))
    assert d.reason == "matched policy rule 'fresh'"


def test_reason_lists_at_most_three_findings() -> None:
    v = Verdict(
        "brave_otter_x7k2",
        "1.0.0",
        75,
        Label.SPAM,
        (*tea_spam().findings, *seo_spam().findings, *suspicious().findings),
        "1",
    )
    policy = Policy(rules=(Rule("spam", Match(labels=(Label.SPAM,)), Action.HIDE),))
    d = decide(policy, subject(v))
    assert d.reason == "; ".join(v.reasons[:3])
    assert len(v.reasons) == 4
    assert d.details == v.reasons


# -- waivers ------------------------------------------------------------------------------------

BLOCK_SPAM = Rule("spam", Match(labels=(Label.SPAM,)), Action.BLOCK)


def _waived(*waivers: Waiver, mode: Mode = Mode.ENFORCE) -> Policy:
    return Policy(rules=(BLOCK_SPAM,), waivers=waivers, mode=mode, name="waived")


KOPILIONG = Waiver(
    "kopiliong",
    Range.parse("^0.1.0"),
    "tea.yaml kept from an old grant; reviewed in INC-4411",
    "payments-platform",
    date(2026, 8, 31),
)
CORP = Waiver("@corp/*", None, "internal packages are reviewed", "security", date(2026, 12, 31))


@pytest.mark.parametrize(
    ("waiver", "s", "waived"),
    [
        pytest.param(KOPILIONG, subject(tea_spam()), True, id="active"),
        pytest.param(
            KOPILIONG,
            subject(tea_spam(), now=datetime(2026, 8, 31, 23, 59, tzinfo=UTC)),
            True,
            id="last-day",
        ),
        pytest.param(
            KOPILIONG,
            subject(tea_spam(), now=datetime(2026, 9, 1, 0, 0, tzinfo=UTC)),
            False,
            id="expired-day-after",
        ),
        pytest.param(KOPILIONG, subject(tea_spam(version="0.2.0")), False, id="range-misses"),
        pytest.param(
            KOPILIONG, subject(tea_spam(version="0.1.1-rc.1")), False, id="range-prerelease"
        ),
        pytest.param(KOPILIONG, subject(tea_spam(name="kopiliongs")), False, id="other-name"),
        pytest.param(CORP, subject(seo_spam(name="@corp/ui-kit")), True, id="glob-any-version"),
        pytest.param(CORP, subject(seo_spam(name="@corpx/ui-kit")), False, id="glob-misses"),
    ],
)
def test_waivers(waiver: Waiver, s: Subject, waived: bool) -> None:
    d = decide(_waived(waiver), s)
    assert d.rule == "spam"
    assert d.intended is Action.BLOCK
    assert d.acted
    if waived:
        assert d.action is Action.ALLOW
        assert d.waiver == waiver.spec
        assert d.reason == (
            f"waived until {waiver.expires.isoformat()} by {waiver.owner}: {waiver.reason}"
        )
    else:
        assert d.action is Action.BLOCK
        assert d.waiver == ""


def test_a_waiver_does_not_touch_what_no_rule_matched() -> None:
    assert decide(_waived(KOPILIONG), subject(clean(name="kopiliong", version="0.1.0"))) == ALLOWED


def test_the_first_active_covering_waiver_is_named() -> None:
    expired = Waiver("kopiliong", None, "old exception", "security", date(2026, 1, 31))
    d = decide(_waived(expired, KOPILIONG), subject(tea_spam()))
    assert (d.action, d.waiver) == (Action.ALLOW, "kopiliong@^0.1.0")


# -- dry-run ------------------------------------------------------------------------------------

DRY = Policy(rules=ORDERED.rules, mode=Mode.DRY_RUN, name="dry")


@pytest.mark.parametrize(
    ("s", "action", "intended"),
    [
        pytest.param(subject(malicious(name="hwi-lib")), Action.MONITOR, Action.BLOCK, id="block"),
        pytest.param(subject(seo_spam()), Action.MONITOR, Action.HIDE, id="hide"),
        pytest.param(subject(suspicious()), Action.MONITOR, Action.WARN, id="warn"),
        pytest.param(
            subject(with_scripts(), install_scripts=True),
            Action.MONITOR,
            Action.MONITOR,
            id="monitor",
        ),
        pytest.param(subject(malicious()), Action.ALLOW, Action.ALLOW, id="allow-rule"),
        pytest.param(subject(clean()), Action.ALLOW, Action.ALLOW, id="no-match"),
    ],
)
def test_dry_run_serves_everything_and_keeps_intent(
    s: Subject, action: Action, intended: Action
) -> None:
    d = decide(DRY, s)
    assert (d.action, d.intended) == (action, intended)
    enforced = decide(Policy(rules=ORDERED.rules, name="enforced"), s)
    assert (d.rule, d.reason, d.details) == (enforced.rule, enforced.reason, enforced.details)
    assert enforced.action is intended
    assert d.acted is (intended is not Action.ALLOW)


def test_dry_run_keeps_waivers() -> None:
    d = decide(_waived(KOPILIONG, mode=Mode.DRY_RUN), subject(tea_spam()))
    assert (d.action, d.intended, d.waiver) == (Action.ALLOW, Action.BLOCK, "kopiliong@^0.1.0")


def test_dry_run_of_a_pending_refusal() -> None:
    policy = Policy(rules=(BLOCK_SPAM,), mode=Mode.DRY_RUN, unscanned=FailMode.CLOSED)
    d = decide(policy, subject(None, scan=ScanState.UNAVAILABLE))
    assert (d.action, d.intended, d.rule, d.pending) == (
        Action.MONITOR,
        Action.BLOCK,
        "spam",
        True,
    )


# -- a tarball not scanned in time ------------------------------------------------------------

MAL_CLOSED = Rule(
    "malicious", Match(labels=(Label.MALICIOUS,)), Action.BLOCK, unscanned=FailMode.CLOSED
)
MAL_OPEN = Rule(
    "malicious", Match(labels=(Label.MALICIOUS,)), Action.BLOCK, unscanned=FailMode.OPEN
)
MAL = Rule("malicious", Match(labels=(Label.MALICIOUS,)), Action.BLOCK)
SPAM_HIDE = Rule("spam", Match(labels=(Label.SPAM,)), Action.HIDE)
WEAK_WARN = Rule("weak", Match(labels=(Label.SUSPICIOUS,)), Action.WARN)
CORP_SPAM = Rule(
    "corp-spam", Match(scopes=("@corp",), labels=(Label.SPAM,)), Action.BLOCK, unscanned=None
)
FRESH = Rule("fresh", Match(version_younger_than=timedelta(hours=12)), Action.BLOCK)
HOUR_AGO = NOW - timedelta(hours=1)
OPEN, CLOSED = FailMode.OPEN, FailMode.CLOSED
BLOCK, HIDE, ALLOW = Action.BLOCK, Action.HIDE, Action.ALLOW
METADATA = ScanState.METADATA


def unscanned(
    verdict: Verdict | None, name: str | None = None, published: datetime | None = None
) -> Subject:
    """A tarball request whose scan did not finish in time; `verdict` is what was known."""
    return subject(verdict, name=name, published=published, scan=ScanState.UNAVAILABLE)


# (id, rules, policy default, subject, expected action, expected rule, pending)
UNSCANNED: list[tuple[str, tuple[Rule, ...], FailMode, Subject, Action, str, bool]] = [
    ("rule-closed", (MAL_CLOSED,), OPEN, unscanned(None), BLOCK, "malicious", True),
    (
        "clean-metadata",
        (MAL_CLOSED,),
        OPEN,
        unscanned(clean()),
        BLOCK,
        "malicious",
        True,
    ),
    ("policy-closed", (MAL,), CLOSED, unscanned(None), BLOCK, "malicious", True),
    ("policy-open", (MAL,), OPEN, unscanned(None), ALLOW, "", False),
    ("rule-open-overrides-closed", (MAL_OPEN,), CLOSED, unscanned(None), ALLOW, "", False),
    ("hide-rule-refuses-the-tarball", (SPAM_HIDE,), CLOSED, unscanned(None), BLOCK, "spam", True),
    ("warn-rule-never-holds", (WEAK_WARN,), CLOSED, unscanned(None), ALLOW, "", False),
    ("other-scope-not-held", (CORP_SPAM,), CLOSED, unscanned(None, "left-pad"), ALLOW, "", False),
    ("own-scope-held", (CORP_SPAM,), CLOSED, unscanned(None, "@corp/ui"), BLOCK, "corp-spam", True),
    (
        "age-rule-not-held",
        (FRESH,),
        CLOSED,
        unscanned(None, None, days_ago(3)),
        ALLOW,
        "",
        False,
    ),
    (
        "age-rule-decides",
        (FRESH,),
        OPEN,
        unscanned(None, None, HOUR_AGO),
        BLOCK,
        "fresh",
        False,
    ),
    # an earlier fail-closed rule holds the tarball before a later rule can decide on metadata
    (
        "earlier-closed-rule-holds",
        (MAL_CLOSED, SPAM_HIDE),
        OPEN,
        unscanned(osv_spam()),
        BLOCK,
        "malicious",
        True,
    ),
    ("metadata-decides", (SPAM_HIDE, MAL_CLOSED), OPEN, unscanned(osv_spam()), HIDE, "spam", False),
    ("known-malicious", (MAL_CLOSED,), OPEN, unscanned(malicious()), BLOCK, "malicious", False),
    (
        "packument-not-held",
        (MAL_CLOSED,),
        CLOSED,
        subject(None, scan=METADATA),
        ALLOW,
        "",
        False,
    ),
    ("scanned-tarball-not-held", (MAL_CLOSED,), CLOSED, subject(clean()), ALLOW, "", False),
    # Rules are ordered and the first match wins: `malicious` comes first and fails closed, so
    # a tarball that could still turn out malicious is held, whatever later rules say about
    # its metadata (here: weak signals, the versions most likely to be flagged once scanned).
    (
        "earlier-closed-rule-first",
        (MAL_CLOSED, WEAK_WARN),
        OPEN,
        unscanned(suspicious()),
        BLOCK,
        "malicious",
        True,
    ),
]


@pytest.mark.parametrize(
    ("rules", "default", "s", "action", "rule", "pending"),
    [pytest.param(*row[1:], id=row[0]) for row in UNSCANNED],
)
def test_unscanned_tarball(
    rules: tuple[Rule, ...],
    default: FailMode,
    s: Subject,
    action: Action,
    rule: str,
    pending: bool,
) -> None:
    d = decide(Policy(rules=rules, unscanned=default, name="p"), s)
    assert (d.action, d.rule, d.pending) == (action, rule, pending)
    if pending:
        assert d.reason == (
            f"the tarball of {s.name}@{s.version} has not been scanned yet and rule "
            f"{rule!r} fails closed; try again shortly"
        )


def test_decide_by_rules_ignores_waivers_and_mode() -> None:
    policy = _waived(KOPILIONG, mode=Mode.DRY_RUN)
    d = decide_by_rules(policy, subject(tea_spam()))
    assert d == Decision(
        Action.BLOCK,
        "spam",
        "; ".join(tea_spam().reasons),
        Action.BLOCK,
        details=tea_spam().reasons,
        severity=Severity.HIGH,  # a block rule without its own severity reports as high
    )


@pytest.mark.parametrize(
    ("action", "severity", "expected"),
    [
        (Action.BLOCK, None, Severity.HIGH),
        (Action.WARN, None, Severity.MODERATE),
        (Action.MONITOR, None, Severity.LOW),
        (Action.BLOCK, Severity.CRITICAL, Severity.CRITICAL),
        (Action.WARN, Severity.HIGH, Severity.HIGH),
    ],
)
def test_decision_severity_comes_from_the_rule_or_its_action(
    action: Action, severity: Severity | None, expected: Severity
) -> None:
    rule = Rule("r", Match(labels=(Label.SPAM,)), action, severity=severity)
    d = decide(Policy(rules=(rule,), name="p"), subject(tea_spam()))
    assert d.severity is expected


# -- decider: decisions shared between versions -------------------------------------------------

YOUNG = Rule("young", Match(version_younger_than=WEEK), Action.WARN)
SCRIPTS = Rule("scripts", Match(install_scripts=True), Action.WARN, message="runs scripts")
OLD_LINE = Rule("old-line", Match(versions=Range.parse("<2")), Action.HIDE)
TWIN = Rule("twin", Match(shadows_internal=True), Action.BLOCK)
NEW_PACKAGE = Rule("new-package", Match(package_younger_than=WEEK), Action.WARN)
SHARING_POLICIES = [
    Policy(rules=(BLOCK_SPAM,), name="labels-only"),
    Policy(rules=(YOUNG, BLOCK_SPAM), name="young"),
    Policy(rules=(SCRIPTS,), name="scripts"),
    Policy(rules=(OLD_LINE,), name="versions"),
    Policy(rules=(TWIN, NEW_PACKAGE), name="twin"),
    Policy(rules=(BLOCK_SPAM,), waivers=(KOPILIONG,), name="waived"),
    Policy(rules=(YOUNG, OLD_LINE), mode=Mode.DRY_RUN, name="dry-run"),
]
# Versions of one package as a plan sees them, most with a verdict that found nothing.
SHARING_SUBJECTS = [
    subject(clean("kopiliong", "0.1.0"), scan=ScanState.METADATA),
    subject(clean("kopiliong", "0.1.1"), scan=ScanState.METADATA, published=days_ago(2)),
    subject(clean("kopiliong", "0.2.0"), scan=ScanState.METADATA, published=days_ago(30)),
    subject(clean("kopiliong", "2.0.0"), scan=ScanState.METADATA, install_scripts=True),
    subject(clean("kopiliong", "2.0.1"), scan=ScanState.TARBALL, install_scripts=False),
    subject(clean("kopiliong", "2.1.0"), created=days_ago(1), shadows="@corp/kopiliong"),
    subject(None, name="kopiliong", version="3.0.0"),
    subject(tea_spam("kopiliong", "0.1.0")),
    subject(tea_spam("kopiliong", "3.1.0")),
    subject(clean("kopiliong", "1.9.0"), scan=ScanState.UNAVAILABLE),
]


@pytest.mark.parametrize("policy", SHARING_POLICIES, ids=lambda p: p.name)
def test_decider_decides_as_decide_does(policy: Policy) -> None:
    decide_one = decider(policy)
    for s in SHARING_SUBJECTS * 2:  # the second round answers from what the first kept
        assert decide_one(s) == decide(policy, s), (s.version, s.scan)


def test_decider_shares_what_reads_nothing_of_the_version() -> None:
    decide_one = decider(Policy(rules=(BLOCK_SPAM,), name="labels-only"))
    a = decide_one(subject(clean("left-pad", "1.3.0"), scan=ScanState.METADATA))
    b = decide_one(subject(clean("left-pad", "1.2.9"), scan=ScanState.METADATA))
    assert a is b
    young = decider(Policy(rules=(YOUNG,), name="young"))
    c = young(subject(clean("left-pad", "1.3.0"), published=days_ago(1)))
    d = young(subject(clean("left-pad", "1.2.9"), published=days_ago(30)))
    assert (c.action, d.action) == (Action.WARN, Action.ALLOW)
