"""Hosted packages through a running proxy: the registry's write side over real HTTP, and the
hosted packages served through the same pipeline as proxied ones (fake upstream, real tokens)."""

from __future__ import annotations

import concurrent.futures
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.cli import main
from proxy.decisions import query
from proxy.hosted.store import HostedStore
from proxy.web.routes import wants_write
from tests.conftest import ProxyFactory, RunningProxy
from tests.fakes.packages import FakeVersion, clean, farm, make_tarball, publish_body
from tests.fakes.registry import FakeRegistry
from tests.web.test_auth import bearer, make_token

NAME = "@acme/greeter"
PATH = "/@acme%2fgreeter"


@pytest.fixture
def hosted(registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path) -> Hosted:
    cache = tmp_path / "cache"
    tokens = {
        group: make_token(cache, group, f"{group}-1")
        for group in ("developers", "ci", "contractors", "admin")
    }
    proxy = make_proxy(
        internal_scopes="@acme",
        internal_readers="@acme=developers+ci",
        internal_publishers="@acme=developers",
    )
    return Hosted(proxy, tokens, cache, registry)


class Hosted:
    def __init__(
        self, proxy: RunningProxy, tokens: dict[str, str], cache: Path, registry: FakeRegistry
    ):
        self.proxy = proxy
        self.tokens = tokens
        self.cache = cache
        self.registry = registry

    def as_(self, group: str) -> dict[str, str]:
        return bearer(self.tokens[group])

    def publish(
        self, fv: FakeVersion, group: str = "developers", name: str = NAME, **kw: Any
    ) -> Any:
        body = orjson.dumps(publish_body(name, fv, **kw))
        path = "/" + name.replace("/", "%2f")
        return self.proxy.client.put(path, content=body, headers=self.as_(group))

    def events(self) -> list[tuple[str, str, str]]:
        store = HostedStore.in_cache(self.cache)
        try:
            return [(e.event, e.version, e.group) for e in reversed(store.events())]
        finally:
            store.close()

    def tarball_rows(self) -> int:
        store = HostedStore.in_cache(self.cache)
        try:
            return len(store.tarball_keys(NAME))
        finally:
            store.close()


