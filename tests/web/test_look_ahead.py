"""Looking ahead: once a client is served a packument, the packuments of its `latest` version's
dependencies are fetched, inspected, planned and rendered in the background, so that the
client's next requests find them ready, decided as they would have been. Never a dependency of
another version, never an internal name, and a dependency the upstream does not have is
remembered as missing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy import service
from proxy.cache.store import PackumentStore
from proxy.detect.facts import PackageFacts, inspect, inspect_keeping
from proxy.npm.names import PackageName
from proxy.service import dependency_names
from proxy.workers import BIG_DOCUMENT
from tests.conftest import ProxyFactory, RunningProxy
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


@pytest.fixture
def big_dependency(registry: FakeRegistry) -> FakeRegistry:
    """fg-uses-big depends on fg-big, a packument over BIG_DOCUMENT bytes (long readmes, as
    big packages have)."""
    readme = "A long readme, as big packages have. " * 150
    registry.add("fg-uses-big", clean("1.0.0", dependencies={"fg-big": "^1.0.0"}))
    registry.add("fg-big", *(clean(f"1.{i}.0", extra={"readme": readme}) for i in range(300)))
    return registry


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the packuments the service parses, in order."""
    names: list[str] = []

    def counting(fn: Callable[..., Any]) -> Callable[..., Any]:
        def parse(raw: bytes, package: PackageName) -> Any:
            names.append(package.name)
            return fn(raw, package)

        return parse

    monkeypatch.setattr(service, "inspect", counting(inspect))
    monkeypatch.setattr(service, "inspect_keeping", counting(inspect_keeping))
    return names


def saved_copy(proxy: RunningProxy, name: str) -> tuple[bytes, str | None] | None:
    return PackumentStore(Path(proxy.settings.cache_dir) / "packuments", 1 << 30).load(name)


def test_a_big_dependency_is_fetched_ahead_but_parsed_only_for_the_client(
    big_dependency: FakeRegistry, make_proxy: ProxyFactory, parsed: list[str]
) -> None:
    """Parsing a big document holds the GIL long enough to hold up whatever small request a
    client makes meanwhile: the look-ahead saves it to disk as fetched, and the client's
    request parses it from there, once, without asking the upstream again."""
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-uses-big", headers=NPM).status_code == 200
    assert wait_until(lambda: saved_copy(proxy, "fg-big") is not None)
    raw, _ = saved_copy(proxy, "fg-big") or (b"", None)
    assert len(raw) >= BIG_DOCUMENT
    assert parsed == ["fg-uses-big"]  # saved, not parsed
    served = proxy.client.get("/fg-big", headers=NPM)
    assert served.status_code == 200
    assert served.headers["x-floodgate-cache"] == "miss"  # new to its client
    assert len(served.json()["versions"]) == 300
    assert len(big_dependency.requests_for("/fg-big")) == 1
    assert parsed == ["fg-uses-big", "fg-big"]
    assert proxy.client.get("/fg-big", headers=NPM).headers["x-floodgate-cache"] == "hit"


