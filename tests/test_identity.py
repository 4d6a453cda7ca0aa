from __future__ import annotations

from typing import Any

import pytest

from proxy.identity import ANONYMOUS, Identity, identity_of, is_admin


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({}, ANONYMOUS),
        ({"state": {}}, ANONYMOUS),
        ({"state": {"identity": "ci"}}, ANONYMOUS),
        ({"state": {"identity": Identity("ci", "runner-7")}}, Identity("ci", "runner-7")),
    ],
)
def test_identity_of(scope: dict[str, Any], expected: Identity) -> None:
    assert identity_of(scope) == expected


@pytest.mark.parametrize(
    ("identity", "label", "admin"),
    [
        (ANONYMOUS, "anonymous", False),
        (Identity("ci", "runner-7"), "ci/runner-7", False),
        (Identity("admin", "alice"), "admin/alice", True),
        (Identity("admin"), "admin", True),
    ],
)
def test_label_and_admin(identity: Identity, label: str, admin: bool) -> None:
    assert identity.label() == label
    assert identity.anonymous is (identity.group is None)
    assert is_admin(identity, ("admin",)) is admin
