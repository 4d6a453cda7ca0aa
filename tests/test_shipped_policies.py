"""Every shipped policy loads, and each has cases it must allow and cases it must refuse.

Each row is a real-shaped subject and what the policy must do with it, written next to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.policy.engine import Subject, decide
from proxy.policy.holder import SHIPPED, shipped_policy
from proxy.policy.loader import load_policy
from proxy.policy.model import Action, Mode, Policy, ScanState
from tests.policy.verdicts import (
    clean,
    cloned_spam,
    malicious,
    osv_spam,
    seo_spam,
    subject,
    suspicious,
    tea_spam,
    wallet_reuse_spam,
    with_scripts,
)

POLICIES = Path(__file__).resolve().parent.parent / "policies"
UNAVAILABLE = ScanState.UNAVAILABLE
METADATA = ScanState.METADATA
BLOCK, HIDE, WARN, MONITOR, ALLOW = (
    Action.BLOCK,
    Action.HIDE,
    Action.WARN,
    Action.MONITOR,
    Action.ALLOW,
)


def _shipped(name: str) -> Policy:
    return load_policy(shipped_policy(name))


def test_the_shipped_set_is_the_policies_folder() -> None:
    assert sorted(p.stem for p in POLICIES.glob("*.yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_policy_file_loads(path: Path) -> None:
    policy = load_policy(path)
    assert policy.name == path.stem
    assert policy.mode is Mode.ENFORCE
    assert policy.rules
    assert policy.waivers == ()
    assert len(policy.digest) == 16


# (id, subject, action, rule, pending)
Row = tuple[str, Subject, Action, str, bool]

DEFAULT: list[Row] = [
    ("malicious", subject(malicious()), BLOCK, "malicious", False),
    ("malicious-from-metadata", subject(malicious(), scan=METADATA), BLOCK, "malicious", False),
    ("tea-spam", subject(tea_spam()), BLOCK, "token-farming", False),
    ("tea-wallet-reuse", subject(wallet_reuse_spam()), BLOCK, "token-farming", False),
    ("osv-listed-spam", subject(osv_spam()), BLOCK, "confirmed-spam", False),
    ("seo-spam-name", subject(seo_spam()), HIDE, "spam", False),
    ("cloned-code-spam", subject(cloned_spam()), HIDE, "spam", False),
    ("suspicious", subject(suspicious()), WARN, "weak-signals", False),
    ("install-scripts", subject(with_scripts(), install_scripts=True), WARN, "weak-signals", False),
    ("clean", subject(clean()), ALLOW, "", False),
    ("clean-from-metadata", subject(clean(), scan=METADATA), ALLOW, "", False),
    ("no-verdict", subject(None, scan=METADATA), ALLOW, "", False),
    # default fails open: a tarball not scanned in time is served on what is known (and the
    # scan finishes in the background); what is already known still decides
    ("unscanned-clean", subject(clean(), scan=UNAVAILABLE), ALLOW, "", False),
    ("unscanned-no-verdict", subject(None, scan=UNAVAILABLE), ALLOW, "", False),
    (
        "unscanned-known-malicious",
        subject(malicious(), scan=UNAVAILABLE),
        BLOCK,
        "malicious",
        False,
    ),
]

STRICT: list[Row] = [
    ("malicious", subject(malicious()), BLOCK, "flagged", False),
    ("tea-spam", subject(tea_spam()), BLOCK, "flagged", False),
    ("osv-listed-spam", subject(osv_spam()), BLOCK, "flagged", False),
    ("seo-spam-name", subject(seo_spam()), BLOCK, "flagged", False),
    ("cloned-code-spam", subject(cloned_spam()), BLOCK, "flagged", False),
    ("suspicious", subject(suspicious()), WARN, "weak-signals", False),
    ("clean", subject(clean()), ALLOW, "", False),
    ("clean-from-metadata", subject(clean(), scan=METADATA), ALLOW, "", False),
    ("no-verdict", subject(None, scan=METADATA), ALLOW, "", False),
    # fail closed: what could not be scanned in time is refused until it has been
    ("unscanned-clean", subject(clean(), scan=UNAVAILABLE), BLOCK, "flagged", True),
    ("unscanned-no-verdict", subject(None, scan=UNAVAILABLE), BLOCK, "flagged", True),
    # weak signals in the metadata must not let an unscanned tarball through either
    ("unscanned-suspicious", subject(suspicious(), scan=UNAVAILABLE), BLOCK, "flagged", True),
    ("unscanned-known-spam", subject(osv_spam(), scan=UNAVAILABLE), BLOCK, "flagged", False),
]

AUDIT: list[Row] = [
    ("malicious", subject(malicious()), WARN, "flagged", False),
    ("tea-spam", subject(tea_spam()), WARN, "flagged", False),
    ("osv-listed-spam", subject(osv_spam()), WARN, "flagged", False),
    ("seo-spam-name", subject(seo_spam()), WARN, "flagged", False),
    ("suspicious", subject(suspicious()), MONITOR, "weak-signals", False),
    (
        "install-scripts",
        subject(with_scripts(), install_scripts=True),
        MONITOR,
        "weak-signals",
        False,
    ),
    ("clean", subject(clean()), ALLOW, "", False),
    ("no-verdict", subject(None, scan=METADATA), ALLOW, "", False),
    ("unscanned-clean", subject(clean(), scan=UNAVAILABLE), ALLOW, "", False),
    ("unscanned-no-verdict", subject(None, scan=UNAVAILABLE), ALLOW, "", False),
]


def _rows(policy: str, rows: list[Row]) -> list[object]:
    return [pytest.param(policy, *row[1:], id=f"{policy}-{row[0]}") for row in rows]


@pytest.mark.parametrize(
    ("policy", "s", "action", "rule", "pending"),
    _rows("default", DEFAULT) + _rows("strict", STRICT) + _rows("audit", AUDIT),
)
def test_shipped_policy_decides(
    policy: str, s: Subject, action: Action, rule: str, pending: bool
) -> None:
    d = decide(_shipped(policy), s)
    assert (d.action, d.rule, d.pending) == (action, rule, pending), d.reason
    assert d.intended is action  # enforce mode, no waivers: what is intended is done


def test_default_blocks_with_the_detectors_reasons() -> None:
    d = decide(_shipped("default"), subject(tea_spam()))
    assert d.reason == (
        "the package ships a tea.xyz registration file (tea.yaml) naming wallet "
        "0x723332A6f259f8457e71a346566466036a5Eb3C8; "
        "the entry point index.js is empty or only prints a greeting"
    )


def test_audit_never_blocks_or_hides() -> None:
    audit = _shipped("audit")
    verdicts = [malicious(), tea_spam(), osv_spam(), seo_spam(), cloned_spam(), suspicious()]
    for verdict in [*verdicts, clean(), None]:
        for scan in ScanState:
            for scripts in (True, False, None):
                s = subject(verdict, scan=scan, install_scripts=scripts)
                d = decide(audit, s)
                assert d.action not in (Action.BLOCK, Action.HIDE), (s, d)
                assert d.intended not in (Action.BLOCK, Action.HIDE), (s, d)
