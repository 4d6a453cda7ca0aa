"""Packages Floodgate hosts, published and installed with the real clients through a running
`floodgate serve` (issue 14).

One Floodgate and one fake upstream for the module. The internal scope `@fg-int` is hosted (no
internal_upstream); the group `publishers` may publish to it, `readers` only read (every token
may read: the default), and tokens exist, so anonymous callers are refused. Tokens are made with
`floodgate token create`, as an administrator would, and each client is given its token the way
its users do (tests/e2e/publishing.py). The tarball cache is 1 MB, so installing a few proxied
packages evicts proxied tarballs; the hosted ones live elsewhere and stay.

What each client prints of a refused publish is asserted: npm and pnpm (pnpm 9 publishes by
running npm) print the `error` and the `npm-notice`; yarn 4 prints the `error` (but for a 401
only "Invalid authentication"); bun prints the `npm-notice` ("note: ...") and the `error`.
Without a token every client refuses by itself, before asking Floodgate.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from proxy.settings import load_settings
from proxy.storage.backends import token_store
from tests.e2e.clients import CLIENTS, NODE, Client, Sandbox
from tests.e2e.npm import Floodgate, floodgate
from tests.e2e.publishing import consumer, frozen_install, package, publish, published
from tests.fakes.packages import HELLO_JS, REAL_JS, TEA_YAML, FakeVersion, clean, integrity_of
from tests.fakes.registry import FakeRegistry, running_registry

pytestmark = pytest.mark.e2e

SCOPE = "@fg-int"
KEPT = "fg-int-kept"  # an internal name outside the scope
PUBLISHING = ["npm", "pnpm", "yarn4", "bun"]
CACHE_MB = 1  # tarball_cache_mb: a few proxied tarballs fill it
BULK = 4  # proxied packages of BULK_BYTES each: together well over the cache
BULK_BYTES = 400 * 1024
MAY_PUBLISH = "the groups that may: admin, publishers (setting internal_publishers)"
FARMING = "Floodgate refused to publish {name}@1.0.0 (policy 'default', rule 'token-farming')"
TEA_REASON = "the package ships a tea.xyz registration file (tea.yaml) naming wallet"


def bulk(version: str, seed: int) -> FakeVersion:
    """A proxied package whose tarball is BULK_BYTES of incompressible data beside real code."""
    blocks = (hashlib.sha512(f"{seed}-{i}".encode()).digest() for i in range(BULK_BYTES // 64))
    return FakeVersion(version, files={"index.js": REAL_JS, "data.bin": b"".join(blocks)})


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRegistry]:
    with running_registry() as (registry, _server):
        registry.add("fg-clean", clean("1.0.0"))
        for i in range(BULK):
            registry.add(f"fg-bulk-{i}", bulk("1.0.0", i))
        yield registry


@dataclass(frozen=True)
class Org:
    """The running Floodgate and the tokens its administrator made."""

    gate: Floodgate
    cache: Path
    admin: str
    publisher: str
    reader: str

    @property
    def url(self) -> str:
        return self.gate.url

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token or self.admin}"}
        return httpx.get(self.url + path, headers=headers, timeout=30)


def token_create(cache: Path, group: str, name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "token", "create", "--group", group, "--name", name,
         "--cache-dir", str(cache)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="module")
def org(upstream: FakeRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    folder = tmp_path_factory.mktemp("floodgate")
    cache = folder / "floodgate-cache"
    admin = token_create(cache, "admin", "root")
    publisher = token_create(cache, "publishers", "alice")
    reader = token_create(cache, "readers", "rita")
    args = (
        "--internal-scopes", SCOPE, "--internal-names", KEPT,
        "--internal-publishers", f"{SCOPE}=publishers,{KEPT}=publishers",
        "--tarball-cache-mb", str(CACHE_MB), "--tarball-memory-mb", "0",
    )  # fmt: skip
    with floodgate(upstream.url, folder, *args) as gate:
        yield Org(gate, cache, admin, publisher, reader)


def require(name: str) -> Client:
    client = CLIENTS[name]
    client.require()
    return client


def module_js(marker: str, dependency: str | None = None) -> bytes:
    """A small real module exporting `marker` (and `dependency`, required, as `dep`)."""
    code = REAL_JS + f"module.exports.marker = {marker!r};\n".encode()
    if dependency is not None:
        code += f"module.exports.dep = require({dependency!r});\n".encode()
    return code


def load(box: Sandbox, name: str) -> str:
    """Run node in the project: require `name` as an application would; its marker (and that
    its dependency resolved, where it has one)."""
    assert NODE is not None
    script = (
        f"const m = require({name!r});"
        "if (m.dep !== undefined && typeof m.dep.pad !== 'function') process.exit(3);"
        "console.log(m.marker)"
    )
    done = subprocess.run(
        [NODE, "-e", script], cwd=box.project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def publish_with(
    client: Client,
    folder: Path,
    org: Org,
    name: str,
    version: str,
    *extra: str,
    deps: dict[str, str] | None = None,
) -> str:
    """Publish `name@version` with `client` as a publisher; return the client's output."""
    manifest: dict[str, object] = {"name": name, "version": version, "description": name}
    if deps:
        manifest["dependencies"] = deps
    files = {"index.js": module_js(f"{name}@{version}", next(iter(deps or {}), None))}
    box = package(client, folder, org.url, org.publisher, manifest, files)
    run = publish(box, *extra)
    assert published(box, run, name, version), run.output
    return run.output


