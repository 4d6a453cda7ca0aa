"""Platform builds (`os`/`cpu`/`libc`) ship native binaries: little or no JavaScript is no sign
of a package without function (sharp's `@img/sharp-libvips-linux-x64` shape)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts
from proxy.detect.model import Label
from proxy.npm.packument import parse
from proxy.npm.tarball import read_tarball
from tests.fakes.packages import FakeVersion, build_version

NAME = "@img/sharp-libvips-linux-x64"
FILES = {
    "lib/index.js": b"module.exports = __dirname;\n",  # 28 bytes of JavaScript
    "lib/libvips-cpp.so.8.17.3": b"\x7fELF" + bytes(range(256)) * 64,
    "versions.json": b'{"vips": "8.17.3"}\n',
}


def assess(extra: dict[str, Any]) -> Any:
    entry, tgz = build_version(NAME, FakeVersion("1.3.4", files=FILES, extra=extra))
    doc = {"name": NAME, "dist-tags": {"latest": "1.3.4"}, "versions": {"1.3.4": entry}}
    facts = PackageFacts.from_packument(parse(orjson.dumps(doc), NAME))
    return Detector().assess(facts, "1.3.4", read_tarball(tgz), record=False)


@pytest.mark.parametrize(
    "extra",
    [
        {"os": ["linux"], "cpu": ["x64"], "libc": ["glibc"]},
        {"cpu": ["arm64"]},
        {"os": ["darwin"]},
    ],
)
def test_a_platform_build_is_not_judged_by_its_javascript(extra: dict[str, Any]) -> None:
    verdict = assess(extra)
    assert verdict.label is Label.CLEAN, verdict.reasons
    assert not {"trivial-code", "learned-score", "script-entry"} & verdict.signal_ids


def test_the_same_files_without_a_platform_are_judged() -> None:
    # The control: no os/cpu, so the function signals do look (and find little code).
    verdict = assess({})
    assert "trivial-code" in verdict.signal_ids
