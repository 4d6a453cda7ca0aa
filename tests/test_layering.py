"""Import direction, checked on the source: ruff's banned-api lifts every ban for a whole file,
so this walks the `ast` imports of each module under `proxy/` and checks them per layer.

    proxy/npm, proxy/detect, proxy/policy  (pure)  import no web, app, upstream, cache, Starlette
                                                   or httpx
    httpx                                          only from proxy/upstream/**
    starlette                                      only from proxy/app.py and proxy/web/**
    proxy/service.py                               no starlette
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / "proxy"
MODULES = sorted(PROXY.rglob("*.py"))

PURE_PACKAGES = ("proxy.npm", "proxy.detect", "proxy.policy")
FORBIDDEN_IN_PURE = (
    "proxy.web",
    "proxy.app",
    "proxy.upstream",
    "proxy.cache",
    "starlette",
    "httpx",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, anywhere in the file (functions and TYPE_CHECKING too).

    Relative imports are resolved against `module`; `from pkg import name` also yields
    `pkg.name`, since `name` may be a submodule.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(
        path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
    )


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def offending(imports: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(i for i in imports if any(within(i, p) for p in prefixes))


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- the rules, per module ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if any(within(module_name(p), pkg) for pkg in PURE_PACKAGES)],
    ids=ids,
)
def test_pure_core_imports_no_io_layers(path: Path) -> None:
    assert offending(imports_of(path), FORBIDDEN_IN_PURE) == []


@pytest.mark.parametrize("path", MODULES, ids=ids)
def test_only_upstream_imports_httpx(path: Path) -> None:
    if within(module_name(path), "proxy.upstream"):
        return
    assert offending(imports_of(path), ("httpx", "httpcore")) == []


@pytest.mark.parametrize("path", MODULES, ids=ids)
def test_only_app_and_web_import_starlette(path: Path) -> None:
    name = module_name(path)
    if name == "proxy.app" or within(name, "proxy.web"):
        return
    assert offending(imports_of(path), ("starlette",)) == []


def test_service_imports_no_starlette() -> None:
    assert (
        offending(imports_of(PROXY / "service.py"), ("starlette", "proxy.web", "proxy.app")) == []
    )


# -- the walker itself -------------------------------------------------------------------------


def test_the_walk_sees_the_real_tree() -> None:
    """Guards against a silently empty walk: the rules above would then pass vacuously."""
    names = {module_name(p) for p in MODULES}
    assert {"proxy.npm.names", "proxy.npm.packument", "proxy.upstream.client", "proxy.app"} <= names
    assert "httpx" in imports_of(PROXY / "upstream" / "client.py")
    assert offending(imports_of(PROXY / "app.py"), ("starlette",))
    assert "proxy.npm.semver" in imports_of(PROXY / "npm" / "packument.py")


@pytest.mark.parametrize(
    ("source", "module", "expected", "unexpected"),
    [
        ("import httpx", "proxy.npm.x", {"httpx"}, set()),
        ("import httpx._client as c", "proxy.npm.x", {"httpx._client"}, set()),
        ("from httpx import AsyncClient", "proxy.npm.x", {"httpx"}, set()),
        ("from starlette.requests import Request", "proxy.npm.x", {"starlette.requests"}, set()),
        ("from proxy import cache", "proxy.npm.x", {"proxy.cache"}, set()),
        ("from proxy.cache import memory", "proxy.npm.x", {"proxy.cache.memory"}, set()),
        ("from . import semver", "proxy.npm.x", {"proxy.npm.semver"}, {"proxy.cache"}),
        ("from ..web import routes", "proxy.npm.x", {"proxy.web", "proxy.web.routes"}, set()),
        ("from .. import upstream", "proxy.npm.x", {"proxy.upstream"}, set()),
        ("def f():\n    import httpx\n", "proxy.npm.x", {"httpx"}, set()),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from proxy.web import x\n",
            "proxy.npm.x",
            {"proxy.web.x"},
            set(),
        ),
        ("import httpxlike\nimport starlettish", "proxy.npm.x", set(), set()),
        ("x = 'import httpx'  # import starlette", "proxy.npm.x", set(), {"httpx", "starlette"}),
    ],
)
def test_imported_modules(
    source: str, module: str, expected: set[str], unexpected: set[str]
) -> None:
    found = imported_modules(source, module)
    assert expected <= found
    assert not unexpected & found
    flagged = offending(found, FORBIDDEN_IN_PURE)
    assert bool(flagged) == any(within(e, p) for e in expected for p in FORBIDDEN_IN_PURE), (
        f"{source!r}: {flagged}"
    )


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("from .semver import Version", "proxy.npm", True, "proxy.npm.semver"),
        ("from .semver import Version", "proxy.npm.names", False, "proxy.npm.semver"),
        ("from ..web import routes", "proxy.npm", True, "proxy.web"),
        ("from ..web import routes", "proxy.npm.names", False, "proxy.web"),
        ("from .. import app", "proxy.web.routes", False, "proxy.app"),
    ],
)
def test_relative_imports_resolve(
    source: str, module: str, is_package: bool, expected: str
) -> None:
    assert expected in imported_modules(source, module, is_package)
