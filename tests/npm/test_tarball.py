"""The safe tarball reader: real-shaped packages read right, hostile ones yield problems."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import time
from pathlib import Path

import pytest

from proxy.npm.tarball import (
    EntryKind,
    ProblemKind,
    TarballLimits,
    read_tarball,
)
from tests.npm.tarballs import build, member, package, zero_bomb

MANIFEST = {
    "name": "left-padder",
    "version": "1.2.3",
    "main": "lib/index",
    "dependencies": {"lodash": "^4.17.21"},
    "scripts": {"postinstall": "node setup.js", "test": "jest"},
    "bin": "cli.js",
}
INDEX = "const _ = require('lodash');\nmodule.exports = (s, n) => _.padStart(s, n);\n"
TEA = (
    "# https://tea.xyz/what-is-this-file\n---\nversion: 1.0.0\n"
    "codeOwners:\n  - '0x723332A6f259f8457e71a346566466036a5Eb3C8'\nquorum: 1\n"
)


def kinds(data: bytes, limits: TarballLimits | None = None) -> set[ProblemKind]:
    facts = read_tarball(data) if limits is None else read_tarball(data, limits)
    return {p.kind for p in facts.problems}


def test_reads_a_packed_package() -> None:
    data = package(
        {"lib/index.js": INDEX, "README.md": "# left-padder\n", "tea.yaml": TEA}, MANIFEST
    )
    facts = read_tarball(data)
    assert facts.complete
    assert not facts.problems
    assert [e.path for e in facts.entries] == [
        "package/package.json",
        "package/lib/index.js",
        "package/README.md",
        "package/tea.yaml",
    ]
    index = facts.entries[1]
    assert index.sha256 == hashlib.sha256(INDEX.encode()).hexdigest()
    assert index.size == len(INDEX)
    assert facts.package_json is not None
    assert facts.package_json["name"] == "left-padder"
    assert facts.entry_point == "package/lib/index.js"  # `main` without its .js
    assert facts.sources["package/lib/index.js"] == INDEX
    assert facts.sources_complete
    assert facts.readme_size == len("# left-padder\n")
    assert facts.install_scripts == {"postinstall": "node setup.js"}
    assert facts.bins == {"left-padder": "cli.js"}
    (tea,) = facts.tea_files
    assert tea.wallets == ("0x723332a6f259f8457e71a346566466036a5eb3c8",)
    assert tea.quorum == 1
    assert tea.layout == "codeOwners"
    assert facts.compressed_size == len(data)


def test_accepts_path_and_file_object(tmp_path: Path) -> None:
    data = package({"index.js": INDEX}, MANIFEST)
    target = tmp_path / "p.tgz"
    target.write_bytes(data)
    assert read_tarball(target).entries == read_tarball(io.BytesIO(data)).entries
    assert read_tarball(str(target)).package_json == MANIFEST


def test_long_names_pax_and_gnu() -> None:
    long = "package/" + "d" * 120 + "/index.js"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        facts = read_tarball(build([member(long, b"x")], fmt=fmt))
        assert [e.path for e in facts.entries] == [long]
        assert not facts.problems


def test_other_root_folder() -> None:
    facts = read_tarball(package({"index.js": INDEX}, MANIFEST, root="node"))
    assert facts.root == "node"
    assert facts.package_json_path == "node/package.json"
    assert facts.relative("node/index.js") == "index.js"


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([member("package/../../etc/cron.d/x", b"boom")], ProblemKind.PATH_TRAVERSAL),
        ([member("/etc/passwd", b"root")], ProblemKind.PATH_TRAVERSAL),
        ([member("package\\..\\..\\win.ini", b"x")], ProblemKind.PATH_TRAVERSAL),
        (
            [member("package/link", type=tarfile.SYMTYPE, linkname="/etc/shadow")],
            ProblemKind.LINK,
        ),
        ([member("package/hard", type=tarfile.LNKTYPE, linkname="package/a")], ProblemKind.LINK),
        ([member("package/tty", type=tarfile.CHRTYPE, devmajor=4, devminor=1)], ProblemKind.DEVICE),
        ([member("package/blk", type=tarfile.BLKTYPE)], ProblemKind.DEVICE),
        ([member("package/pipe", type=tarfile.FIFOTYPE)], ProblemKind.DEVICE),
    ],
)
def test_hostile_members_are_recorded_not_followed(
    members: list[tuple[tarfile.TarInfo, bytes]], expected: ProblemKind
) -> None:
    ok = member("package/package.json", b'{"name": "x", "version": "1.0.0"}')
    facts = read_tarball(build([*members, ok]))
    assert expected in {p.kind for p in facts.problems}
    # recorded, and the reader went on to the next member
    assert facts.package_json == {"name": "x", "version": "1.0.0"}
    if expected is ProblemKind.LINK:
        link = facts.entries[0]
        assert link.kind in (EntryKind.SYMLINK, EntryKind.HARDLINK)
        assert link.target


def test_clean_package_has_no_problem_rows() -> None:
    """Negative row for the table above: nothing is reported for an ordinary package."""
    assert kinds(package({"index.js": INDEX, "lib/a.js": "1"}, MANIFEST)) == set()


def test_not_gzip_and_empty() -> None:
    assert kinds(b"PK\x03\x04 a zip file") == {ProblemKind.NOT_GZIP}
    assert kinds(b"") == {ProblemKind.NOT_GZIP}


def test_truncated_gzip_and_tar() -> None:
    data = package({"index.js": INDEX * 200}, MANIFEST)
    assert ProblemKind.TRUNCATED in kinds(data[: len(data) // 2])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("package/big.js")
        info.size = 10_000
        tf.addfile(info, io.BytesIO(b"x" * 10_000))
    cut = gzip.compress(raw.getvalue()[:3000])  # valid gzip, tar member cut short
    facts = read_tarball(cut)
    assert ProblemKind.TRUNCATED in {p.kind for p in facts.problems}
    assert not facts.complete


def test_corrupt_gzip_and_bad_header() -> None:
    data = bytearray(package({"index.js": INDEX * 50}, MANIFEST))
    data[40:60] = b"\xff" * 20
    assert kinds(bytes(data)) & {ProblemKind.BAD_GZIP, ProblemKind.TRUNCATED, ProblemKind.BAD_TAR}
    garbage = gzip.compress(b"not a tar header at all".ljust(1024, b"?"))
    assert kinds(garbage) == {ProblemKind.BAD_TAR}


def test_entry_cap() -> None:
    members = [member(f"package/f{i}.js", b"") for i in range(50)]
    facts = read_tarball(build(members), TarballLimits(max_entries=10))
    assert {p.kind for p in facts.problems} == {ProblemKind.TOO_MANY_ENTRIES}
    assert len(facts.entries) == 10
    assert not facts.complete


def test_hundred_thousand_entries_are_bounded() -> None:
    members = [member(f"package/f{i}", b"") for i in range(100_000)]
    data = build(members, fmt=tarfile.USTAR_FORMAT, level=1)
    started = time.monotonic()
    facts = read_tarball(data)
    assert time.monotonic() - started < 10
    assert ProblemKind.TOO_MANY_ENTRIES in {p.kind for p in facts.problems}
    assert len(facts.entries) == TarballLimits().max_entries


def test_gzip_bomb_stops_on_ratio() -> None:
    data = zero_bomb(64 << 20, members=4)  # 64 MB of zeros in ~64 KB
    started = time.monotonic()
    facts = read_tarball(data, TarballLimits(ratio_floor=1 << 20, bomb_ratio=1 << 30))
    assert time.monotonic() - started < 5
    assert {p.kind for p in facts.problems} == {ProblemKind.RATIO}
    # Past the bomb ratio (zeros inflate ~1000x) the same archive is a compression bomb.
    bomb = read_tarball(data, TarballLimits(ratio_floor=1 << 20))
    assert {p.kind for p in bomb.problems} == {ProblemKind.BOMB}
    assert ProblemKind.BOMB.hostile
    assert facts.unpacked_size < 8 << 20  # at most MAX_RATIO x one read chunk


def test_declared_huge_member_of_zeros_trips_the_ratio_cap() -> None:
    # An oversized member is skipped through the decompressor: zeros trip the ratio cap long
    # before the gigabyte is unpacked.
    data = zero_bomb(1 << 30)  # one member declaring 1 GB
    facts = read_tarball(data)
    assert {p.kind for p in facts.problems} == {
        ProblemKind.FILE_TOO_LARGE,
        ProblemKind.BOMB,
    }
    assert facts.unpacked_size < 16 << 20


def test_oversized_file_is_skipped_and_the_rest_still_read() -> None:
    # Native binaries over the per-file cap (@next/swc-*) are legitimate: skip, keep reading.
    data = package({"big.node": b"\x7fELF" + bytes(range(256)) * 4096, "index.js": "x" * 300})
    facts = read_tarball(data, TarballLimits(max_file_bytes=100_000))
    assert [p.kind for p in facts.problems] == [ProblemKind.FILE_TOO_LARGE]
    assert {e.path for e in facts.files} == {"package/big.node", "package/index.js"}
    index = next(e for e in facts.files if e.path == "package/index.js")
    assert index.sha256 == hashlib.sha256(b"x" * 300).hexdigest()


def test_total_size_and_time_caps() -> None:
    data = package({f"f{i}.js": "a" * 5000 for i in range(20)}, MANIFEST)
    assert ProblemKind.TOO_LARGE in kinds(data, TarballLimits(max_unpacked_bytes=20_000))
    assert ProblemKind.TIMEOUT in kinds(data, TarballLimits(max_seconds=0.0))


def test_large_sources_are_not_kept_and_mark_sources_incomplete() -> None:
    facts = read_tarball(package({"index.js": "x" * 70_000}, MANIFEST))
    assert facts.sources == {}
    assert not facts.sources_complete
    assert facts.files[1].size == 70_000


def test_malformed_package_json_is_unknown() -> None:
    data = build([member("package/package.json", b"{not json"), member("package/a.js", b"1")])
    facts = read_tarball(data)
    assert facts.package_json is None
    assert not facts.problems


def test_node_tar_times_in_the_prefix_field_are_not_part_of_the_name() -> None:
    # node-tar (which packs the @types/* tarballs, rooted at `node/`) writes atime and ctime
    # into the tail of the ustar prefix field after a NUL: the name is still `node/...`.
    info = tarfile.TarInfo("node/index.d.ts")
    info.size = 5
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[476:500] = b"15270440050\x0015270440050\x00"
    header[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    header[148:156] = b"%06o\x00 " % sum(header)
    raw = bytes(header) + b"hello".ljust(512, b"\0") + bytes(1024)
    facts = read_tarball(gzip.compress(raw))
    assert [e.path for e in facts.entries] == ["node/index.d.ts"]
    assert facts.problems == ()
    assert facts.root == "node"


def test_vue_and_svelte_sources_are_kept_for_the_code_signals() -> None:
    app = "<template><HelloWorld msg='Welcome to Your Vue.js App'/></template>\n"
    facts = read_tarball(
        package({"src/App.vue": app, "src/Card.svelte": "<p>x</p>\n", "logo.png": "png"}, MANIFEST)
    )
    assert facts.sources["package/src/App.vue"] == app
    assert "package/src/Card.svelte" in facts.sources
    assert "package/logo.png" not in facts.sources


@pytest.mark.parametrize(
    ("exports", "entry"),
    [
        ("./dist/index.js", "package/dist/index.js"),
        (
            {".": {"import": "./dist/index.mjs", "require": "./dist/index.cjs"}},
            "package/dist/index.mjs",
        ),
        (
            {"import": {"types": "./dist/index.d.ts", "default": "./dist/index.mjs"}},
            "package/dist/index.mjs",
        ),
        ({".": [{"node": "./dist/index.cjs"}, "./dist/index.cjs"]}, "package/dist/index.cjs"),
        ({"./feature": "./dist/feature.js"}, None),  # subpaths only
    ],
)
def test_entry_point_follows_conditional_exports(exports: object, entry: str | None) -> None:
    manifest = {"name": "esm-only", "version": "1.0.0", "exports": exports}
    files = {
        "dist/index.js": "export {};\n",
        "dist/index.mjs": "export const a = 1;\n",
        "dist/index.cjs": "exports.a = 1;\n",
        "dist/index.d.ts": "export declare const a: 1;\n",
        "dist/feature.js": "export {};\n",
    }
    assert read_tarball(package(files, manifest)).entry_point == entry
