"""`PolicyHolder`: valid edits take effect, bad edits and deleted files keep the policy in force."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from proxy.errors import PolicyError
from proxy.policy.holder import SHIPPED, PolicyHolder, resolve_policy_path, shipped_policy
from proxy.policy.loader import load_policy
from proxy.policy.model import Action

REPO = Path(__file__).resolve().parents[2]
HOLDER_LOG = "proxy.policy.holder"

V1 = """\
version: 1
name: team
rules:
  - id: malicious
    match: {labels: [malicious]}
    action: block
"""
V2 = (
    V1
    + """\
  - id: spam
    match: {labels: [spam]}
    action: hide
"""
)
BROKEN = (
    V1
    + """\
  - id: spam
    match: {labels: [spam]}
    action: deny
"""
)


def _write(path: Path, text: str, bump_seconds: int) -> None:
    """Rewrite `path` and move its mtime by `bump_seconds` (a fixed step, not the clock)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + bump_seconds * 10**9, before + bump_seconds * 10**9))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(V1, encoding="utf-8")
    return path


def test_loads_at_construction(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file)
    assert holder.policy.name == "team"
    assert [r.id for r in holder.policy.rules] == ["malicious"]
    assert holder.policy.digest == load_policy(policy_file).digest
    assert holder.reload_if_changed() is False  # nothing changed yet


def test_valid_edit_is_picked_up_and_changes_the_digest(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=HOLDER_LOG)
    holder = PolicyHolder(policy_file)
    old = holder.policy.digest
    _write(policy_file, V2, bump_seconds=2)
    assert holder.reload_if_changed() is True
    assert [(r.id, r.action) for r in holder.policy.rules] == [
        ("malicious", Action.BLOCK),
        ("spam", Action.HIDE),
    ]
    assert holder.policy.digest != old
    assert holder.policy.digest == load_policy(policy_file).digest
    assert f"digest {old} -> {holder.policy.digest}" in caplog.text
    assert holder.reload_if_changed() is False  # the same stamp is not reloaded twice


def test_edit_with_the_same_size_is_picked_up_by_mtime(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file)
    same_size = V1.replace("block", "hide ")
    assert len(same_size) == len(V1)
    _write(policy_file, same_size, bump_seconds=1)
    assert holder.reload_if_changed() is True
    assert holder.policy.rules[0].action is Action.HIDE


def test_touch_without_a_change_keeps_the_policy_object(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file)
    before = holder.policy
    _write(policy_file, V1, bump_seconds=5)
    assert holder.reload_if_changed() is False
    assert holder.policy is before


def test_malformed_edit_keeps_the_previous_policy_and_logs_why(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = PolicyHolder(policy_file)
    before = holder.policy
    _write(policy_file, BROKEN, bump_seconds=2)
    with caplog.at_level(logging.ERROR, logger=HOLDER_LOG):
        assert holder.reload_if_changed() is False
    assert holder.policy is before
    [record] = [r for r in caplog.records if r.name == HOLDER_LOG]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert f"keeping team ({before.digest})" in message
    assert f"{policy_file}:9: rules[1].action: 'deny' is not one of" in message

    # fixing the file afterwards takes effect
    _write(policy_file, V2, bump_seconds=2)
    assert holder.reload_if_changed() is True
    assert [r.id for r in holder.policy.rules] == ["malicious", "spam"]


def test_malformed_yaml_edit_keeps_the_previous_policy(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = PolicyHolder(policy_file)
    before = holder.policy
    _write(policy_file, "version: 1\nrules:\n  - id: malicious\n   action: block\n", 2)
    with caplog.at_level(logging.ERROR, logger=HOLDER_LOG):
        assert holder.reload() is False
    assert holder.policy is before
    assert f"{policy_file}:4: not valid YAML" in caplog.text


def test_deleted_file_keeps_the_policy(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file)
    before = holder.policy
    policy_file.unlink()
    assert holder.reload_if_changed() is False
    assert holder.policy is before
    # an explicit reload (SIGHUP) of a missing file keeps it too
    assert holder.reload() is False
    assert holder.policy is before


def test_reload_reads_the_file_whatever_its_stamp(policy_file: Path) -> None:
    # SIGHUP calls reload() directly: it does not depend on mtime or size changing.
    holder = PolicyHolder(policy_file)
    stat = policy_file.stat()
    same_size = V1.replace("block", "hide ")
    policy_file.write_text(same_size, encoding="utf-8")
    os.utime(policy_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert holder.reload_if_changed() is False  # the stamp says nothing changed
    assert holder.reload() is True
    assert holder.policy.rules[0].action is Action.HIDE


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(BROKEN, ":9: rules[1].action: 'deny'", id="bad-action"),
        pytest.param("", ": (top level): the policy is empty", id="empty"),
        pytest.param("rules:\n\t- id: a\n", ":2: not valid YAML", id="bad-yaml"),
    ],
)
def test_malformed_file_at_start_refuses(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        PolicyHolder(path)
    assert str(caught.value).startswith(f"{path}{fragment}"), str(caught.value)


def test_missing_file_at_start_refuses(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        PolicyHolder(tmp_path / "absent.yaml")


# -- where policies come from -------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policy(name: str) -> None:
    path = shipped_policy(name)
    assert path.samefile(REPO / "policies" / f"{name}.yaml")


def test_unknown_shipped_policy() -> None:
    with pytest.raises(PolicyError, match=r"no shipped policy named 'paranoid' \(shipped: "):
        shipped_policy("paranoid")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, REPO / "policies" / "default.yaml", id="none-is-default"),
        pytest.param("default", REPO / "policies" / "default.yaml", id="default"),
        pytest.param("strict", REPO / "policies" / "strict.yaml", id="strict"),
        pytest.param("audit", REPO / "policies" / "audit.yaml", id="audit"),
    ],
)
def test_resolve_shipped_names(value: str | None, expected: Path) -> None:
    assert resolve_policy_path(value).samefile(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("team.yaml", Path("team.yaml"), id="relative-path"),
        pytest.param("/etc/floodgate/ci.yaml", Path("/etc/floodgate/ci.yaml"), id="absolute"),
        pytest.param("strict.yaml", Path("strict.yaml"), id="not-a-shipped-name"),
        pytest.param(Path("strict"), Path("strict"), id="path-object-is-a-path"),
    ],
)
def test_resolve_paths(value: str | Path, expected: Path) -> None:
    assert resolve_policy_path(value) == expected


def test_resolve_expands_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_policy_path("~/policies/ci.yaml") == tmp_path / "policies" / "ci.yaml"


def test_a_local_file_named_like_a_shipped_policy_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strict").write_text(V1, encoding="utf-8")
    assert resolve_policy_path("strict") == Path("strict")
