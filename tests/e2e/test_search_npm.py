"""`npm search` against `floodgate serve`: the organization's hosted packages are found (for
a token that may read them) beside the upstream's results, as npm prints them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.npm import floodgate as floodgate_serve, needs_npm, npm
from tests.e2e.test_tokens import floodgate_cli
from tests.fakes.packages import FakeVersion
from tests.fakes.publish import publish
from tests.fakes.registry import FakeRegistry, running_registry
from tests.hosted.activity import UTILS_JS, VAULT_JS

pytestmark = [pytest.mark.e2e, needs_npm]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        registry.search = True
        registry.add("left-pad-utils", FakeVersion("1.0.0", extra={"description": "padding utils"}))
        yield registry


def with_token(folder: Path, url: str, token: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".test-npmrc").write_text(f"//{urlsplit(url).netloc}/:_authToken={token}\n")
    return folder


def test_npm_search_finds_hosted_packages_the_token_may_read(
    upstream: FakeRegistry, tmp_path: Path
) -> None:
    cache = tmp_path / "floodgate-cache"
    root = floodgate_cli(cache, "token", "create", "--group", "admin", "--name", "root")
    bob = floodgate_cli(cache, "token", "create", "--group", "developers", "--name", "bob")
    with floodgate_serve(
        upstream.url,
        tmp_path,
        "--internal-scopes",
        "@acme",
        "--internal-readers",
        "@acme/vault=admin",
    ) as gate:
        with httpx.Client(base_url=gate.url, timeout=30) as client:
            for name, description, code in (
                ("@acme/utils", "Array utils for Acme services", UTILS_JS),
                ("@acme/vault", "Secret sealing utils", VAULT_JS),
            ):
                r = publish(client, root, name, "1.2.0", description=description, code=code)
                assert r.status_code == 201, r.text
        project = with_token(tmp_path / "bob", gate.url, bob)
        done = npm(["search", "utils"], project, gate.url, tmp_path / "npm-cache")
        out = done.stdout
        assert "@acme/utils" in out
        assert "Array utils for Acme services" in out
        assert "Version 1.2.0" in out
        assert "by root" in out
        assert "left-pad-utils" in out
        assert out.index("@acme/utils") < out.index("left-pad-utils")  # ours first
        assert "@acme/vault" not in out  # bob may not read it
        parsed = json.loads(
            npm(["search", "--json", "utils"], project, gate.url, tmp_path / "npm-cache").stdout
        )
        assert [p["name"] for p in parsed] == ["@acme/utils", "left-pad-utils"]
        admin = with_token(tmp_path / "root", gate.url, root)
        seen = npm(["search", "sealing"], admin, gate.url, tmp_path / "npm-cache").stdout
        assert "@acme/vault" in seen