def encoded(name: str) -> str:
    """The path the clients PUT a scoped package to."""
    return "/" + name.replace("/", "%2f")


@pytest.mark.parametrize("name", PUBLISHING)
def test_publish_with_each_client_then_install_it(name: str, org: Org, tmp_path: Path) -> None:
    client = require(name)
    package_name = f"{SCOPE}/by-{name}"
    publish_with(client, tmp_path / "pub", org, package_name, "1.0.0", deps={"fg-clean": "^1.0.0"})

    doc = org.get(encoded(package_name), org.reader).json()
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    dist = doc["versions"]["1.0.0"]["dist"]
    assert dist["tarball"].startswith(org.url + "/")
    tarball = org.get(dist["tarball"].removeprefix(org.url), org.reader).content
    assert dist["integrity"] == integrity_of(tarball)  # computed by Floodgate, checked
    assert dist["shasum"] == hashlib.sha1(tarball).hexdigest()

    box = consumer(client, tmp_path / "use", org.url, org.reader, {package_name: "^1.0.0"}, SCOPE)
    box.install()
    assert box.installed(package_name) == "1.0.0"
    # It runs, and requires its proxied dependency (fg-clean), which installed beside it.
    assert load(box, package_name) == f"{package_name}@1.0.0"


# What each client prints when it has no token for the registry: every one of them refuses
# before sending anything.
NO_TOKEN = {
    "npm": "This command requires you to be logged in",
    "pnpm": "This command requires you to be logged in",  # pnpm 9 publishes with npm
    "yarn4": "No authentication configured for request",
    "bun": "missing authentication",
}
# What each client prints of Floodgate's 401 for a token it does not know: npm (and so pnpm)
# and bun print the npm-notice, which says how to get a token; yarn 4 only its own words.
UNKNOWN_TOKEN = {
    "npm": "Floodgate does not know this token",
    "pnpm": "Floodgate does not know this token",
    "yarn4": "Invalid authentication (as an unknown user)",
    "bun": "Floodgate does not know this token",
}


