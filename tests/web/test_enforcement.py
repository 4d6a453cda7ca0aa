"""Policy enforcement at the HTTP level: packuments, tarballs, the decision log, reloads."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from proxy.decisions import query
from tests.conftest import ProxyFactory
from tests.fakes.packages import clean, farm, hello
from tests.fakes.registry import FakeRegistry

ABBREVIATED = "application/vnd.npm.install-v1+json"

HIDE_SPAM = """
version: 1
name: hide-spam
rules:
  - id: malicious
    match: {labels: [malicious]}
    action: block
  - id: spam
    match: {labels: [spam]}
    action: hide
  - id: weak
    match: {labels: [suspicious]}
    action: warn
"""


@pytest.fixture
def spammy(registry: FakeRegistry) -> FakeRegistry:
    registry.add("fg-farm", farm("1.0.0"))
    registry.add("fg-mixed", clean("1.0.0"), farm("1.1.0"))
    registry.add("fg-hello", hello("1.0.0"))
    registry.add("fg-clean", clean("1.0.0"), clean("1.0.1"))
    return registry


def write_policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_blocked_url(url: str, base: str, *words: str) -> None:
    """A blocked tarball URL: under /-/blocked/, with the reason's words in its path."""
    assert url.startswith(f"{base}/-/blocked/Floodgate-blocked-"), url
    for word in words:
        assert word in url, (word, url)