def test_a_published_package_is_served_like_a_proxied_one(hosted: Hosted) -> None:
    r = hosted.publish(clean("1.0.0"))
    assert r.status_code == 201, r.text
    assert hosted.publish(clean("1.1.0"), tags=("beta",)).status_code == 201
    client, dev = hosted.proxy.client, hosted.as_("developers")
    full = client.get(PATH, headers=dev)
    assert full.status_code == 200
    doc = full.json()
    assert doc["dist-tags"] == {"latest": "1.0.0", "beta": "1.1.0"}
    url = doc["versions"]["1.1.0"]["dist"]["tarball"]
    assert url == f"{hosted.proxy.url}/@acme/greeter/-/greeter-1.1.0.tgz"
    abbreviated = client.get(
        PATH, headers={**dev, "accept": "application/vnd.npm.install-v1+json"}
    ).json()
    hosted.registry.add("left-pad", clean("1.0.0"))
    proxied = client.get(
        "/left-pad", headers={**dev, "accept": "application/vnd.npm.install-v1+json"}
    )
    assert set(abbreviated) == set(proxied.json())  # the same shape as a proxied one
    assert "readme" not in abbreviated
    assert "_rev" not in abbreviated
    again = client.get(PATH, headers={**dev, "if-none-match": full.headers["etag"]})
    assert again.status_code == 304
    zipped = client.get(PATH, headers={**dev, "accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    tarball = client.get(url, headers=dev)
    assert tarball.status_code == 200
    integrity = doc["versions"]["1.1.0"]["dist"]["shasum"]
    assert hashlib.sha1(tarball.content, usedforsecurity=False).hexdigest() == integrity
    assert client.get(f"{PATH}/beta", headers=dev).json()["version"] == "1.1.0"
    tags = client.get("/-/package/@acme%2fgreeter/dist-tags", headers=dev).json()
    assert tags == {"latest": "1.0.0", "beta": "1.1.0"}
    # Never looked up upstream, not even the first GET npm makes before it publishes.
    assert [s.path for s in hosted.registry.seen if "acme" in s.path] == []
    assert hosted.events() == [
        ("publish", "1.0.0", "developers"),
        ("publish", "1.1.0", "developers"),
    ]
    assert zipped.content == full.content  # httpx has inflated it


def test_reading_hosted_packages_needs_a_reader_group(hosted: Hosted) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client = hosted.proxy.client
    assert client.get(PATH, headers=hosted.as_("ci")).status_code == 200
    anonymous = client.get(PATH)
    assert anonymous.status_code == 401
    assert "floodgate token create" in anonymous.headers["npm-notice"]
    guest = client.get(PATH, headers=hosted.as_("contractors"))
    assert guest.status_code == 403
    assert "group 'contractors' may not read @acme/greeter" in guest.json()["error"]
    file = client.get("/@acme/greeter/-/greeter-1.0.0.tgz", headers=hosted.as_("contractors"))
    assert file.status_code == 403
    assert client.get(PATH, headers=hosted.as_("admin")).status_code == 200


def refused_count(hosted: Hosted) -> float:
    """The refused-attempts counter (the metrics registry is per process: compare, not read)."""
    text = hosted.proxy.client.get("/-/metrics", headers=hosted.as_("admin")).text
    prefix = 'floodgate_hosted_changes_total{event="refused"} '
    return sum(
        float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)
    )


def test_only_publisher_groups_may_publish_and_a_refusal_is_audited(hosted: Hosted) -> None:
    before = refused_count(hosted)
    ci = hosted.publish(clean("1.0.0"), group="ci")
    assert ci.status_code == 403
    assert "the groups that may: admin, developers" in ci.json()["error"]
    anonymous = hosted.proxy.client.put(
        PATH, content=orjson.dumps(publish_body(NAME, clean("1.0.0")))
    )
    assert anonymous.status_code == 401
    assert hosted.events() == [("refused", "", "ci")]
    assert refused_count(hosted) == before + 1
    assert hosted.proxy.client.get(PATH, headers=hosted.as_("ci")).status_code == 404


def test_a_farmed_package_is_refused_with_the_reason_and_leaves_nothing(hosted: Hosted) -> None:
    r = hosted.publish(farm("1.0.0"))
    assert r.status_code == 451, r.text
    error = r.json()["error"]
    assert error.startswith("Floodgate refused to publish @acme/greeter@1.0.0 (policy 'default'")
    assert "tea" in error.lower()
    assert hosted.tarball_rows() == 0
    assert hosted.proxy.client.get(PATH, headers=hosted.as_("developers")).status_code == 404
    assert hosted.events() == [("refused", "1.0.0", "developers")]
    hosted.proxy.stop()
    rows = [r for r in query(hosted.cache / "decisions.sqlite3") if r.via == "publish"]
    assert [(r.package, r.version, r.action, r.group) for r in rows] == [
        (NAME, "1.0.0", "block", "developers")
    ]


def test_a_tarball_with_path_traversal_is_a_400_and_leaves_nothing(hosted: Hosted) -> None:
    evil = make_tarball(
        {"package/package.json": orjson.dumps({"name": NAME, "version": "1.0.0"}), "../x": b"1"},
        prefix="",
    )
    r = hosted.publish(clean("1.0.0"), tarball=evil)
    assert r.status_code == 400
    assert "path_traversal" in r.json()["error"]
    assert hosted.tarball_rows() == 0
    assert hosted.events() == [("refused", "1.0.0", "developers")]  # audited, nothing stored


def test_concurrent_publishes_of_different_versions_all_land(hosted: Hosted) -> None:
    versions = [f"1.{i}.0" for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda v: hosted.publish(clean(v)).status_code, versions))
    assert codes == [201] * len(versions)
    doc = hosted.proxy.client.get(PATH, headers=hosted.as_("developers")).json()
    assert sorted(doc["versions"]) == versions
    assert hosted.tarball_rows() == len(versions)


def test_unpublishing_the_whole_package_keeps_its_version_numbers_used(hosted: Hosted) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client, dev = hosted.proxy.client, hosted.as_("developers")
    rev = client.get(f"{PATH}?write=true", headers=dev).json()["_rev"]
    assert client.delete(f"{PATH}/-rev/9-stale", headers=dev).status_code == 409
    assert client.delete(f"{PATH}/-rev/{rev}", headers=hosted.as_("ci")).status_code == 403
    assert client.delete(f"{PATH}/-rev/{rev}", headers=dev).status_code == 200
    gone = client.get(PATH, headers=dev)
    assert gone.status_code == 404
    assert "unpublished" in gone.json()["error"]
    assert hosted.tarball_rows() == 0
    again = hosted.publish(clean("1.0.0"))
    assert again.status_code == 403
    assert "cannot publish over the previously published versions: 1.0.0" in again.json()["error"]
    assert hosted.publish(clean("1.0.1")).status_code == 201
    assert client.get(PATH, headers=dev).json()["dist-tags"] == {"latest": "1.0.1"}


def test_write_true_shows_publishers_the_stored_document_without_policy_edits(
    hosted: Hosted, registry: FakeRegistry
) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client = hosted.proxy.client
    stored = client.get(f"{PATH}?write=true", headers=hosted.as_("developers")).json()
    assert stored["_rev"].startswith("1-")
    reader = client.get(f"{PATH}?write=true", headers=hosted.as_("ci")).json()
    assert reader["versions"]["1.0.0"]["dist"] == stored["versions"]["1.0.0"]["dist"]


def test_writes_to_proxied_names_stay_read_only(hosted: Hosted) -> None:
    r = hosted.proxy.client.put("/left-pad", content=b"{}", headers=hosted.as_("admin"))
    assert r.status_code == 405
    assert "read-only proxy for left-pad" in r.json()["error"]
    tag = hosted.proxy.client.put(
        "/-/package/left-pad/dist-tags/beta", content=b'"1.0.0"', headers=hosted.as_("admin")
    )
    assert tag.status_code == 405