@pytest.mark.parametrize("name", PUBLISHING)
def test_refused_publishes_say_why_in_each_client(
    name: str, org: Org, upstream: FakeRegistry, tmp_path: Path
) -> None:
    client = require(name)
    refused = f"{SCOPE}/refused-{name}"
    manifest = {"name": refused, "version": "1.0.0"}
    files = {"index.js": module_js(refused)}
    boxes = {
        case: package(client, tmp_path / case, org.url, token, manifest, files)
        for case, token in (("anonymous", None), ("reader", org.reader))
    }
    # A token Floodgate does not know, sent to a Floodgate of its own: a client sends it
    # twice (npm and pnpm GET the packument first, yarn 4 asks /-/whoami after the 401), and
    # after 5 failures from one address Floodgate answers 429 for a while, so the module's
    # Floodgate would refuse the next client's token with a 429 instead.
    # A farmed package (a tea.yaml wallet beside a hello-world entry point) is refused by the
    # shipped default policy, and every client prints the reason.
    farmed = f"{SCOPE}/farm-{name}"
    boxes["farm"] = package(
        client, tmp_path / "farm", org.url, org.publisher,
        {"name": farmed, "version": "1.0.0"}, {"index.js": HELLO_JS, "tea.yaml": TEA_YAML},
    )  # fmt: skip
    (tmp_path / "stranger").mkdir()
    settings = load_settings({"cache_dir": str(tmp_path / "stranger" / "floodgate-cache")}, env={})
    with token_store(settings) as tokens:  # tokens are in use there
        tokens.create("publishers", "someone")
    with floodgate(upstream.url, tmp_path / "stranger", "--internal-scopes", SCOPE) as stranger:
        boxes["unknown"] = package(
            client, tmp_path / "unknown", stranger.url, "fg_not-a-token-floodgate-made",
            manifest, files,
        )  # fmt: skip
        with ThreadPoolExecutor(len(boxes)) as pool:  # independent: run them side by side
            runs = dict(zip(boxes, pool.map(publish, boxes.values()), strict=True))
    for run in runs.values():
        assert run.returncode != 0, run.output

    said = {case: run.output for case, run in runs.items()}
    assert NO_TOKEN[name] in said["anonymous"], said["anonymous"]
    assert UNKNOWN_TOKEN[name] in said["unknown"], said["unknown"]
    if name != "yarn4":
        assert "floodgate token create" in said["unknown"], said["unknown"]
    # 403: the reason names the groups that may publish, in every client.
    assert f"group 'readers' may not publish {refused}; {MAY_PUBLISH}" in said["reader"], said
    assert FARMING.format(name=farmed) in said["farm"], said["farm"]
    assert TEA_REASON in said["farm"], said["farm"]

    for package_name in (refused, farmed):
        assert org.get(encoded(package_name)).status_code == 404  # nothing stored
    # Of the three, only the request with a token reached this Floodgate (403).
    assert org.gate.logged(f"PUT /{refused} 403")
    log = org.gate.log().splitlines()
    puts = [line for line in log if "floodgate.access" in line and f"PUT /{refused} " in line]
    assert [line.split(f"PUT /{refused} ")[1][:3] for line in puts] == ["403"]
    assert "auth=refused" in stranger.log()


def test_an_anonymous_publish_is_told_how_to_get_a_token(org: Org) -> None:
    """No client sends one (each refuses first, above); Floodgate's answer to a request that
    does: 401, with how to get a token, and nothing stored."""
    body = {"name": f"{SCOPE}/anonymous", "versions": {}, "_attachments": {}}
    answer = httpx.put(org.url + encoded(f"{SCOPE}/anonymous"), json=body, timeout=30)
    assert answer.status_code == 401
    assert "floodgate token create" in answer.json()["error"]
    assert "floodgate token create" in answer.headers["npm-notice"]
    assert answer.headers["www-authenticate"]


