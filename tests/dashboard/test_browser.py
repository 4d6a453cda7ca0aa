"""The dashboard in a real headless browser (Debian's `chromium`), over decisions a running
Floodgate made in front of the fake upstream: every page renders, the DOM holds the data, and
a screenshot of each page is kept (`FLOODGATE_SCREENSHOTS=DIR` copies them there; the README's
come from this test).

Skipped only where chromium is not installed; in CI (CI=true) it must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import ProxyFactory, RunningProxy
from tests.dashboard.identity import auth, in_url, make_tokens
from tests.fakes.packages import clean, farm, hello
from tests.fakes.registry import FakeRegistry
from tests.hosted.activity import NEWEST_FIRST, make_activity

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("chromium is not installed; in CI (CI=true) the browser tests must run")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed on this machine (apt-get install chromium)"
)
# Loopback only: no component updates, sync, first-run pages or background requests.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--hide-scrollbars",
)
WAIVER_EXPIRES = date.today() + timedelta(days=5)
POLICY = f"""
version: 1
name: corp
rules:
  - id: quarantine-mixed
    match: {{names: [fg-mixed], labels: [spam]}}
    action: hide
  - id: malicious
    match: {{labels: [malicious]}}
    action: block
  - id: token-farming
    match: {{labels: [spam], signals: [tea-yaml, tea-wallet-reuse]}}
    action: block
  - id: weak-signals
    match: {{labels: [suspicious]}}
    action: warn
waivers:
  - package: fg-vetted@^1.0.0
    reason: reviewed by the security team
    owner: sec@example.invalid
    expires: {WAIVER_EXPIRES.isoformat()}
