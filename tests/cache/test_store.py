"""On-disk stores: the LRU file index, atomic writes, verified tarball fills, saved packuments."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from proxy.cache.store import (
    MEMORY_ITEM_MAX,
    CachedTarball,
    FileIndex,
    PackumentStore,
    Sink,
    TarballStore,
)
from proxy.errors import UpstreamBadResponse
from proxy.files import TMP_SUFFIX
from proxy.npm.integrity import Digest, expected_digest
from tests.fakes.packages import integrity_of, make_tarball
from tests.npm.packuments import packument, raw

MB = 1024 * 1024
SMALL = make_tarball({"package.json": b'{"name":"left-pad","version":"1.3.0"}'})
# Incompressible and over the in-memory item limit: served from disk by path.
BIG = make_tarball({"blob.bin": random.Random(7).randbytes(MEMORY_ITEM_MAX + 64 * 1024)})


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def write(path: Path, size: int, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


# -- FileIndex ---------------------------------------------------------------------------------


def test_scan_removes_temp_leftovers_and_indexes_the_rest(tmp_path: Path) -> None:
    kept = [
        write(tmp_path / "sha512" / "ab" / "abcd", 100, 1000),
        write(tmp_path / "sha512" / "cd" / "cdef", 50, 2000),
    ]
    leftovers = [
        write(tmp_path / "sha512" / "ab" / f".x1y2{TMP_SUFFIX}", 70, 1500),
        write(tmp_path / f".top{TMP_SUFFIX}", 10, 1500),
    ]
    index = FileIndex(tmp_path, max_bytes=10_000)
    index.scan()
    assert files_under(tmp_path) == sorted(kept)
    assert not any(p.exists() for p in leftovers)
    assert (len(index), index.total) == (2, 150)


def test_scan_creates_the_root_and_evicts_oldest_past_the_cap(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    old = write(root / "a" / "old", 400, 1000)
    mid = write(root / "b" / "mid", 400, 2000)
    new = write(root / "a" / "new", 400, 3000)
    index = FileIndex(root, max_bytes=900)
    index.scan()
    assert files_under(root) == sorted([mid, new])
    assert not old.exists()
    assert index.total == 800
    FileIndex(tmp_path / "fresh", max_bytes=1).scan()
    assert (tmp_path / "fresh").is_dir()


@pytest.mark.parametrize(
    ("sizes", "touch", "survivors"),
    [
        ([300, 300, 300], None, [0, 1, 2]),  # 900 <= 1000
        ([300, 300, 300, 300], None, [1, 2, 3]),
        ([300, 300, 300, 300], 0, [0, 2, 3]),  # the touched one is recent again
        ([600, 300, 300], None, [1, 2]),
        ([300, 300, 1500], None, [2]),  # bigger than the cap: kept, everything else goes
        ([100, 1001], None, [1]),
    ],
)
def test_add_evicts_least_recently_used_never_the_new_file(
    tmp_path: Path, sizes: list[int], touch: int | None, survivors: list[int]
) -> None:
    index = FileIndex(tmp_path, max_bytes=1000)
    paths = [tmp_path / f"f{i}" for i in range(len(sizes))]
    for i, (path, size) in enumerate(zip(paths, sizes, strict=True)):
        write(path, size, 1000 + i)
        index.add(path, size)
        if touch is not None and i == len(sizes) - 2:
            assert index.touch(paths[touch])
    assert files_under(tmp_path) == sorted(paths[i] for i in survivors)
    assert index.total == sum(sizes[i] for i in survivors)
    assert len(index) == len(survivors)


def test_a_pinned_file_is_not_evicted_until_its_last_pin_goes(tmp_path: Path) -> None:
    """A request holds its tarball's file (fetch, scan, send) while others fill the cache."""
    index = FileIndex(tmp_path, max_bytes=1000)
    first, held, later = (write(tmp_path / n, 600, 1000 + i) for i, n in enumerate("abc"))
    index.add(first, 600)
    with index.pinned(held):  # pinned before it is even added, as a request's download is
        index.add(held, 600)  # over the cap: the unpinned least recent goes
        assert files_under(tmp_path) == [held, later]
        with index.pinned(held):  # two requests for it
            index.add(later, 600)  # still over, but the only other file is pinned
        assert files_under(tmp_path) == [held, later]
        assert index.total == 1200
    assert files_under(tmp_path) == [later]  # the last pin went: back under the cap
    assert index.total == 600


def test_re_adding_a_path_replaces_its_size(tmp_path: Path) -> None:
    index = FileIndex(tmp_path, max_bytes=1000)
    path = write(tmp_path / "f", 300, 1000)
    index.add(path, 300)
    index.add(path, 500)
    assert (len(index), index.total) == (1, 500)
    index.forget(path)
    index.forget(path)
    assert (len(index), index.total) == (0, 0)
    assert not index.touch(path)


