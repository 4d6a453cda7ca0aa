"""Looking ahead: once a client is served a packument, the packuments of its `latest` version's
dependencies are fetched, inspected, planned and rendered in the background, so that the
client's next requests find them ready, decided as they would have been. Never a dependency of
another version, never an internal name, and a dependency the upstream does not have is
remembered as missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.detect.facts import PackageFacts
from proxy.service import dependency_names
from tests.conftest import ProxyFactory
from tests.fakes.packages import clean
from tests.fakes.registry import FakeRegistry
from tests.web.test_cold_path import wait_until

NPM = {"accept": "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"}


def mal_feed(folder: Path, name: str, version: str) -> str:
    folder.mkdir()
    record = {
        "id": "MAL-2026-4242",
        "modified": "2026-11-30T00:00:00Z",
        "summary": f"Malicious code in {name}",
        "affected": [{"package": {"ecosystem": "npm", "name": name}, "versions": [version]}],
    }
    (folder / "record.json").write_text(json.dumps(record))
    return str(folder)


@pytest.fixture
def app_tree(registry: FakeRegistry) -> FakeRegistry:
    """fg-app: its latest depends on fg-dep (one of whose versions the feed names) and,
    optionally, fg-opt; an older version on fg-old-dep."""
    registry.add(
        "fg-app",
        clean("1.0.0", dependencies={"fg-old-dep": "^1.0.0"}),
        clean(
            "2.0.0",
            dependencies={"fg-dep": "^1.0.0"},
            extra={"optionalDependencies": {"fg-opt": "^1.0.0"}},
        ),
    )
    registry.add("fg-dep", clean("1.0.0"), clean("1.1.0"))
    registry.add("fg-opt", clean("1.0.0"))
    registry.add("fg-old-dep", clean("1.0.0"))
    return registry


def test_dependencies_of_latest_are_ready_before_the_client_asks(
    app_tree: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    feed = mal_feed(tmp_path / "feed", "fg-dep", "1.1.0")
    proxy = make_proxy(osv_feed=feed, prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-app", headers=NPM).status_code == 200
    # Fetched before any client asked for them.
    assert wait_until(lambda: app_tree.requests_for("/fg-dep") and app_tree.requests_for("/fg-opt"))
    assert app_tree.requests_for("/fg-old-dep") == []  # a dependency of another version
    # The client's request is answered from what was looked ahead: no second upstream
    # request, and decided as a cold one would be (the feed's version restricted).
    served = proxy.client.get("/fg-dep", headers=NPM)
    assert served.status_code == 200
    assert len(app_tree.requests_for("/fg-dep")) == 1
    doc = served.json()
    assert set(doc["policyRestrictions"]["versions"]) == {"1.1.0"}
    assert "/-/blocked/" in doc["versions"]["1.1.0"]["dist"]["tarball"]
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == (f"{proxy.url}/fg-dep/-/fg-dep-1.0.0.tgz")
    # Once ready, it is a hit.
    assert wait_until(
        lambda: proxy.client.get("/fg-opt", headers=NPM).headers["x-floodgate-cache"] == "hit"
    )
    assert len(app_tree.requests_for("/fg-opt")) == 1


def test_a_dependency_the_upstream_lacks_is_remembered(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add("fg-needs-ghost", clean("1.0.0", dependencies={"fg-ghost": "^1.0.0"}))
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-needs-ghost", headers=NPM).status_code == 200
    assert wait_until(lambda: registry.requests_for("/fg-ghost"))
    assert proxy.client.get("/fg-ghost", headers=NPM).status_code == 404
    assert len(registry.requests_for("/fg-ghost")) == 1


def test_a_dependency_name_no_registry_can_have_is_passed_over(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    """Old manifests and careless publishers name dependencies that are not package names:
    the packument is served all the same, and the valid names after them are looked at."""
    bad = {"_bad": "1", ".x": "1", "a b": "1", "node_modules": "1", "": "1", "x" * 215: "1"}
    registry.add("fg-weird", clean("1.0.0", dependencies={**bad, "fg-dep": "^1.0.0"}))
    registry.add("fg-dep", clean("1.0.0"))
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-weird", headers=NPM).status_code == 200
    assert wait_until(lambda: registry.requests_for("/fg-dep"))


def test_internal_names_are_never_looked_ahead(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    registry.add(
        "fg-public",
        clean("1.0.0", dependencies={"@corp/secret": "^1.0.0", "fg-dep": "^1.0.0"}),
    )
    registry.add("fg-dep", clean("1.0.0"))
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4, internal_scopes=["@corp"])
    assert proxy.client.get("/fg-public", headers=NPM).status_code == 200
    assert wait_until(lambda: registry.requests_for("/fg-dep"))
    assert [s.path for s in registry.seen if "corp" in s.path] == []


def test_nothing_is_looked_ahead_when_it_is_off(
    app_tree: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=0)
    assert proxy.client.get("/fg-app", headers=NPM).status_code == 200
    # The next request is the client's own: it is the first the upstream sees of fg-dep.
    assert proxy.client.get("/fg-dep", headers=NPM).headers["x-floodgate-cache"] == "miss"
    assert app_tree.requests_for("/fg-opt") == []


def facts(versions: dict[str, dict[str, object]], latest: str | None) -> PackageFacts:
    doc: dict[str, object] = {
        "name": "fg-x",
        "dist-tags": {"latest": latest} if latest else {},
        "versions": {v: {"name": "fg-x", "version": v, **m} for v, m in versions.items()},
    }
    return PackageFacts.from_packument(doc)


@pytest.mark.parametrize(
    ("versions", "latest", "expected"),
    [
        ({"1.0.0": {"dependencies": {"a": "1", "b": "2"}}}, "1.0.0", ["a", "b"]),
        (
            {"1.0.0": {"dependencies": {"a": "1"}, "optionalDependencies": {"a": "1", "c": "1"}}},
            "1.0.0",
            ["a", "c"],
        ),
        ({"1.0.0": {"dependencies": {"old": "1"}}, "2.0.0": {}}, "2.0.0", []),
        ({"1.0.0": {"dependencies": {"a": "1"}}}, None, []),  # no latest: nothing to guess
        ({"1.0.0": {"dependencies": {"a": "1"}}}, "9.9.9", []),  # latest names no version
    ],
)
def test_dependency_names(
    versions: dict[str, dict[str, object]], latest: str | None, expected: list[str]
) -> None:
    assert dependency_names(facts(versions, latest)) == expected
    assert dependency_names(None) == []
