"""Internal names and the public names that imitate them (a table of real-shaped names)."""

from __future__ import annotations

import pytest

from proxy.internal import InternalNames

ACME = InternalNames.of(("@acme",), ("acme-utils", "@acme/logger", "widgets"))


@pytest.mark.parametrize(
    ("name", "internal"),
    [
        ("acme-utils", True),
        ("@acme/utils", True),
        ("@acme/anything-else", True),
        ("@ACME/mixed", True),
        ("widgets", True),
        ("@acme-labs/utils", False),
        ("acme", False),
        ("acme_utils", False),
        ("left-pad", False),
    ],
)
def test_is_internal(name: str, internal: bool) -> None:
    assert ACME.is_internal(name) is internal


@pytest.mark.parametrize(
    ("name", "shadows"),
    [
        ("acme_utils", "acme-utils"),
        ("acme.utils", "acme-utils"),
        ("acmeutils", "acme-utils"),
        ("Acme-Utils", "acme-utils"),
        ("acme-logger", "@acme/logger"),
        ("acme_logger", "@acme/logger"),
        ("wid-gets", "widgets"),
        ("acme-utils", None),  # internal itself: never fetched, so never judged
        ("acme-utils-extra", None),
        ("acme-client", None),  # merely starting with the scope's name is not a twin
        ("@evil/acme-utils", None),
        ("logger", None),
    ],
)
def test_shadowed(name: str, shadows: str | None) -> None:
    assert ACME.shadowed(name) == shadows


def test_nothing_configured() -> None:
    none = InternalNames.of((), ())
    assert not none
    assert not none.is_internal("@acme/x")
    assert none.shadowed("acme_utils") is None
    assert "never fetches it" in ACME.refusal("acme-utils")