def test_a_big_dependency_whose_saved_copy_changed_is_fetched_again(
    big_dependency: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    """The saved copy is the look-ahead's only while it is the same document (another replica
    sharing the folder, say, may have saved another): otherwise it is revalidated."""
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-uses-big", headers=NPM).status_code == 200
    assert wait_until(lambda: saved_copy(proxy, "fg-big") is not None)
    other = json.dumps({"name": "fg-big", "versions": {}}).encode()
    PackumentStore(Path(proxy.settings.cache_dir) / "packuments", 1 << 30).save(
        "fg-big", other, '"other"'
    )
    served = proxy.client.get("/fg-big", headers=NPM)
    assert len(served.json()["versions"]) == 300
    assert len(big_dependency.requests_for("/fg-big")) == 2


def test_a_big_dependency_that_cannot_be_saved_is_looked_ahead_in_memory(
    big_dependency: FakeRegistry,
    make_proxy: ProxyFactory,
    parsed: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(self: PackumentStore, name: str, raw: bytes, etag: str | None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PackumentStore, "save", full)
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-uses-big", headers=NPM).status_code == 200
    assert wait_until(
        lambda: proxy.client.get("/fg-big", headers=NPM).headers["x-floodgate-cache"] == "hit"
    )
    assert len(big_dependency.requests_for("/fg-big")) == 1
    assert parsed.count("fg-big") == 1


def test_the_look_ahead_parses_one_document_at_a_time(
    registry: FakeRegistry, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents are fetched several at once, but parsed (and planned, rendered) one at a
    time: one thread runs Python at a time, and each more one that wants to is one more a
    client's request waits behind."""
    deps = [f"fg-mid-{i}" for i in range(4)]
    registry.add("fg-many", clean("1.0.0", dependencies={d: "^1.0.0" for d in deps}))
    for dep in deps:  # over INLINE_MAX: parsed in a thread
        registry.add(dep, clean("1.0.0", extra={"readme": "A readme. " * 10_000}))
    lock, entered, release = threading.Lock(), threading.Event(), threading.Event()
    active, most = [0], [0]

    def parse(raw: bytes, package: PackageName) -> Any:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            if package.name in deps:
                entered.set()
                release.wait(10)  # the first holds on until the test has looked
            return inspect_keeping(raw, package)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(service, "inspect_keeping", parse)
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    assert proxy.client.get("/fg-many", headers=NPM).status_code == 200
    assert entered.wait(10)
    assert wait_until(lambda: all(registry.requests_for(f"/{d}") for d in deps))
    assert not wait_until(lambda: most[0] > 1, seconds=0.5)  # fetched, waiting their turn
    release.set()
    for dep in deps:
        assert wait_until(
            lambda d=dep: (
                proxy.client.get(f"/{d}", headers=NPM).headers["x-floodgate-cache"] == "hit"
            )
        )
    assert most[0] == 1


def test_a_client_asking_for_what_the_look_ahead_waits_to_parse_is_not_held_up(
    registry: FakeRegistry, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-ahead parses only while no client's parse runs. A client that asks for the
    document it fetched and waits to parse joins that work, which is then a client's: it is
    answered though another client's parse is still running."""
    padding = {"readme": "A readme. " * 10_000}  # over INLINE_MAX: parsed in a thread
    registry.add("fg-slow", clean("1.0.0", extra=padding))
    registry.add("fg-app", clean("1.0.0", dependencies={"fg-dep": "^1.0.0"}))
    registry.add("fg-dep", clean("1.0.0", extra=padding))
    parsing, release = threading.Event(), threading.Event()

    def parse(raw: bytes, package: PackageName) -> Any:
        if package.name == "fg-slow":
            parsing.set()
            release.wait(30)
        return inspect_keeping(raw, package)

    monkeypatch.setattr(service, "inspect_keeping", parse)
    proxy = make_proxy(prefetch_scans=0, prefetch_packuments=4)
    slow: list[int] = []
    first = threading.Thread(
        target=lambda: slow.append(proxy.client.get("/fg-slow", headers=NPM).status_code)
    )
    first.start()
    try:
        assert parsing.wait(10)  # a client's parse runs, and goes on
        assert proxy.client.get("/fg-app", headers=NPM).status_code == 200
        assert wait_until(lambda: registry.requests_for("/fg-dep"))  # fetched ahead, waiting
        served = proxy.client.get("/fg-dep", headers=NPM, timeout=5)
        assert served.status_code == 200
        assert served.json()["name"] == "fg-dep"
        assert not slow  # answered while the other client's parse still ran
        assert len(registry.requests_for("/fg-dep")) == 1  # the look-ahead's fetch, joined
    finally:
        release.set()
        first.join(10)
    assert slow == [200]


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