def test_token_farming_package_is_refused_with_the_rule_and_reason(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(prefetch_scans=0)  # the shipped default policy
    # Cold, the packument is answered from its metadata: nothing there gives it away.
    assert "policyRestrictions" not in proxy.client.get("/fg-farm").json()
    # Its tarball is scanned before it is served, and refused: the plain URL redirects to the
    # blocked URL, whose path spells the reason.
    first = proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz")
    assert first.status_code == 302
    assert_blocked_url(first.headers["location"], proxy.url, "fg-farm@1.0.0", "token-farming")
    # From then on the packument is served with the blocked version kept, so every client
    # reaches its tarball URL (which spells the reason) instead of a packument error some
    # clients do not print.
    r = proxy.client.get("/fg-farm")
    assert r.status_code == 200
    doc = r.json()
    manifest = doc["versions"]["1.0.0"]
    assert_blocked_url(manifest["dist"]["tarball"], proxy.url, "fg-farm@1.0.0", "token-farming")
    assert manifest["dist"]["tarball"].endswith("/fg-farm/-/fg-farm-1.0.0.tgz")
    assert "tea.xyz registration file" in manifest["deprecated"]
    assert "tea.xyz registration file" in doc["policyRestrictions"]["message"]
    assert doc["dist-tags"] == {"latest": "1.0.0"}  # nothing clean to move to
    # The blocked URL answers 451 (pnpm prints no log-in hint for it) with the reason.
    blocked = proxy.client.get(manifest["dist"]["tarball"])
    assert blocked.status_code == 451
    error = blocked.json()["error"]
    assert "fg-farm@1.0.0" in error
    assert "token-farming" in error
    assert "tea.xyz registration file" in error
    assert error.endswith("Details: floodgate why fg-farm@1.0.0")
    assert "token-farming" in blocked.headers["npm-notice"]
    # The plain URL (a lockfile's) redirects there, so clients that print URLs show the reason.
    plain = proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz")
    assert plain.status_code == 302
    assert_blocked_url(plain.headers["location"], proxy.url, "fg-farm@1.0.0", "token-farming")
    assert proxy.client.get(plain.headers["location"]).status_code == 451


def test_likely_versions_are_scanned_in_the_background(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy()  # prefetch_scans: 1, the latest version
    assert proxy.client.get("/fg-mixed").status_code == 200
    # No client asks for a tarball, yet the latest version is scanned and then restricted.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        doc = proxy.client.get("/fg-mixed").json()
        if "policyRestrictions" in doc:
            break
        time.sleep(0.05)
    assert list(doc["policyRestrictions"]["versions"]) == ["1.1.0"]
    assert doc["dist-tags"]["latest"] == "1.0.0"
    assert_blocked_url(doc["versions"]["1.1.0"]["dist"]["tarball"], proxy.url, "fg-mixed@1.1.0")
    assert spammy.requests_for("/fg-mixed/-/fg-mixed-1.1.0.tgz")


def test_blocked_version_is_restricted_and_tags_repointed(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(prefetch_scans=0)
    assert proxy.client.get("/fg-mixed/-/fg-mixed-1.1.0.tgz").status_code == 302  # scanned
    doc = proxy.client.get("/fg-mixed", headers={"accept": ABBREVIATED}).json()
    assert list(doc["versions"]) == ["1.0.0", "1.1.0"]
    assert doc["dist-tags"]["latest"] == "1.0.0"
    restrictions = doc["policyRestrictions"]
    assert list(restrictions["versions"]) == ["1.1.0"]
    assert "token-farming" in restrictions["message"]
    assert_blocked_url(doc["versions"]["1.1.0"]["dist"]["tarball"], proxy.url, "fg-mixed@1.1.0")
    assert (
        doc["versions"]["1.0.0"]["dist"]["tarball"] == f"{proxy.url}/fg-mixed/-/fg-mixed-1.0.0.tgz"
    )
    assert proxy.client.get("/fg-mixed/-/fg-mixed-1.0.0.tgz").status_code == 200
    assert proxy.client.get("/fg-mixed/-/fg-mixed-1.1.0.tgz").status_code == 302
    # The dist-tags endpoint agrees with the packument's tags.
    assert proxy.client.get("/-/package/fg-mixed/dist-tags").json() == {"latest": "1.0.0"}
    assert proxy.client.get("/-/package/fg-farm/dist-tags").json() == {"latest": "1.0.0"}
    assert proxy.client.get(doc["versions"]["1.1.0"]["dist"]["tarball"]).status_code == 451


def test_a_blocked_url_serves_the_tarball_once_the_policy_allows_it(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    # The slug is decorative: a clean version asked for under /-/blocked/ is served.
    proxy = make_proxy()
    r = proxy.client.get("/-/blocked/anything-at-all/fg-clean/-/fg-clean-1.0.0.tgz")
    assert r.status_code == 200
    assert r.content == spammy.tarballs["/fg-clean/-/fg-clean-1.0.0.tgz"]
    assert proxy.client.get("/-/blocked/x/fg-clean").status_code == 404


def test_hidden_version_is_removed_without_restriction(
    spammy: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = make_proxy(policy=write_policy(tmp_path, HIDE_SPAM), prefetch_scans=0)
    assert set(proxy.client.get("/fg-mixed").json()["versions"]) == {"1.0.0", "1.1.0"}
    # The first client to ask for the version only its tarball shows to be spam is refused:
    # it resolved from a packument that still listed it, and must not install it silently.
    first = proxy.client.get("/fg-mixed/-/fg-mixed-1.1.0.tgz", follow_redirects=True)
    assert first.status_code == 451
    assert "hid fg-mixed@1.1.0" in first.json()["error"]
    assert "install again" in first.json()["error"]
    doc = proxy.client.get("/fg-mixed").json()
    assert list(doc["versions"]) == ["1.0.0"]
    assert "policyRestrictions" not in doc
    # A lockfile that pins the hidden version still installs, with a notice.
    r = proxy.client.get("/fg-mixed/-/fg-mixed-1.1.0.tgz")
    assert r.status_code == 200
    assert "hide" in r.headers["npm-notice"] or "spam" in r.headers["npm-notice"]


def test_weak_signals_are_served_deprecated_with_the_reason(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(prefetch_scans=0)
    r = proxy.client.get("/fg-hello/-/fg-hello-1.0.0.tgz")
    assert r.status_code == 200
    assert "weak-signals" in r.headers["npm-notice"]
    doc = proxy.client.get("/fg-hello").json()
    message = doc["versions"]["1.0.0"]["deprecated"]
    assert "weak-signals" in message
    assert "greeting" in message


def test_clean_package_is_untouched(spammy: FakeRegistry, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy()
    doc = proxy.client.get("/fg-clean").json()
    assert set(doc["versions"]) == {"1.0.0", "1.0.1"}
    assert "policyRestrictions" not in doc
    assert not any("deprecated" in m for m in doc["versions"].values())


def test_enforcement_off_serves_everything(spammy: FakeRegistry, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(enforce=False)
    assert proxy.client.get("/fg-farm").status_code == 200
    assert proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz").status_code == 200


def test_dry_run_serves_and_logs_would_block(
    spammy: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    text = Path("policies/default.yaml").read_text().replace("mode: enforce", "mode: dry-run")
    proxy = make_proxy(policy=write_policy(tmp_path, text), prefetch_scans=0)
    assert proxy.client.get("/fg-farm/-/fg-farm-1.0.0.tgz").status_code == 200
    assert proxy.client.get("/fg-farm", headers={"user-agent": "npm/11 test"}).status_code == 200
    proxy.stop()  # flushes the decision log
    rows = list(query(proxy.settings.cache_dir / "decisions.sqlite3", package="fg-farm"))
    assert rows
    assert {(r.action, r.intended, r.rule) for r in rows} == {("monitor", "block", "token-farming")}
    assert {r.via for r in rows} == {"packument", "tarball"}
    packument_row = next(r for r in rows if r.via == "packument")
    assert packument_row.user_agent == "npm/11 test"
    assert packument_row.client == "127.0.0.1"
    assert packument_row.label == "spam"
    assert packument_row.request_id


def test_waiver_allows_until_it_expires(
    spammy: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    def policy_with_waiver(expires: date) -> str:
        return (
            Path("policies/default.yaml")
            .read_text()
            .replace(
                "waivers: []",
                f"waivers:\n  - package: fg-farm@^1.0.0\n    reason: vetted by security\n"
                f"    owner: sec@example.com\n    expires: {expires.isoformat()}\n",
            )
        )

    today = date.today()
    live = make_proxy(policy=write_policy(tmp_path, policy_with_waiver(today + timedelta(days=1))))
    assert "policyRestrictions" not in live.client.get("/fg-farm").json()
    assert live.client.get("/fg-farm/-/fg-farm-1.0.0.tgz").status_code == 200
    expired = make_proxy(
        policy=write_policy(tmp_path, policy_with_waiver(today - timedelta(days=1)), "old.yaml"),
        cache_dir=str(tmp_path / "other-cache"),
    )
    assert expired.client.get("/fg-farm/-/fg-farm-1.0.0.tgz").status_code == 302
    assert "policyRestrictions" in expired.client.get("/fg-farm").json()


def test_policy_edits_reload_and_change_etags(
    spammy: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    path = Path(write_policy(tmp_path, Path("policies/audit.yaml").read_text()))
    proxy = make_proxy(policy=str(path), prefetch_scans=0)
    assert proxy.client.get("/fg-mixed/-/fg-mixed-1.1.0.tgz").status_code == 200  # scanned
    first = proxy.client.get("/fg-mixed")
    assert set(first.json()["versions"]) == {"1.0.0", "1.1.0"}  # audit: served, with a warning
    clean_etag = proxy.client.get("/fg-clean").headers["etag"]

    path.write_text("rules: [\n")  # a broken edit keeps the audit policy in force
    deadline = time.monotonic() + 10
    while "last_reload_error" not in proxy.client.get("/-/ready").json()["policy"]:
        assert time.monotonic() < deadline, "the broken edit was never tried"
        time.sleep(0.05)
    assert proxy.client.get("/fg-mixed").headers["etag"] == first.headers["etag"]

    path.write_text(Path("policies/default.yaml").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        doc = proxy.client.get("/fg-mixed")
        if "policyRestrictions" in doc.json():
            break
        time.sleep(0.2)
    assert set(doc.json()["policyRestrictions"]["versions"]) == {"1.1.0"}
    assert doc.headers["etag"] != first.headers["etag"]
    assert proxy.client.get("/fg-clean").headers["etag"] != clean_etag


def test_malformed_policy_refuses_to_start(
    spammy: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    from proxy.errors import PolicyError

    bad = write_policy(tmp_path, "rules:\n  - id: x\n    action: explode\n")
    with pytest.raises(PolicyError, match=r"policy\.yaml:3: rules\[0\]\.action"):
        make_proxy(policy=bad)


def test_audit_endpoint_reports_floodgate_findings_without_an_upstream_audit(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    import gzip
    import json

    proxy = make_proxy()
    body = gzip.compress(
        json.dumps(
            {"fg-farm": ["1.0.0"], "fg-clean": ["1.0.0"], "fg-hello": ["1.0.0"], "fg-nope": ["1"]}
        ).encode()
    )
    r = proxy.client.post(
        "/-/npm/v1/security/advisories/bulk",
        content=body,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert r.status_code == 200
    found = r.json()
    assert set(found) == {"fg-farm", "fg-hello"}  # the clean and the unknown are not reported
    farm = found["fg-farm"][0]
    assert farm["severity"] == "high"
    assert farm["vulnerable_versions"] == "1.0.0"
    assert "token-farming" in farm["title"]
    assert farm["url"] == f"{proxy.url}/-/floodgate/verdict/fg-farm/1.0.0"
    assert found["fg-hello"][0]["severity"] == "moderate"  # a warning
    # The advisory's link explains the verdict.
    explained = proxy.client.get("/-/floodgate/verdict/fg-farm/1.0.0").json()
    assert explained["decision"]["rule"] == "token-farming"
    assert explained["verdict"]["label"] == "spam"
    assert {f["signal"] for f in explained["verdict"]["findings"]} >= {"tea-yaml"}
    # The upstream received the request body as npm sent it.
    seen = spammy.requests_for("/-/npm/v1/security/advisories/bulk")
    assert seen[0].headers["content-encoding"] == "gzip"


def test_audit_endpoint_merges_the_upstreams_advisories(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    upstream_advisory = {
        "id": 1099, "url": "https://example.invalid/advisories/1099",
        "title": "Prototype pollution", "severity": "moderate", "vulnerable_versions": "<1.0.1",
        "cwe": ["CWE-1321"], "cvss": {"score": 5.3, "vectorString": None},
    }  # fmt: skip
    spammy.packuments["-/npm/v1/security/advisories/bulk"] = {"fg-clean": [upstream_advisory]}
    proxy = make_proxy()
    r = proxy.client.post(
        "/-/npm/v1/security/advisories/bulk",
        json={"fg-clean": ["1.0.0"], "fg-farm": ["1.0.0"]},
    )
    found = r.json()
    assert found["fg-clean"] == [upstream_advisory]
    assert [a["severity"] for a in found["fg-farm"]] == ["high"]


def test_audit_endpoint_refuses_a_body_that_is_not_json(
    spammy: FakeRegistry, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy()
    r = proxy.client.post("/-/npm/v1/security/advisories/bulk", content=b"\x1f\x8b not really")
    assert r.status_code == 400
    assert "not (gzipped) JSON" in r.json()["error"]
