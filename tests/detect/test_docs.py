"""docs/signals.md is what the signal registry generates (the import layering is checked in
tests/test_layering.py)."""

from __future__ import annotations

from pathlib import Path

from proxy.detect import docs

ROOT = Path(__file__).resolve().parents[2]


def test_signals_doc_is_generated() -> None:
    committed = (ROOT / "docs" / "signals.md").read_text(encoding="utf-8")
    assert committed == docs.render(), "run: python -m proxy.detect.docs docs/signals.md"