@pytest.fixture(scope="module")
def tagged(org: Org, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`@fg-int/tagged`: 1.0.0 (latest), 2.0.0-beta.1 (beta); 1.0.0 deprecated with npm."""
    npm = require("npm")
    name = f"{SCOPE}/tagged"
    folder = tmp_path_factory.mktemp("tagged")
    out = publish_with(npm, folder / "1", org, name, "1.0.0")
    assert "with tag latest" in out
    out = publish_with(npm, folder / "2", org, name, "2.0.0-beta.1", "--tag", "beta")
    assert "with tag beta" in out
    box = consumer(npm, folder / "maintainer", org.url, org.publisher, {})
    box.run(["deprecate", f"{name}@1.0.0", DEPRECATION])
    return name


DEPRECATION = "1.x leaks file handles: use 2.x"


def test_dist_tags_with_npm(org: Org, tagged: str, tmp_path: Path) -> None:
    npm = require("npm")
    maintainer = consumer(npm, tmp_path / "maintainer", org.url, org.publisher, {})
    listed = maintainer.run(["dist-tag", "ls", tagged]).output
    assert "beta: 2.0.0-beta.1" in listed
    assert "latest: 1.0.0" in listed
    maintainer.run(["dist-tag", "add", f"{tagged}@1.0.0", "stable"])
    # `npm access` questions are answered from the settings (changes are refused).
    status = maintainer.run(["access", "get", "status", tagged]).output
    assert f"{tagged}: private" in status
    who = maintainer.run(["access", "list", "collaborators", tagged]).output
    assert "publishers: read-write" in who
    assert "*: read-only" in who

    user = consumer(npm, tmp_path / "beta", org.url, org.reader, {tagged: "beta"})
    user.install()
    assert user.installed(tagged) == "2.0.0-beta.1"

    maintainer.run(["dist-tag", "rm", tagged, "beta"])
    tags = org.get(f"/-/package/{encoded(tagged)[1:]}/dist-tags").json()
    assert tags == {"latest": "1.0.0", "stable": "1.0.0"}
    user = consumer(npm, tmp_path / "gone-tag", org.url, org.reader, {tagged: "beta"})
    run = user.install(check=False)
    assert run.returncode != 0
    assert "ETARGET" in run.output, run.output

    # A readers token may install but not change tags: 403 naming who may.
    reader = consumer(npm, tmp_path / "reader", org.url, org.reader, {})
    run = reader.run(["dist-tag", "add", f"{tagged}@1.0.0", "mine"], check=False)
    assert run.returncode != 0
    assert f"group 'readers' may not change the dist-tags of {tagged}" in run.output


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_each_client_installs_a_hosted_package_and_sees_its_deprecation(
    name: str, org: Org, tagged: str, tmp_path: Path
) -> None:
    """Every client, yarn 1 too, from a fresh project and then from its lockfile alone."""
    client = require(name)
    box = consumer(client, tmp_path, org.url, org.reader, {tagged: "^1.0.0"}, SCOPE)
    run = box.install()
    assert load(box, tagged) == f"{tagged}@1.0.0"
    if name == "yarn4":  # it prints no deprecation at install (the README's client table)
        assert DEPRECATION not in run.output
    else:
        assert f"{tagged}@1.0.0: {DEPRECATION}" in run.output, run.output
    frozen_install(box, org.reader)  # the lockfile's tarball URL, an empty client cache
    assert load(box, tagged) == f"{tagged}@1.0.0"


def test_dist_tags_with_yarn4(org: Org, tagged: str, tmp_path: Path) -> None:
    yarn = require("yarn4")
    box = consumer(yarn, tmp_path, org.url, org.publisher, {})
    box.run(["install"])
    box.run(["npm", "tag", "add", f"{tagged}@1.0.0", "lts"])
    listed = box.run(["npm", "tag", "list", tagged]).output
    assert f"{tagged}@lts → 1.0.0" in listed, listed
    box.run(["npm", "tag", "remove", tagged, "lts"])
    listed = box.run(["npm", "tag", "list", tagged]).output
    assert f"{tagged}@lts" not in listed, listed
    assert f"{tagged}@latest → 1.0.0" in listed, listed
    tags = org.get(f"/-/package/{encoded(tagged)[1:]}/dist-tags").json()
    assert "lts" not in tags
    assert tags["latest"] == "1.0.0"


def test_unpublish_and_republish_with_npm(org: Org, tmp_path: Path) -> None:
    npm = require("npm")
    name = f"{SCOPE}/gone"
    for version in ("1.0.0", "1.1.0"):
        publish_with(npm, tmp_path / version, org, name, version)
    maintainer = consumer(npm, tmp_path / "maintainer", org.url, org.publisher, {})

    run = maintainer.run(["unpublish", f"{name}@1.1.0"])
    assert f"- {name}@1.1.0" in run.output
    doc = org.get(encoded(name)).json()
    assert sorted(doc["versions"]) == ["1.0.0"]
    assert doc["dist-tags"] == {"latest": "1.0.0"}

    run = maintainer.run(["unpublish", name, "--force"])
    assert f"- {name}" in run.output
    assert org.get(encoded(name)).status_code == 404
    user = consumer(npm, tmp_path / "user", org.url, org.reader, {name: "^1.0.0"})
    run = user.install(check=False)
    assert run.returncode != 0
    assert "404" in run.output, run.output
    assert "was unpublished" in run.output, run.output

    # A version, once used, is never published again, though unpublished: 403 in npm's words.
    box = package(
        npm, tmp_path / "again", org.url, org.publisher,
        {"name": name, "version": "1.1.0"}, {"index.js": module_js("again")},
    )  # fmt: skip
    run = publish(box)
    assert run.returncode != 0
    assert "403" in run.output, run.output
    assert "You cannot publish over the previously published versions: 1.1.0" in run.output
    assert org.get(encoded(name)).status_code == 404  # nothing came back


def test_evicting_proxied_tarballs_never_removes_a_hosted_one(
    org: Org, upstream: FakeRegistry, tmp_path: Path
) -> None:
    npm = require("npm")
    kept = KEPT  # an unscoped internal name (internal_names)
    publish_with(npm, tmp_path / "pub", org, kept, "1.0.0")
    first = consumer(npm, tmp_path / "first", org.url, org.reader, {kept: "1.0.0"})
    first.install()  # its tarball served once, like any other
    bulky = {f"fg-bulk-{i}": "1.0.0" for i in range(BULK)}
    consumer(npm, tmp_path / "bulk", org.url, org.reader, bulky).install()

    tarballs = org.cache / "tarballs"
    on_disk = [f for f in tarballs.rglob("*") if f.is_file()]
    # The proxied ones went over the cap: the least recently used were evicted.
    assert sum(f.stat().st_size for f in on_disk) <= CACHE_MB * 1024 * 1024
    assert len([f for f in on_disk if f.stat().st_size > BULK_BYTES // 2]) < BULK
    hosted = org.cache / "hosted" / "registry.sqlite3"
    assert hosted.is_file()
    assert tarballs not in hosted.parents

    again = consumer(npm, tmp_path / "again", org.url, org.reader, {kept: "1.0.0"})
    again.install()  # a fresh client cache: the tarball comes from Floodgate
    assert load(again, kept) == f"{kept}@1.0.0"


def test_internal_names_are_never_asked_of_the_upstream(
    org: Org, upstream: FakeRegistry, tmp_path: Path
) -> None:
    """Last in the module: every request the upstream saw, from every test above."""
    npm = require("npm")
    missing = f"{SCOPE}/never-published"
    box = consumer(npm, tmp_path, org.url, org.reader, {missing: "^1.0.0", "fg-clean": "^1"})
    run = box.install(check=False)
    assert run.returncode != 0
    assert "404" in run.output
    assert f"{missing} is an internal package and has not been published here" in run.output
    assert upstream.requests_for("/fg-clean")  # proxied names are asked (here or before)
    internal = SCOPE.removeprefix("@")  # fg-int: in the scope and in KEPT
    assert [seen.path for seen in upstream.seen if internal in seen.path.lower()] == []