"""


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements below (and including) this one with `tag` and attribute values; `cls`
        matches one of the classes."""
        want = {("class" if k == "cls" else k.replace("_", "-")): v for k, v in attrs.items()}
        out = []
        for el in self.walk():
            if tag is not None and el.tag != tag:
                continue
            ok = True
            for k, v in want.items():
                have = el.attrs.get(k)
                if have is None or (v not in have.split() if k == "class" else have != v):
                    ok = False
            if ok:
                out.append(el)
        return out

    def one(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    @property
    def content(self) -> str:
        """All the text inside, whitespace collapsed."""
        return " ".join("".join(el.text for el in self.walk()).split())


VOID = frozenset({"meta", "link", "input", "br", "img", "hr", "rect", "line", "path"})


class Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        # Text goes to a child of its own so that `content` keeps document order.
        self.stack[-1].children.append(Element("#text", {}, data))


def dom(url: str, workdir: Path) -> Element:
    """The DOM chromium renders for `url`."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={workdir / 'profile'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tree = Tree()
    tree.feed(done.stdout)
    return tree.root


def screenshot(url: str, path: Path, workdir: Path, height: int = 900) -> None:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--window-size=1280,{height}",
            f"--screenshot={path}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("FLOODGATE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(keep) / path.name)


@pytest.fixture
def floodgate(registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path) -> RunningProxy:
    """A Floodgate that has decided on a few packages: three farm packages sharing a wallet (a
    campaign, blocked), a hidden spam version, a warned one and clean ones."""
    for name in ("fg-farm-a", "fg-farm-b", "fg-farm-c"):
        registry.add(name, farm("1.0.0"), farm("1.0.1"))
    registry.add("fg-mixed", clean("1.0.0"), farm("1.1.0"))
    registry.add("fg-hello", hello("1.0.0"))
    registry.add("fg-clean", clean("1.0.0"), clean("1.0.1"))
    policy = tmp_path / "corp.yaml"
    policy.write_text(POLICY)
    tokens = make_tokens(tmp_path / "cache", ("admin/alice", "ci/runner-7", "developers/bob"))
    # Anonymous on for the one anonymous request below; the browser logs in as alice.
    proxy = make_proxy(prefetch_scans=0, policy=str(policy), anonymous="on")
    proxy.admin_url = in_url(proxy.url, tokens["admin/alice"])  # type: ignore[attr-defined]
    client = proxy.client
    ci, dev = auth(tokens["ci/runner-7"]), auth(tokens["developers/bob"])
    for name in ("fg-farm-a", "fg-farm-b", "fg-farm-c"):
        for version in ("1.0.0", "1.0.1"):
            got = client.get(f"/{name}/-/{name}-{version}.tgz", headers=ci)
            assert got.status_code == 302
    again = client.get("/fg-farm-a/-/fg-farm-a-1.0.0.tgz", headers=dev)
    assert again.status_code == 302
    assert client.get("/fg-farm-a").status_code == 200  # its packument, with the blocks
    hidden = client.get("/fg-mixed/-/fg-mixed-1.1.0.tgz", headers=dev)
    assert hidden.status_code == 200  # hidden, pinned
    assert client.get("/fg-hello/-/fg-hello-1.0.0.tgz", headers=dev).status_code == 200  # warned
    assert client.get("/fg-clean/-/fg-clean-1.0.1.tgz", headers=ci).status_code == 200
    return proxy


def test_the_dashboard_renders_in_chromium(floodgate: RunningProxy, tmp_path: Path) -> None:
    base = floodgate.admin_url + "/-/dashboard"  # type: ignore[attr-defined]
    shots = tmp_path / "shots"
    shots.mkdir()

    # Overview: the counts, the chart's bars, the top lists.
    page = dom(base + "?days=1", tmp_path)
    assert page.find("title")[0].content == "Overview · Floodgate"
    blocks = int(page.one("div", cls="card", data_action="block").one(cls="n").content)
    assert blocks >= 7  # six farm tarballs, one asked for twice (and packument decisions)
    assert page.one("div", cls="card", data_action="hide").one(cls="n").content == "1"
    assert page.one("div", cls="card", data_action="warn").one(cls="n").content == "1"
    chart = page.one("svg", cls="chart")
    bars = chart.find("g", cls="bar")
    assert len(bars) == 24
    drawn = {r.attrs["class"]: int(r.attrs["data-count"]) for r in bars[-1].find("rect")}
    assert drawn["block"] == blocks
    assert drawn["hide"] == drawn["warn"] == 1
    packages = page.one("section", id="packages")
    names = [a.content for a in packages.find("a", cls="mono")]
    assert names[0] == "fg-farm-a"  # the most blocked
    assert set(names) >= {"fg-farm-a", "fg-farm-b", "fg-farm-c", "fg-mixed", "fg-hello"}
    assert "ci (" in packages.content  # the groups whose requests hit them, from real tokens
    assert "developers (" in packages.content
    groups = page.one("section", id="groups").content
    assert "ci" in groups
    assert "developers" in groups
    rules = page.one("section", id="rules").content
    assert "token-farming" in rules
    assert "quarantine-mixed" in rules
    assert "weak-signals" in rules
    campaigns = page.one("section", id="campaigns")
    members = {a.content for a in campaigns.find("a")}
    assert {"fg-farm-a", "fg-farm-b", "fg-farm-c"} <= members
    screenshot(base + "?days=1", shots / "overview.png", tmp_path, height=1250)

    # The decision log, filtered, and its next page.
    page = dom(base + "/log?action=block&package=fg-farm-*", tmp_path)
    table = page.one("table", id="log")
    body_rows = table.one("tbody").find("tr")
    assert body_rows
    assert all(r.find("span", cls="block") for r in body_rows)
    assert all(r.find("a", cls="mono")[0].content.startswith("fg-farm-") for r in body_rows)
    form = page.one("form", cls="filters")
    assert form.one("input", name="package").attrs["value"] == "fg-farm-*"
    selected = [
        o for o in form.one("select", name="action").find("option") if "selected" in o.attrs
    ]
    assert [o.content for o in selected] == ["block"]
    screenshot(base + "/log", shots / "decisions.png", tmp_path, height=1000)
    small = dom(base + "/log?package=fg-farm-a", tmp_path)
    count = len(small.one("table", id="log").one("tbody").find("tr"))
    assert count >= 3

    # A package: each version's verdict, findings and evidence.
    page = dom(base + "/package?name=fg-farm-b", tmp_path)
    assert page.one("h1").content == "fg-farm-b"
    versions = page.one("table", id="versions")
    for version in ("1.0.0", "1.0.1"):
        row = versions.one("tr", data_version=version)
        assert row.find("span", cls="block")
        assert row.find("span", cls="spam")  # the verdict's label
        assert "tarball scanned" in row.content
        signals = {li.attrs["data-signal"] for li in row.find("li") if "data-signal" in li.attrs}
        assert "tea-yaml" in signals
        assert row.find("dl", cls="evidence")
    screenshot(base + "/package?name=fg-farm-b", shots / "package.png", tmp_path, height=1100)

    # The policy in force, with its waiver and when it expires.
    page = dom(base + "/policies", tmp_path)
    policy = page.one("section", data_policy="corp")
    assert [r.attrs["data-rule"] for r in policy.find("tr") if "data-rule" in r.attrs] == [
        "quarantine-mixed",
        "malicious",
        "token-farming",
        "weak-signals",
    ]
    waiver = policy.one("tr", data_waiver="fg-vetted@^1.0.0")
    assert WAIVER_EXPIRES.isoformat() in waiver.content
    assert "expires in 5 days" in waiver.content
    screenshot(base + "/policies", shots / "policies.png", tmp_path, height=800)

    # A hostile name is text, never markup.
    evil = '<img src=x onerror="document.title=1">'
    page = dom(base + "/package?name=" + evil.replace(" ", "%20").replace('"', "%22"), tmp_path)
    assert page.one("h1").content == evil
    assert not page.find("img")
    assert page.find("title")[0].content.endswith("· Floodgate")


def test_non_admins_see_why_in_chromium(
    registry: FakeRegistry, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    token = make_tokens(tmp_path / "cache", ("developers/bob",))["developers/bob"]
    proxy = make_proxy()
    # Logged in (the token as the password), but not an admin: the page says why.
    page = dom(in_url(proxy.url, token) + "/-/dashboard", tmp_path)
    assert page.one("h1").content.startswith("403")
    message = page.one("p", id="message").content
    assert "bob is in group" in message
    assert "admin group (admin)" in message
    assert token not in message
    # Anonymous: the browser is asked to log in (its prompt; the page below it says how).
    refused = proxy.client.get("/-/dashboard")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")


def test_the_registry_page_renders_in_chromium(make_proxy: ProxyFactory, tmp_path: Path) -> None:
    """The hosted packages' events after real publishes, a dist-tag, a deprecation and a
    refused publish: newest first, filtered, linked from the navigation."""
    tokens = make_tokens(tmp_path / "cache", ("admin/alice", "developers/bob"))
    proxy = make_proxy(internal_scopes="@acme", prefetch_scans=0)
    make_activity(proxy.client, tokens["admin/alice"], tokens["developers/bob"])
    base = in_url(proxy.url, tokens["admin/alice"]) + "/-/dashboard"
    shots = tmp_path / "shots"
    shots.mkdir()
    page = dom(base + "/registry", tmp_path)
    assert page.find("title")[0].content == "Registry · Floodgate"
    nav = page.one("nav")
    assert [a.content for a in nav.find("a", cls="current")] == ["Registry"]
    events = page.one("table", id="events").one("tbody").find("tr")
    assert [(r.attrs["data-event"], r.attrs["data-package"]) for r in events] == NEWEST_FIRST
    assert "bob" in events[0].content
    assert "may not publish" in events[0].content
    assert "<b>chunk</b>" in events[1].content  # the deprecation's text, as text
    assert not events[1].find("b")
    screenshot(base + "/registry", shots / "registry.png", tmp_path, height=700)
    page = dom(base + "/registry?package=%40acme%2Fvault&event=publish", tmp_path)
    rows = page.one("table", id="events").one("tbody").find("tr")
    assert [r.attrs["data-package"] for r in rows] == ["@acme/vault"]
    form = page.one("form", cls="filters")
    chosen = [
        o.content
        for o in form.one("select", name="package").find("option")
        if "selected" in o.attrs
    ]
    assert chosen == ["@acme/vault"]
