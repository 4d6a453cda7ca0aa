"""`plan_for`: per-version decisions into packument edits, and the messages npm prints."""

from __future__ import annotations

import pytest

from proxy.detect.model import Verdict
from proxy.gate import (
    MAX_RESTRICTION_LINES,
    Acted,
    blocked_message,
    plan_for,
    warning_message,
)
from proxy.npm.packument import NO_EDITS
from proxy.policy.engine import decide
from proxy.policy.loader import parse_policy
from proxy.policy.model import Action, Decision, Policy
from tests.policy.verdicts import clean, osv_spam, seo_spam, subject, suspicious, tea_spam

POLICY = parse_policy(
    """\
name: default
rules:
  - id: malicious
    match: {labels: [malicious]}
    action: block
  - id: token-farming
    match: {labels: [spam], signals: [tea-yaml, tea-wallet-reuse]}
    action: block
  - id: spam
    match: {labels: [spam]}
    action: hide
  - id: weak-signals
    match: {labels: [suspicious]}
    action: warn
  - id: scripts
    match: {install_scripts: true}
    action: monitor
""",
    "default.yaml",
)
TEA_REASON = (
    "the package ships a tea.xyz registration file (tea.yaml) naming wallet "
    "0x723332A6f259f8457e71a346566466036a5Eb3C8; "
    "the entry point index.js is empty or only prints a greeting"
)


def acted(verdict: Verdict, install_scripts: bool | None = None) -> Acted:
    """The decision the policy makes for `verdict`, as the gate records it."""
    d = decide(POLICY, subject(verdict, install_scripts=install_scripts))
    return Acted(verdict.version, d, verdict)


# kopiliong-like history: four tea versions, one SEO-spam, one weak, one clean
TEA_010 = acted(tea_spam(version="0.1.0"))
TEA_011 = acted(tea_spam(version="0.1.1"))
TEA_012 = acted(tea_spam(version="0.1.2"))
SEO_100 = acted(seo_spam(name="kopiliong", version="1.0.0"))
OSV_101 = acted(osv_spam(name="kopiliong", version="1.0.1"))
WEAK_110 = acted(suspicious(name="kopiliong", version="1.1.0"))
MONITOR_120 = acted(clean(name="kopiliong", version="1.2.0"), install_scripts=True)


@pytest.mark.parametrize(
    ("decisions", "hidden", "restricted", "deprecated"),
    [
        pytest.param([], set(), set(), [], id="nothing"),
        pytest.param([TEA_010], set(), {"0.1.0"}, [], id="block"),
        pytest.param([SEO_100, OSV_101], {"1.0.0", "1.0.1"}, set(), [], id="hide"),
        pytest.param([WEAK_110], set(), set(), ["1.1.0"], id="warn"),
        pytest.param([MONITOR_120], set(), set(), [], id="monitor"),
        pytest.param(
            [TEA_010, TEA_011, SEO_100, WEAK_110, MONITOR_120],
            {"1.0.0"},
            {"0.1.0", "0.1.1"},
            ["1.1.0"],
            id="mixed",
        ),
    ],
)
def test_edits(
    decisions: list[Acted], hidden: set[str], restricted: set[str], deprecated: list[str]
) -> None:
    plan = plan_for(POLICY, decisions)
    assert plan.edits.hidden == hidden
    assert plan.edits.restricted == restricted
    assert [v for v, _ in plan.edits.deprecated] == deprecated
    assert plan.edits.removed == hidden | restricted
    assert bool(plan.edits) is bool(hidden or restricted or deprecated)
    assert plan.acted == tuple(decisions)
    assert (plan.policy, plan.digest) == ("default", POLICY.digest)


def test_monitor_and_allow_decisions_make_no_edits() -> None:
    waived = Acted(
        "0.1.0",
        Decision(Action.ALLOW, "token-farming", "waived", Action.BLOCK, waiver="kopiliong@0.1.0"),
        tea_spam(),
    )
    dry = Acted("0.1.1", Decision(Action.MONITOR, "token-farming", "r", Action.BLOCK), tea_spam())
    plan = plan_for(POLICY, [waived, dry, MONITOR_120])
    assert plan.edits == NO_EDITS
    assert not plan.edits
    assert plan.edits.message == ""
    assert len(plan.acted) == 3  # still logged


