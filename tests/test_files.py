"""`proxy.files`: atomic writes and capped reads, the two disciplines every layer shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.errors import UpstreamBadResponse
from proxy.files import TMP_SUFFIX, Capped, atomic_file, write_atomically


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_atomic_file_writes_through_a_temp_file(tmp_path: Path) -> None:
    final = tmp_path / "deep" / "dir" / "file.json"
    with atomic_file(final) as f:
        f.write(b'{"name":')
        during = files_under(tmp_path)
        f.write(b'"left-pad"}')
    assert final.read_bytes() == b'{"name":"left-pad"}'
    assert files_under(tmp_path) == [final]
    # While writing, only a temp file existed, never a half-written final one.
    assert len(during) == 1
    assert during[0].name.endswith(TMP_SUFFIX)
    assert during[0].parent == final.parent


def test_atomic_file_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "file.json"
    final.write_bytes(b"old")

    def fail_midway() -> None:
        with atomic_file(final) as f:
            f.write(b"half of the new")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fail_midway()
    assert files_under(tmp_path) == [final]
    assert final.read_bytes() == b"old"


def test_write_atomically_returns_the_size(tmp_path: Path) -> None:
    final = tmp_path / "f"
    assert write_atomically(final, b"head\n", b"body") == 9
    assert final.read_bytes() == b"head\nbody"


def too_big(total: int) -> Exception:
    return UpstreamBadResponse(f"over the limit at {total}")


@pytest.mark.parametrize(
    ("chunks", "limit", "outcome"),
    [
        ([b"ab", b"cd"], 4, b"abcd"),  # exactly at the limit is fine
        ([b"ab", b"cde"], 4, "over the limit at 5"),
        ([], 0, b""),
        ([b"x" * 10], 9, "over the limit at 10"),
    ],
)
def test_capped_collects_until_the_limit(chunks: list[bytes], limit: int, outcome: object) -> None:
    capped = Capped(limit, too_big)
    if isinstance(outcome, bytes):
        for c in chunks:
            capped.add(c)
        assert capped.body() == outcome
    else:

        def feed() -> None:
            for c in chunks:
                capped.add(c)

        with pytest.raises(UpstreamBadResponse, match=str(outcome)):
            feed()


def test_capped_refuses_a_declared_length_over_the_limit() -> None:
    capped = Capped(10, too_big)
    capped.check_declared(None)
    capped.check_declared(10)
    with pytest.raises(UpstreamBadResponse, match="at 11"):
        capped.check_declared(11)
