"""The proxy against a real fake upstream on loopback: protocol, caching and failure modes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

from tests.conftest import ProxyFactory, RunningProxy, publish_basics
from tests.fakes.clock import ManualClock
from tests.fakes.packages import FakeVersion, integrity_of
from tests.fakes.registry import FakeRegistry, running_registry

ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


@pytest.fixture
def basics(registry: FakeRegistry) -> FakeRegistry:
    publish_basics(registry)
    return registry


# -- packuments --------------------------------------------------------------------------------


def test_full_packument_rewrites_tarballs_and_keeps_everything_else(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    r = proxy.client.get("/fg-alpha")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    upstream = basics.packuments["fg-alpha"]
    assert doc["dist-tags"] == {"latest": "1.1.0", "next": "2.0.0-beta.1"}
    assert set(doc["versions"]) == {"1.0.0", "1.1.0", "2.0.0-beta.1"}
    for version, manifest in doc["versions"].items():
        original = upstream["versions"][version]
        assert manifest["dist"]["tarball"] == f"{proxy.url}/fg-alpha/-/fg-alpha-{version}.tgz"
        assert manifest["dist"]["integrity"] == original["dist"]["integrity"]
        assert manifest["dist"]["shasum"] == original["dist"]["shasum"]
        assert manifest["description"] == original["description"]
    assert doc["time"] == upstream["time"]


def test_abbreviated_packument_keeps_time_and_drops_other_fields(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    r = proxy.client.get("/fg-alpha", headers={"accept": ABBREVIATED})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.npm.install-v1+json")
    doc = r.json()
    assert set(doc) == {"name", "modified", "dist-tags", "versions", "time"}
    assert doc["time"]["1.0.0"] == "2024-01-01T00:00:00.000Z"
    manifest = doc["versions"]["1.0.0"]
    assert "description" not in manifest
    assert "_id" not in manifest
    assert manifest["dependencies"] == {"fg-beta": "^2.0.0"}
    assert manifest["dist"]["tarball"].startswith(proxy.url)


def test_full_and_abbreviated_have_different_etags_and_vary(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    full = proxy.client.get("/fg-alpha")
    abbreviated = proxy.client.get("/fg-alpha", headers={"accept": ABBREVIATED})
    assert full.headers["etag"] != abbreviated.headers["etag"]
    assert full.headers["vary"] == "Accept, Accept-Encoding"


def test_client_conditional_request_gets_304(basics: FakeRegistry, proxy: RunningProxy) -> None:
    etag = proxy.client.get("/fg-alpha", headers={"accept": ABBREVIATED}).headers["etag"]
    again = proxy.client.get("/fg-alpha", headers={"accept": ABBREVIATED, "if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    # The abbreviated ETag must not validate the full document (pnpm #14925).
    full = proxy.client.get("/fg-alpha", headers={"if-none-match": etag})
    assert full.status_code == 200


def test_gzip_is_served_when_accepted(basics: FakeRegistry, proxy: RunningProxy) -> None:
    with httpx.Client(base_url=proxy.url) as raw:
        r = raw.get("/fg-alpha", headers={"accept-encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        plain = raw.get("/fg-alpha", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
    assert (
        json.loads(gzip.decompress(r.read() if False else _raw_body(proxy, "/fg-alpha")))
        == plain.json()
    )


def _raw_body(proxy: RunningProxy, path: str) -> bytes:
    with (
        httpx.Client(base_url=proxy.url) as c,
        c.stream("GET", path, headers={"accept-encoding": "gzip"}) as r,
    ):
        return b"".join(r.iter_raw())


@pytest.mark.parametrize("path", ["/@fg-scope%2fgamma", "/@fg-scope%2Fgamma", "/@fg-scope/gamma"])
def test_scoped_names_in_every_encoding(
    basics: FakeRegistry, proxy: RunningProxy, path: str
) -> None:
    r = proxy.client.get(path)
    assert r.status_code == 200
    doc = r.json()
    assert doc["name"] == "@fg-scope/gamma"
    assert (
        doc["versions"]["1.0.1"]["dist"]["tarball"]
        == f"{proxy.url}/@fg-scope/gamma/-/gamma-1.0.1.tgz"
    )
    tarball = proxy.client.get(doc["versions"]["1.0.1"]["dist"]["tarball"])
    assert tarball.status_code == 200
    assert tarball.content == basics.tarballs["/@fg-scope/gamma/-/gamma-1.0.1.tgz"]


def test_packument_is_fetched_once_then_served_from_cache(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    for _ in range(3):
        assert proxy.client.get("/fg-beta").status_code == 200
        assert proxy.client.get("/fg-beta", headers={"accept": ABBREVIATED}).status_code == 200
    assert len(basics.requests_for("/fg-beta")) == 1
    assert proxy.client.get("/fg-beta").headers["x-floodgate-cache"] == "hit"


def test_expired_packument_is_revalidated_with_if_none_match(
    basics: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    clock = ManualClock()
    proxy = make_proxy(packument_ttl=60, clock=clock)
    assert proxy.client.get("/fg-beta").headers["x-floodgate-cache"] == "miss"
    clock.advance(59)
    assert proxy.client.get("/fg-beta").headers["x-floodgate-cache"] == "hit"
    clock.advance(2)
    r = proxy.client.get("/fg-beta")
    assert r.headers["x-floodgate-cache"] == "revalidated"
    second = basics.requests_for("/fg-beta")[1]
    assert second.headers["if-none-match"].startswith('"')


def test_new_upstream_version_appears_after_ttl(
    basics: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    clock = ManualClock()
    proxy = make_proxy(packument_ttl=60, clock=clock)
    assert "2.2.0" not in proxy.client.get("/fg-beta").json()["versions"]
    basics.add("fg-beta", FakeVersion("2.2.0"))
    assert "2.2.0" not in proxy.client.get("/fg-beta").json()["versions"]  # still fresh
    clock.advance(61)
    doc = proxy.client.get("/fg-beta").json()
    assert "2.2.0" in doc["versions"]
    assert proxy.client.get("/fg-beta/-/fg-beta-2.2.0.tgz").status_code == 200


def test_version_and_tag_endpoints(basics: FakeRegistry, proxy: RunningProxy) -> None:
    r = proxy.client.get("/fg-alpha/1.0.0")
    assert r.status_code == 200
    assert r.json()["version"] == "1.0.0"
    assert r.json()["dist"]["tarball"].startswith(proxy.url)
    assert proxy.client.get("/fg-alpha/next").json()["version"] == "2.0.0-beta.1"
    assert proxy.client.get("/fg-alpha/latest").json()["version"] == "1.1.0"
    missing = proxy.client.get("/fg-alpha/9.9.9")
    assert missing.status_code == 404
    assert "fg-alpha@9.9.9" in missing.json()["error"]


def test_dist_tags_endpoint(basics: FakeRegistry, proxy: RunningProxy) -> None:
    assert proxy.client.get("/-/package/fg-alpha/dist-tags").json() == {
        "latest": "1.1.0",
        "next": "2.0.0-beta.1",
    }
    assert proxy.client.get("/-/package/@fg-scope%2fgamma/dist-tags").json() == {"latest": "1.0.1"}


def test_multi_megabyte_packument_through_worker_process(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    big = "x" * 2000
    versions = [FakeVersion(f"1.0.{i}", extra={"readme_blob": big}) for i in range(1500)]
    registry.add("fg-huge", *versions)
    assert len(orjson.dumps(registry.packuments["fg-huge"])) > 3_000_000
    proxy = make_proxy(render_workers=1)
    abbreviated = proxy.client.get("/fg-huge", headers={"accept": ABBREVIATED}).json()
    assert len(abbreviated["versions"]) == 1500
    assert "readme_blob" not in abbreviated["versions"]["1.0.7"]
    full = proxy.client.get("/fg-huge").json()
    assert full["versions"]["1.0.7"]["readme_blob"] == big
    assert full["dist-tags"]["latest"] == "1.0.1499"


def test_mirror_without_etag_or_gzip_still_gets_abbreviated_etag_and_gzip(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    basics.mirror = True
    r = proxy.client.get("/fg-alpha", headers={"accept": ABBREVIATED, "accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["etag"]
    assert "description" not in r.json()["versions"]["1.0.0"]


# -- tarballs ----------------------------------------------------------------------------------


def test_tarball_bytes_pass_through_untouched_and_are_cached_on_disk(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    path = "/fg-alpha/-/fg-alpha-1.0.0.tgz"
    first = proxy.client.get(path)
    assert first.status_code == 200
    assert first.content == basics.tarballs[path]
    assert (
        integrity_of(first.content)
        == basics.packuments["fg-alpha"]["versions"]["1.0.0"]["dist"]["integrity"]
    )
    assert first.headers["x-floodgate-cache"] == "miss"
    second = proxy.client.get(path)
    assert second.headers["x-floodgate-cache"] == "hit"
    assert second.content == first.content
    assert len(basics.requests_for(path)) == 1
    stored = [p for p in (proxy.settings.cache_dir / "tarballs").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert stored[0].read_bytes() == first.content


def test_large_tarball_is_streamed_from_disk(
    registry: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    import os

    blob = os.urandom(3 * 1024 * 1024)
    registry.add("fg-large", FakeVersion("1.0.0", files={"blob.bin": blob}))
    proxy = make_proxy(tarball_memory_mb=1)
    path = "/fg-large/-/fg-large-1.0.0.tgz"
    for _ in range(2):
        r = proxy.client.get(path)
        assert r.status_code == 200
        assert r.content == registry.tarballs[path]
        assert int(r.headers["content-length"]) == len(registry.tarballs[path])


def test_tarball_with_wrong_integrity_is_refused_and_not_cached(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    path = "/fg-beta/-/fg-beta-2.0.0.tgz"
    basics.faults[path] = "integrity"
    r = proxy.client.get(path)
    assert r.status_code == 502
    assert "integrity" in r.json()["error"]
    assert not [p for p in (proxy.settings.cache_dir / "tarballs").rglob("*") if p.is_file()]
    del basics.faults[path]
    assert proxy.client.get(path).content == basics.tarballs[path]


def test_unknown_tarball_is_404(basics: FakeRegistry, proxy: RunningProxy) -> None:
    r = proxy.client.get("/fg-alpha/-/fg-alpha-7.7.7.tgz")
    assert r.status_code == 404
    assert "fg-alpha" in r.json()["error"]


def test_tarball_on_another_host_is_not_followed_unless_allowed(
    tmp_path: Path, make_proxy: ProxyFactory
) -> None:
    # Same server, other name: "localhost" is another origin than the upstream's 127.0.0.1.
    with running_registry(FakeRegistry(tarball_host="localhost")) as (other, _):
        other.add("fg-elsewhere", FakeVersion("1.0.0"))
        denied = make_proxy(upstream=other.url, cache_dir=str(tmp_path / "a"))
        r = denied.client.get("/fg-elsewhere/-/fg-elsewhere-1.0.0.tgz")
        assert r.status_code == 403
        assert "localhost" in r.json()["error"]
        assert not other.requests_for("/fg-elsewhere/-/fg-elsewhere-1.0.0.tgz")
        allowed = make_proxy(
            upstream=other.url, cache_dir=str(tmp_path / "b"), allow_tarball_hosts="localhost"
        )
        ok = allowed.client.get("/fg-elsewhere/-/fg-elsewhere-1.0.0.tgz")
        assert ok.status_code == 200


# -- failure modes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [("500", "500"), ("malformed", "not valid JSON"), ("drop", "upstream"), ("slow", "timed out")],
)
def test_cold_upstream_failure_is_a_clear_502(
    basics: FakeRegistry, make_proxy: ProxyFactory, fault: str, message: str
) -> None:
    basics.faults["fg-alpha"] = fault
    basics.slow_seconds = 3
    proxy = make_proxy(read_timeout=0.5)
    r = proxy.client.get("/fg-alpha")
    assert r.status_code == 502
    assert message in r.json()["error"]
    assert "fg-alpha" in r.json()["error"]
    # One bad package does not hurt the others.
    assert proxy.client.get("/fg-beta").status_code == 200


@pytest.mark.parametrize("fault", ["500", "malformed", "drop", "slow"])
def test_warm_upstream_failure_serves_stale(
    basics: FakeRegistry, make_proxy: ProxyFactory, fault: str
) -> None:
    clock = ManualClock()
    proxy = make_proxy(packument_ttl=60, read_timeout=0.5, clock=clock)
    good = proxy.client.get("/fg-alpha").json()
    clock.advance(61)
    basics.faults["fg-alpha"] = fault
    basics.slow_seconds = 3
    r = proxy.client.get("/fg-alpha")
    assert r.status_code == 200
    assert r.headers["x-floodgate-cache"] == "stale"
    assert "110" in r.headers["warning"]
    assert r.json() == good


def test_upstream_404_is_npm_style_404(basics: FakeRegistry, proxy: RunningProxy) -> None:
    r = proxy.client.get("/fg-does-not-exist")
    assert r.status_code == 404
    assert r.json()["error"]


def test_upstream_down_entirely(tmp_path: Path, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(upstream="http://127.0.0.1:9", connect_timeout=0.5)
    r = proxy.client.get("/fg-alpha")
    assert r.status_code == 502
    assert "fg-alpha" in r.json()["error"]


@pytest.mark.anyio
async def test_concurrent_cold_requests_make_one_upstream_fetch(
    basics: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    basics.faults["fg-beta"] = "slow"
    basics.slow_seconds = 0.3
    proxy = make_proxy()
    results: list[int] = []
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:

        async def one(accept: str) -> None:
            results.append((await client.get("/fg-beta", headers={"accept": accept})).status_code)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, ABBREVIATED if i % 2 else "application/json")
    assert results == [200] * 20
    assert len(basics.requests_for("/fg-beta")) == 1


def test_restart_with_upstream_down_serves_from_disk(
    basics: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    first = make_proxy()
    doc = first.client.get("/fg-alpha").json()
    tarball = first.client.get("/fg-alpha/-/fg-alpha-1.1.0.tgz").content
    first.stop()
    second = make_proxy(upstream="http://127.0.0.1:9", connect_timeout=0.5)
    r = second.client.get("/fg-alpha")
    assert r.status_code == 200
    assert r.headers["x-floodgate-cache"] == "stale"
    assert r.json()["versions"] == {
        v: {
            **m,
            "dist": {**m["dist"], "tarball": m["dist"]["tarball"].replace(first.url, second.url)},
        }
        for v, m in doc["versions"].items()
    }
    assert second.client.get("/fg-alpha/-/fg-alpha-1.1.0.tgz").content == tarball


# -- registry endpoints -----------------------------------------------------------------------


def test_ping(proxy: RunningProxy) -> None:
    r = proxy.client.get("/-/ping?write=true")
    assert r.status_code == 200
    assert r.json() == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/fg-alpha"),
        ("PUT", "/@fg-scope%2fgamma"),
        ("DELETE", "/fg-alpha/-/rev/3-abc"),
        ("PUT", "/-/package/fg-alpha/dist-tags/next"),
        ("DELETE", "/-/package/fg-alpha/dist-tags/next"),
    ],
)
def test_write_endpoints_are_read_only_405(proxy: RunningProxy, method: str, path: str) -> None:
    r = proxy.client.request(method, path, content=b"{}")
    assert r.status_code == 405
    assert "read-only" in r.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/-/user/org.couchdb.user:alice"), ("POST", "/-/v1/login")]
)
def test_login_is_refused_with_how_to_get_a_token(
    proxy: RunningProxy, method: str, path: str
) -> None:
    r = proxy.client.request(method, path, content=b"{}")
    assert r.status_code == 405
    assert "does not log users in" in r.json()["error"]
    assert "floodgate token create" in r.json()["error"]


@pytest.mark.parametrize(
    "path", ["/.hidden", "/_private", "/has%20space", "/@scope-only", "/a/b/c/d", "/%C3%A9t%C3%A9"]
)
def test_invalid_names_are_400_with_a_reason(proxy: RunningProxy, path: str) -> None:
    r = proxy.client.get(path)
    assert r.status_code == 400
    assert r.json()["error"]


def test_whoami_without_forwarding_is_401(proxy: RunningProxy) -> None:
    r = proxy.client.get("/-/whoami", headers={"authorization": "Bearer secret"})
    assert r.status_code == 401
    assert "credentials" in r.json()["error"]


def test_passthrough_forwards_and_never_sends_client_credentials(
    basics: FakeRegistry, proxy: RunningProxy
) -> None:
    basics.packuments["-/npm/v1/keys"] = {"keys": [{"keyid": "SHA256:test"}]}
    r = proxy.client.get(
        "/-/npm/v1/keys", headers={"authorization": "Bearer secret", "cookie": "a=b"}
    )
    assert r.json() == {"keys": [{"keyid": "SHA256:test"}]}
    proxy.client.get("/fg-alpha", headers={"authorization": "Bearer secret"})
    for seen in basics.seen:
        assert "authorization" not in seen.headers
        assert "cookie" not in seen.headers


def test_search_and_audit_degrade_when_upstream_lacks_them(proxy: RunningProxy) -> None:
    search = proxy.client.get("/-/v1/search?text=react&size=5")
    assert search.status_code == 200
    assert search.json()["objects"] == []
    assert "no search" in search.headers["npm-notice"]
    audit = proxy.client.post("/-/npm/v1/security/advisories/bulk", json={"fg-alpha": ["1.0.0"]})
    assert audit.status_code == 200
    assert audit.json() == {}


def test_access_log_line_has_status_cache_state_and_time(
    basics: FakeRegistry, proxy: RunningProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy.client.get("/fg-alpha")
    proxy.client.get("/fg-alpha")
    proxy.client.get("/fg-nope")
    proxy.stop()  # flushes the access log
    lines = capsys.readouterr().err.splitlines()
    access = [line for line in lines if "floodgate.access:" in line]
    assert any(" GET /fg-alpha 200 miss " in line and "ms " in line for line in access)
    assert any(" GET /fg-alpha 200 hit " in line for line in access)
    assert any(" GET /fg-nope 404 " in line for line in access)
