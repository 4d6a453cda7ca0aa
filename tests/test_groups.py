"""A policy per group: which gate decides for whom, built from settings as `serve` builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.app import build_gate
from proxy.decisions import DecisionLog
from proxy.errors import PolicyError
from proxy.gate import PolicyGate
from proxy.settings import load_settings


def gate_for(tmp_path: Path, groups: str, policy: str = "default") -> PolicyGate:
    settings = load_settings(
        {"cache_dir": str(tmp_path), "osv_feed": "off", "policy": policy, "group_policies": groups},
        env={},
    )
    gate = build_gate(settings)
    assert isinstance(gate, PolicyGate)
    return gate


def test_one_gate_per_distinct_policy(tmp_path: Path) -> None:
    gate = gate_for(tmp_path, "ci=strict,release=strict,developers=default,auditors=audit")
    try:
        ci = gate.for_group("ci")
        assert ci is gate.for_group("release")  # same file: one gate, one set of plans
        assert gate.for_group("developers") is gate  # the base policy's own gate
        assert gate.for_group("nobody") is gate  # groups not listed get the base policy
        assert gate.for_group("") is gate  # anonymous
        assert ci.policy.name == "strict"
        assert gate.for_group("auditors").policy.name == "audit"
        assert len(gate.holders) == 3
        assert len({gate.salt, ci.salt, gate.for_group("auditors").salt}) == 3
        # Siblings share what does not depend on the policy.
        assert ci.inspector is gate.inspector
        assert ci.decisions is gate.decisions
        assert ci._generation is gate._generation
        assert "group ci: policy strict" in gate.describe()
        ci.close()  # a sibling closes nothing it shares
        assert isinstance(gate.decisions, DecisionLog)
        assert gate.decisions._thread.is_alive()
    finally:
        gate.close()


def test_a_broken_group_policy_stops_startup(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - id: a\n    action: explode\n    match: {}\n")
    with pytest.raises(PolicyError, match=r"broken\.yaml"):
        gate_for(tmp_path, f"ci={broken}")
