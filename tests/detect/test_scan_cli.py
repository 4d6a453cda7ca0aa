"""`floodgate scan`: local tarballs, and packages through a real fake registry on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.cli import main
from tests.fakes.packages import FakeVersion, make_tarball
from tests.fakes.registry import FakeRegistry

TEA = (
    b"---\nversion: 1.0.0\n"
    b"codeOwners:\n  - '0x723332A6f259f8457e71a346566466036a5Eb3C8'\nquorum: 1\n"
)
CODE = (
    b"'use strict';\nconst path = require('path');\n"
    + b"module.exports.join = (a, b) => path.join(a, b);\n" * 8
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def tgz(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    manifest = {"name": name, "version": "1.0.0", "main": "index.js"}
    target = tmp_path / f"{name}.tgz"
    target.write_bytes(make_tarball({"package.json": json.dumps(manifest).encode(), **files}))
    return target


def test_scan_tarball_flagged_and_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = str(tmp_path / "cache")
    spam = tgz(tmp_path, "tea-farm-1", {"tea.yaml": TEA, "README.md": b"# tea-farm-1\n"})
    code, out, _ = run(capsys, "scan", "--cache-dir", cache, "--tarball", str(spam))
    assert code == 1
    assert "tea-farm-1@1.0.0: spam" in out
    assert "tea-yaml" in out
    assert "0x723332a6f259f8457e71a346566466036a5eb3c8" in out

    clean = tgz(tmp_path, "path-joiner", {"index.js": CODE, "README.md": b"# joins paths\n" * 20})
    code, out, _ = run(capsys, "scan", "--cache-dir", cache, "--tarball", str(clean), "--json")
    assert code == 0
    (verdict,) = json.loads(out)["verdicts"]
    assert verdict["label"] == "clean"
    assert verdict["name"] == "path-joiner"
    assert verdict["detector_version"]
    assert verdict["tarball_scanned"] is True


def test_scan_hostile_and_broken_tarballs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"this is not a tarball")
    code, out, _ = run(capsys, "scan", "--cache-dir", str(tmp_path), "--tarball", str(junk))
    assert code == 0
    assert "unsafe-tarball" in out
    assert "not gzip" in out
    evil = tgz(tmp_path, "evil", {"../../escape.js": CODE})
    code, out, err = run(capsys, "scan", "--cache-dir", str(tmp_path), "--tarball", str(evil),
                         "--tarball", str(junk))  # fmt: skip
    assert code == 1
    assert "evil@1.0.0: malicious" in out
    assert "scanned 2/2" in err  # progress, plain lines when stderr is not a TTY


def test_scan_needs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scan")
    assert code == 2
    assert "nothing to scan" in err


def test_scan_names_through_upstream(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.add(
        "path-joiner",
        FakeVersion("1.0.0", files={"index.js": CODE}),
        FakeVersion("1.1.0", files={"index.js": CODE + b"// 1.1\n"}),
        FakeVersion("2.0.0", files={"index.js": CODE + b"// 2\n"}),
    )
    registry.add("tea-farm-2", FakeVersion("1.0.0", files={"tea.yaml": TEA, "index.js": b""}))
    base = ["scan", "--upstream", registry.url, "--cache-dir", str(tmp_path), "--json"]

    code, out, _ = run(capsys, *base, "path-joiner@^1.0.0")
    assert code == 0
    got = [(v["version"], v["label"]) for v in json.loads(out)["verdicts"]]
    assert got == [("1.1.0", "clean"), ("1.0.0", "clean")]  # every version the range allows

    code, out, err = run(capsys, *base, "path-joiner", "tea-farm-2@1.0.0")
    assert code == 1
    labels = {v["name"]: v["label"] for v in json.loads(out)["verdicts"]}
    assert labels == {"path-joiner": "clean", "tea-farm-2": "spam"}
    assert json.loads(out)["verdicts"][0]["version"] == "2.0.0"  # latest
    assert registry.requests_for("/tea-farm-2/-/tea-farm-2-1.0.0.tgz")
    assert "scanned 2/2 tea-farm-2@1.0.0" in err


def test_scan_errors_exit_2(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.add("broken-int", FakeVersion("1.0.0"))
    registry.faults[registry.tarball_path("broken-int", "1.0.0")] = "integrity"
    base = ["scan", "--upstream", registry.url, "--cache-dir", str(tmp_path)]
    code, out, _ = run(capsys, *base, "no-such-package", "broken-int", "broken-int@9")
    assert code == 2
    assert "ERR no-such-package" in out
    assert "does not match its integrity" in out
    assert "no version satisfies '9'" in out