def test_doctor_counts_the_hosted_packages(
    hosted: Hosted, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    assert hosted.publish(clean("1.0.1")).status_code == 201
    argv = [
        "doctor", "--upstream", hosted.registry.url, "--cache-dir", str(hosted.cache),
        "--osv-feed", "off", "--internal-scopes", "@acme",
        "--internal-publishers", "@acme=developers",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"ok       hosted    1 packages, 2 versions in {hosted.cache}" in out
    assert "publishers: @acme=developers" in out


def test_npm_star_or_a_body_without_versions_never_unpublishes(hosted: Hosted) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client, dev = hosted.proxy.client, hosted.as_("developers")
    rev = client.get(f"{PATH}?write=true", headers=dev).json()["_rev"]
    star = orjson.dumps({"_id": NAME, "_rev": rev, "users": {"alice": True}})
    for path in (PATH, f"{PATH}/-rev/{rev}"):
        r = client.put(path, content=star, headers=dev)
        assert r.status_code == 400
        assert "npm star and npm owner are not supported" in r.json()["error"]
    assert list(client.get(PATH, headers=dev).json()["versions"]) == ["1.0.0"]
    assert client.delete(PATH, headers=dev).status_code == 400  # no revision: refused


def test_a_stale_deprecate_is_a_409_and_never_removes_newer_versions(hosted: Hosted) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client, dev = hosted.proxy.client, hosted.as_("developers")
    stale = client.get(f"{PATH}?write=true", headers=dev).json()  # only 1.0.0
    assert hosted.publish(clean("1.1.0")).status_code == 201
    stale["versions"]["1.0.0"]["deprecated"] = "use 1.1.0"
    r = client.put(PATH, content=orjson.dumps(stale), headers=dev)
    assert r.status_code == 409
    fresh = client.get(f"{PATH}?write=true", headers=dev).json()
    assert sorted(fresh["versions"]) == ["1.0.0", "1.1.0"]
    fresh["versions"]["1.0.0"]["deprecated"] = "use 1.1.0"
    assert client.put(PATH, content=orjson.dumps(fresh), headers=dev).status_code == 200
    served = client.get(PATH, headers=dev).json()
    assert served["versions"]["1.0.0"]["deprecated"] == "use 1.1.0"
    assert "1.1.0" in served["versions"]


def test_hosted_responses_are_private_to_shared_caches(hosted: Hosted) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client, dev = hosted.proxy.client, hosted.as_("developers")
    doc = client.get(PATH, headers=dev)
    assert doc.headers["cache-control"].startswith("private")
    assert "Authorization" in doc.headers["vary"]
    tarball = client.get(doc.json()["versions"]["1.0.0"]["dist"]["tarball"], headers=dev)
    assert tarball.headers["cache-control"].startswith("private")


@pytest.mark.parametrize(
    ("query", "write"),
    [(b"write=true", True), (b"a=1&write=true", True), (b"overwrite=true", False), (b"", False)],
)
def test_write_view_is_asked_for_by_the_write_parameter_only(query: bytes, write: bool) -> None:
    assert wants_write(query) is write


def test_refused_unpublishes_and_tag_changes_are_audited(hosted: Hosted) -> None:
    assert hosted.publish(clean("1.0.0")).status_code == 201
    client, ci = hosted.proxy.client, hosted.as_("ci")
    tag = client.put("/-/package/@acme%2fgreeter/dist-tags/beta", content=b'"1.0.0"', headers=ci)
    assert tag.status_code == 403
    rev = client.get(f"{PATH}?write=true", headers=ci).json()["_rev"]
    assert client.delete(f"{PATH}/-rev/{rev}", headers=ci).status_code == 403
    assert hosted.events() == [
        ("publish", "1.0.0", "developers"),
        ("refused", "", "ci"),
        ("refused", "", "ci"),
    ]


def test_a_warned_publish_is_accepted_with_a_notice_and_npm_audit_reports_it(
    registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    dev = make_token(cache, "developers", "alice")
    guest = make_token(cache, "contractors", "bob")
    proxy = make_proxy(
        internal_scopes="@acme",
        internal_readers="@acme=developers",
        internal_publishers="@acme=developers",
        policy="audit",
    )
    body = orjson.dumps(publish_body(NAME, farm("1.0.0")))
    r = proxy.client.put(PATH, content=body, headers=bearer(dev))
    assert r.status_code == 201
    assert "Floodgate warning" in r.headers["npm-notice"]
    audit = proxy.client.post(
        "/-/npm/v1/security/advisories/bulk",
        content=orjson.dumps({NAME: ["1.0.0"]}),
        headers=bearer(dev),
    )
    assert audit.status_code == 200
    (advisory,) = audit.json()[NAME]
    assert "tea" in advisory["title"].lower() or "tea" in str(advisory).lower()
    outsider = proxy.client.post(
        "/-/npm/v1/security/advisories/bulk",
        content=orjson.dumps({NAME: ["1.0.0"]}),
        headers=bearer(guest),
    )
    assert outsider.status_code == 200
    assert NAME not in outsider.json()  # a caller who may not read it learns nothing of it