# -- TarballStore ------------------------------------------------------------------------------


def chunks_of(data: bytes, size: int = 16 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def serving(data: bytes, fail_after: int | None = None) -> Callable[[Sink], Awaitable[int]]:
    """A download that feeds `data` in chunks, optionally raising after `fail_after` chunks."""

    async def download(sink: Sink) -> int:
        for n, chunk in enumerate(chunks_of(data)):
            if fail_after is not None and n == fail_after:
                raise ConnectionResetError("upstream dropped the connection")
            sink(chunk)
            await anyio.lowlevel.checkpoint()
        return len(data)

    return download


def digest_of(data: bytes) -> Digest:
    d = expected_digest(integrity_of(data), None)
    assert d is not None
    return d


def store(tmp_path: Path, memory_bytes: int = 8 * MB) -> TarballStore:
    s = TarballStore(tmp_path / "tarballs", max_bytes=64 * MB, memory_bytes=memory_bytes)
    s.index.scan()
    return s


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("data", "memory_bytes", "in_memory"),
    [
        pytest.param(SMALL, 8 * MB, True, id="small-kept-in-memory"),
        pytest.param(BIG, 8 * MB, False, id="big-served-by-path"),  # over MEMORY_ITEM_MAX
        pytest.param(SMALL, 0, False, id="no-memory-tier"),
    ],
)
async def test_fill_verifies_stores_and_serves(
    tmp_path: Path, data: bytes, memory_bytes: int, in_memory: bool
) -> None:
    s = store(tmp_path, memory_bytes)
    digest = digest_of(data)
    got = await s.fill(digest.key, digest, serving(data), "tarball left-pad-1.3.0.tgz")
    final = s.path_for(digest.key)
    assert files_under(tmp_path) == [final]
    assert final.read_bytes() == data
    assert final.parent.parent.name == "sha512"
    assert got.size == len(data)
    if in_memory:
        assert (got.data, got.path) == (data, None)
    else:
        assert (got.data, got.path) == (None, final)
    again = s.get(digest.key)
    assert again is not None
    assert again.size == len(data)
    assert again.path == final  # asked for once more: from the file
    hot = s.get(digest.key)  # and again: a small one is read into memory
    assert hot is not None
    if in_memory:
        assert hot.data == data
    else:
        assert hot.path == final
    assert s.index.total == len(data)


@pytest.mark.anyio
async def test_memory_holds_the_tarballs_asked_for_again(tmp_path: Path) -> None:
    """A fresh tarball is served from the bytes just downloaded, then from its file, and kept
    in memory only when asked for after that: a background scan's download and one install
    asking for it do not make it hot."""
    s = store(tmp_path)
    once, twice, thrice = SMALL, SMALL + b"\0", SMALL + b"\0\0"
    for data in (once, twice, thrice):
        digest = digest_of(data)
        assert (await s.fill(digest.key, digest, serving(data), "t.tgz")).data == data
    first = s.get(digest_of(twice).key)
    assert first is not None
    assert first.path == s.path_for(digest_of(twice).key)  # once: from the file
    for _ in range(2):
        s.get(digest_of(thrice).key)  # twice: the second is kept in memory
    for data in (once, twice, thrice):
        s.path_for(digest_of(data).key).unlink()  # gone behind Floodgate's back
    assert s.get(digest_of(once).key) is None
    assert s.get(digest_of(twice).key) is None
    again = s.get(digest_of(thrice).key)
    assert again is not None
    assert again.data == thrice


@pytest.mark.anyio
@pytest.mark.parametrize(
    "expected",
    [
        pytest.param(digest_of(SMALL + b"\0"), id="sha512"),
        pytest.param(
            expected_digest(None, "da39a3ee5e6b4b0d3255bfef95601890afd80709"), id="sha1-of-nothing"
        ),
    ],
)
async def test_fill_with_wrong_integrity_keeps_nothing(tmp_path: Path, expected: Digest) -> None:
    s = store(tmp_path)
    with pytest.raises(UpstreamBadResponse) as info:
        await s.fill("sha512-" + "ab" * 64, expected, serving(SMALL), "tarball left-pad-1.3.0.tgz")
    message = str(info.value)
    assert "left-pad-1.3.0.tgz" in message
    assert expected.sri in message
    assert files_under(tmp_path) == []
    assert s.get("sha512-" + "ab" * 64) is None
    assert (len(s.index), s.index.total) == (0, 0)


@pytest.mark.anyio
async def test_fill_accepts_a_matching_sha1(tmp_path: Path) -> None:
    s = store(tmp_path)
    expected = expected_digest(None, hashlib.sha1(SMALL).hexdigest())
    assert expected is not None
    got = await s.fill(digest_of(SMALL).key, expected, serving(SMALL), "tarball")
    assert got.data == SMALL


