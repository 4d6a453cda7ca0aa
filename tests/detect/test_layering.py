"""The detector stays pure: no HTTP, web or cache imports in proxy/detect and proxy/npm, and
docs/signals.md is what the registry generates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from proxy.detect import docs

ROOT = Path(__file__).resolve().parents[2]
BANNED = (
    "httpx",
    "starlette",
    "uvicorn",
    "proxy.web",
    "proxy.app",
    "proxy.upstream",
    "proxy.cache",
)
PURE = sorted((ROOT / "proxy" / "detect").rglob("*.py")) + sorted(
    (ROOT / "proxy" / "npm").rglob("*.py")
)


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", PURE, ids=[str(p.relative_to(ROOT)) for p in PURE])
def test_pure_layers_import_no_io(path: Path) -> None:
    bad = {m for m in imports(path) if m.split(".")[0] in BANNED or m.startswith(BANNED)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_signals_doc_is_generated() -> None:
    committed = (ROOT / "docs" / "signals.md").read_text(encoding="utf-8")
    assert committed == docs.render(), "run: python -m proxy.detect.docs docs/signals.md"