def test_warned_versions_are_deprecated_with_the_reason() -> None:
    plan = plan_for(POLICY, [WEAK_110])
    assert plan.edits.deprecated == (
        (
            "1.1.0",
            "Floodgate warning (rule 'weak-signals'): "
            "the entry point index.js is empty or only prints a greeting",
        ),
    )


def test_restriction_message_lists_each_blocked_version_with_rule_and_reason() -> None:
    plan = plan_for(POLICY, [TEA_010, SEO_100, TEA_011])
    first = blocked_message("kopiliong", "0.1.0", TEA_010.decision, "default")
    second = blocked_message("kopiliong", "0.1.1", TEA_011.decision, "default")
    assert plan.edits.message == f"{first}\n{second}"
    # Each blocked version carries its own line (its deprecation and blocked-URL text).
    assert plan.edits.blocked == (("0.1.0", first), ("0.1.1", second))
    assert plan.edits.block_reason("0.1.1") == second


@pytest.mark.parametrize(
    ("blocked", "lines", "more"),
    [
        pytest.param(1, 1, None, id="one"),
        pytest.param(MAX_RESTRICTION_LINES, MAX_RESTRICTION_LINES, None, id="at-cap"),
        pytest.param(MAX_RESTRICTION_LINES + 1, MAX_RESTRICTION_LINES, 1, id="one-over"),
        pytest.param(40, MAX_RESTRICTION_LINES, 35, id="many"),
    ],
)
def test_restriction_message_is_capped(blocked: int, lines: int, more: int | None) -> None:
    decisions = [acted(tea_spam(version=f"0.1.{i}")) for i in range(blocked)]
    plan = plan_for(POLICY, decisions)
    body = plan.edits.message.splitlines()
    listed = [line for line in body if line.startswith("Floodgate blocked kopiliong@0.1.")]
    assert [line.split()[2] for line in listed] == [f"kopiliong@0.1.{i}" for i in range(lines)]
    assert len(plan.edits.restricted) == blocked  # every one is restricted, listed or not
    assert len(plan.edits.blocked) == blocked
    if more is None:
        assert len(body) == lines
    else:
        assert body[-1] == f"(and {more} more)"
        assert len(body) == 1 + lines


@pytest.mark.parametrize(
    ("decisions", "all_versions"),
    [
        pytest.param([TEA_010, TEA_011, TEA_012], 3, id="every-version-blocked"),
        pytest.param([TEA_010, TEA_011, TEA_012], 4, id="one-clean-version-left"),
        pytest.param([TEA_010], 1, id="single-version-package"),
    ],
)
def test_a_package_is_never_refused_whole(decisions: list[Acted], all_versions: int) -> None:
    # Refusing the packument loses the reason in yarn 1 (transitive) and bun; the blocked
    # versions' tarball URLs carry it to every client instead.
    plan = plan_for(POLICY, decisions)
    assert plan.edits.restricted == {a.version for a in decisions}


def test_blocked_and_warning_messages() -> None:
    d = TEA_010.decision
    assert blocked_message("kopiliong", "0.1.0", d, "default") == (
        f"Floodgate blocked kopiliong@0.1.0 (policy 'default', rule 'token-farming'): "
        f"{TEA_REASON}. Details: floodgate why kopiliong@0.1.0"
    )
    assert blocked_message("kopiliong", "", d, "default").startswith(
        "Floodgate blocked kopiliong (policy 'default'"
    )
    assert blocked_message("kopiliong", "", d, "default").endswith("floodgate why kopiliong")
    assert warning_message(WEAK_110.decision) == (
        "Floodgate warning (rule 'weak-signals'): "
        "the entry point index.js is empty or only prints a greeting"
    )


def test_plan_carries_the_policy_digest() -> None:
    other = Policy(POLICY.rules, name="default", digest="0123456789abcdef")
    assert plan_for(other, [TEA_010]).digest == "0123456789abcdef"
    assert plan_for(POLICY, [TEA_010]).digest == POLICY.digest != other.digest