@pytest.mark.anyio
async def test_fill_that_fails_midway_leaves_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)
    digest = digest_of(BIG)
    with pytest.raises(ConnectionResetError):
        await s.fill(digest.key, digest, serving(BIG, fail_after=3), "tarball")
    assert files_under(tmp_path) == []
    assert s.get(digest.key) is None


@pytest.mark.anyio
async def test_fill_cancelled_midway_leaves_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)
    digest = digest_of(BIG)
    started = anyio.Event()

    async def stalls(sink: Sink) -> int:
        sink(BIG[:1000])
        started.set()
        await anyio.sleep_forever()
        return 0  # pragma: no cover

    async with anyio.create_task_group() as tg:
        tg.start_soon(s.fill, digest.key, digest, stalls, "tarball")
        await started.wait()
        assert len(files_under(tmp_path)) == 1  # the temp file
        tg.cancel_scope.cancel()
    assert files_under(tmp_path) == []
    assert s.get(digest.key) is None


def test_get_unknown_and_deleted_behind_our_back(tmp_path: Path) -> None:
    s = store(tmp_path, memory_bytes=0)
    assert s.get("sha512-" + "00" * 64) is None
    key = "sha512-" + "cd" * 64
    path = s.path_for(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(SMALL)
    s.index.add(path, len(SMALL))
    found = s.get(key)
    assert found is not None
    assert found.path == path
    path.unlink()
    assert s.get(key) is None  # stat fails: forgotten, not an error
    assert (len(s.index), s.index.total) == (0, 0)


def test_get_loads_small_files_into_memory_after_a_restart(tmp_path: Path) -> None:
    first = store(tmp_path)
    key = "sha512-" + "ef" * 64
    path = first.path_for(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(SMALL)
    second = store(tmp_path)  # a restart: scan finds the file
    assert second.get(key) == CachedTarball(len(SMALL), path=path)  # once: the file
    found = second.get(key)  # again: read into memory
    assert found is not None
    assert found.data == SMALL
    path.unlink()
    from_memory = second.get(key)
    assert from_memory is not None
    assert from_memory.data == SMALL


# -- PackumentStore ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "etag"),
    [("left-pad", '"a1b2c3"'), ("@acme/widget", None), ("JSONStream", 'W/"weak"')],
)
def test_packument_store_round_trip(tmp_path: Path, name: str, etag: str | None) -> None:
    s = PackumentStore(tmp_path, max_bytes=MB)
    s.index.scan()
    body = raw(packument(name, ["1.0.0", "1.1.0"]))
    s.save(name, body, etag)
    assert s.load(name) == (body, etag)
    assert PackumentStore(tmp_path, max_bytes=MB).load(name) == (body, etag)  # after a restart
    assert len(s.index) == 1
    assert [p.name for p in files_under(tmp_path)] == [s.path_for(name).name]


def test_packument_store_overwrites_and_keys_by_name(tmp_path: Path) -> None:
    s = PackumentStore(tmp_path, max_bytes=MB)
    s.save("left-pad", b'{"v":1}', '"1"')
    s.save("left-pad", b'{"v":2}', '"2"')
    s.save("right-pad", b'{"v":3}', None)
    assert s.load("left-pad") == (b'{"v":2}', '"2"')
    assert s.load("right-pad") == (b'{"v":3}', None)
    assert s.load("center-pad") is None
    assert s.path_for("left-pad") != s.path_for("Left-Pad")
    assert len(files_under(tmp_path)) == 2


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all\n{}",
        b'{"name": "left-pad", "etag": null}',  # no header line
        b'["left-pad"]\n{}',
        b'{"name": "right-pad", "etag": null, "saved": 0}\n{}',  # another package's file
        b"\xff\xfe\n{}",
    ],
)
def test_packument_store_ignores_corrupt_files(tmp_path: Path, content: bytes) -> None:
    s = PackumentStore(tmp_path, max_bytes=MB)
    path = s.path_for("left-pad")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert s.load("left-pad") is None


def test_packument_store_ignores_a_non_string_etag(tmp_path: Path) -> None:
    s = PackumentStore(tmp_path, max_bytes=MB)
    path = s.path_for("left-pad")
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"name": "left-pad", "etag": 42, "saved": 0}\n{"name":"left-pad"}')
    assert s.load("left-pad") == (b'{"name":"left-pad"}', None)


def test_packument_store_is_capped(tmp_path: Path) -> None:
    s = PackumentStore(tmp_path, max_bytes=3000)
    for i in range(5):
        s.save(f"pkg-{i}", b"x" * 1000, None)
    assert s.index.total <= 3000
    assert s.load("pkg-4") is not None
    assert s.load("pkg-0") is None
