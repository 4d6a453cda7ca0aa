"""A gzip bomb and an archive that lies about a member's size are not served (defect 15)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from proxy.npm.tarball import ProblemKind, TarballLimits, read_tarball
from tests.conftest import ProxyFactory
from tests.fakes.packages import clean
from tests.fakes.registry import FakeRegistry
from tests.faults.hostile import gzip_bomb, size_lie

HOSTILE: list[tuple[str, Callable[[str, str], bytes], ProblemKind]] = [
    ("fg-bomb", gzip_bomb, ProblemKind.BOMB),
    ("fg-size-lie", size_lie, ProblemKind.SIZE_LIE),
]


@pytest.mark.parametrize(("name", "build", "kind"), HOSTILE)
def test_the_reader_names_the_attack(
    name: str, build: Callable[[str, str], bytes], kind: ProblemKind
) -> None:
    facts = read_tarball(build(name, "1.0.0"))
    assert kind in {p.kind for p in facts.problems}
    assert kind.hostile
    assert not facts.complete


def test_a_large_but_honest_member_is_not_hostile() -> None:
    # A member over the per-file cap in an archive that holds all of it (a native binary).
    from tests.fakes.packages import make_tarball

    data = bytes(range(256)) * (600 * 1024 // 256)
    limits = TarballLimits(max_file_bytes=64 * 1024, max_unpacked_bytes=1024 * 1024)
    facts = read_tarball(make_tarball({"package.json": b"{}", "bin.node": data}), limits)
    assert {p.kind for p in facts.problems} == {ProblemKind.FILE_TOO_LARGE}
    # The same member cut off where the data ends: truncated, not a lie about its size.
    whole = make_tarball({"package.json": b"{}", "bin.node": data})
    cut = {p.kind for p in read_tarball(whole[: len(whole) // 2], limits).problems}
    assert ProblemKind.TRUNCATED in cut
    assert not any(k.hostile for k in cut)


@pytest.mark.parametrize(("name", "build", "kind"), HOSTILE)
def test_the_default_policy_refuses_them(
    registry: FakeRegistry,
    make_proxy: ProxyFactory,
    name: str,
    build: Callable[[str, str], bytes],
    kind: ProblemKind,
) -> None:
    registry.add(name, clean("1.0.0"))
    registry.set_tarball(name, "1.0.0", build(name, "1.0.0"))
    proxy = make_proxy(prefetch_scans=0)  # the shipped default policy
    assert proxy.client.get(f"/{name}").status_code == 200
    r = proxy.client.get(f"/{name}/-/{name}-1.0.0.tgz", follow_redirects=True)
    assert r.status_code == 451, r.text
    error = r.json()["error"]
    assert "rule 'malicious'" in error
    assert kind.value.replace("_", " ") in error
