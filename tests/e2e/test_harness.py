"""The client harness itself: a missing client skips with the reason, except in CI."""

from __future__ import annotations

import pytest

from tests.e2e import clients
from tests.e2e.clients import Client, heard, slug

MISSING = Client("pnpm", (), "pnpm-lock.yaml", ("install",), ("install", "--frozen-lockfile"))


def test_a_missing_client_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"pnpm is not installed in .*\.ci/run"):
        MISSING.require()


def test_a_missing_client_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="in CI every client must run"):
        MISSING.require()


@pytest.mark.parametrize(
    ("output", "text", "found"),
    [
        # As text, wrapped, or spelled in a blocked URL's path: the same words.
        ("warn: deprecated a@1.0.0: rule 'token-farming': a tea.xyz file", "tea.xyz file", True),
        ("GET h/-/blocked/Floodgate-blocked-a@1.0.0-rule-token-farming", "token-farming", True),
        ("the package\n  ships a file", "the package ships a file", True),
        ("Unavailable For Legal Reasons - 451", "token-farming", False),
        ("a@1.0.01", "a@1.0.0", True),  # a substring test: callers pick distinctive texts
    ],
)  # fmt: skip
def test_heard_compares_words_not_punctuation(output: str, text: str, found: bool) -> None:
    assert heard(output, text) is found
    assert slug("Floodgate warning (rule 'x')") == "floodgate-warning-rule-x"
