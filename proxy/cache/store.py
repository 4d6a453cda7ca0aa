"""On-disk stores: content-addressed tarballs and last-known packuments, both size-capped.

Every file is written with `proxy.files.atomic_file` (a temporary file in its final directory,
checked, then renamed into place), so a reader never sees a half-written file and a crash leaves
only a `.tmp` file that the next start removes. Least recently used files are evicted past the
cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio
import orjson
from cachetools import LRUCache

from proxy.errors import CacheUnavailable, UpstreamBadResponse
from proxy.files import TMP_SUFFIX, Capped, atomic_file, write_atomically
from proxy.npm.integrity import Digest, Hasher

log = logging.getLogger(__name__)

MEMORY_ITEM_MAX = 1024 * 1024  # bytes: tarballs up to this size are also kept in memory when hot
SERVED_MEMO = 50_000  # tarballs remembered as served from disk once (the next `get` is hot)
UNCACHED_MAX = 64 * 1024 * 1024  # bytes: the largest tarball served from memory when the disk fails

Sink = Callable[[bytes], object]


class FileIndex:
    """Sizes of the files under a directory in least-recently-used order, with a byte cap.

    Thread-safe: files are written from worker threads and read from the event loop.
    """

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes
        self._files: OrderedDict[Path, int] = OrderedDict()
        self._pinned: Counter[Path] = Counter()  # files a request is using: never evicted
        self._lock = threading.Lock()
        self.total = 0

    def scan(self) -> None:
        """Index what is on disk (oldest first) and delete temp files left by a crash."""
        self.root.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, Path, int]] = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                if name.endswith(TMP_SUFFIX):
                    log.info("removing unfinished cache file %s", path)
                    path.unlink(missing_ok=True)
                    continue
                found.append((st.st_mtime, path, st.st_size))
        found.sort()
        with self._lock:
            self._files = OrderedDict((p, size) for _, p, size in found)
            self.total = sum(self._files.values())
            self._evict(None)

    def touch(self, path: Path) -> bool:
        """Mark `path` used; False when it is not indexed."""
        with self._lock:
            if path in self._files:
                self._files.move_to_end(path)
                return True
            return False

    def add(self, path: Path, size: int) -> None:
        """Index a new file, then evict the least recently used past the cap (never `path`)."""
        with self._lock:
            self.total += size - self._files.pop(path, 0)
            self._files[path] = size
            self._evict(path)

    def forget(self, path: Path) -> None:
        with self._lock:
            self.total -= self._files.pop(path, 0)

    @contextlib.contextmanager
    def pinned(self, path: Path) -> Iterator[None]:
        """While the block runs, `path` is not evicted (indexed or not yet): a request that
        fetches, scans and sends a tarball keeps its file under a burst of other downloads.
        The cap is enforced again when the last pin goes."""
        with self._lock:
            self._pinned[path] += 1
        try:
            yield
        finally:
            with self._lock:
                self._pinned[path] -= 1
                if not self._pinned[path]:
                    del self._pinned[path]
                    self._evict(None)

    def _evict(self, keep: Path | None) -> None:
        """Remove the least recently used files past the cap, but `keep` and pinned ones."""
        excess = self.total - self.max_bytes
        victims: list[Path] = []
        for path, size in self._files.items():  # oldest first, as far as the excess goes
            if excess <= 0:
                break
            if path != keep and path not in self._pinned:
                victims.append(path)
                excess -= size
        for path in victims:
            size = self._files.pop(path)
            self.total -= size
            path.unlink(missing_ok=True)
            log.debug("evicted %s (%d bytes) from the disk cache", path, size)

    def __len__(self) -> int:
        return len(self._files)


def _check_integrity(hasher: Hasher, expected: Digest | None, what: str, outcome: str) -> None:
    """Raise UpstreamBadResponse (naming what happens to the bytes) on a digest mismatch."""
    if not hasher.matches():
        assert expected is not None
        raise UpstreamBadResponse(
            f"{what} failed its integrity check: expected {expected.sri}, "
            f"got {hasher.sha512.sri} ({hasher.size} bytes); {outcome}"
        )


def _sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


@dataclass(frozen=True, slots=True)
class CachedTarball:
    """A cached tarball: in memory when small and hot, else a file to stream."""

    size: int
    data: bytes | None = None
    path: Path | None = None


class TarballCache(Protocol):
    """Where tarballs are kept: `TarballStore` (the local folder), or the shared object store in
    front of which the local folder is each replica's cache (`proxy.storage.blobs`)."""

    @property
    def index(self) -> FileIndex: ...

    def get(self, key: str) -> CachedTarball | None: ...

    def in_use(self, key: str) -> AbstractContextManager[None]:
        """While the block runs, the file of `key` is not evicted."""
        ...

    async def fill(
        self,
        key: str,
        expected: Digest | None,
        download: Callable[[Sink], Awaitable[int]],
        what: str,
    ) -> CachedTarball: ...


class PackumentSaver(Protocol):
    """Where the last packuments are saved: `PackumentStore` or the shared object store."""

    @property
    def index(self) -> FileIndex: ...

    def save(self, name: str, raw: bytes, etag: str | None) -> None: ...

    def load(self, name: str) -> tuple[bytes, str | None] | None: ...


class TarballStore:
    """Tarballs stored by content digest, verified before they are renamed into place."""

    def __init__(self, root: Path, max_bytes: int, memory_bytes: int):
        self.index = FileIndex(root, max_bytes)
        self._memory: LRUCache[str, bytes] | None = (
            LRUCache(maxsize=memory_bytes, getsizeof=len) if memory_bytes > 0 else None
        )
        # Tarballs served from disk once: the next `get` keeps a small one in memory.
        self._served: LRUCache[str, bool] = LRUCache(SERVED_MEMO)

    def path_for(self, key: str) -> Path:
        algorithm, _, digest = key.partition("-")
        return self.index.root / algorithm / digest[:2] / digest

    def in_use(self, key: str) -> AbstractContextManager[None]:
        return self.index.pinned(self.path_for(key))

    def get(self, key: str) -> CachedTarball | None:
        """The cached tarball for `key`, or None."""
        if self._memory is not None:
            data = self._memory.get(key)
            if data is not None:
                return CachedTarball(len(data), data=data)
        path = self.path_for(key)
        if not self.index.touch(path):
            return None
        try:
            size = path.stat().st_size
            hot = self._served.pop(key, False)  # asked for before: a hot tarball
            if self._memory is not None and size <= MEMORY_ITEM_MAX and hot:
                data = path.read_bytes()
                self._memory[key] = data
                return CachedTarball(size, data=data)
            self._served[key] = True
        except OSError:  # deleted behind our back
            self.index.forget(path)
            return None
        return CachedTarball(size, path=path)

    async def fill(
        self,
        key: str,
        expected: Digest | None,
        download: Callable[[Sink], Awaitable[int]],
        what: str,
    ) -> CachedTarball:
        """Download into a temp file, verify against `expected`, then rename into place.

        Raises UpstreamBadResponse on an integrity mismatch (nothing is kept), and whatever
        `download` raises; the temp file is removed in every case. When the cache cannot be
        written (disk full, read-only, removed), the tarball is downloaded again into memory,
        verified and served uncached (up to `UNCACHED_MAX` bytes; CacheUnavailable past that).
        """
        try:
            return await self._fill_file(key, expected, download, what)
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            log.warning("cannot cache %s (%s): serving it uncached", what, exc)
        return await self._fill_memory(expected, download, what)

    async def _fill_memory(
        self, expected: Digest | None, download: Callable[[Sink], Awaitable[int]], what: str
    ) -> CachedTarball:
        def too_big(total: int) -> Exception:
            return CacheUnavailable(
                f"Floodgate cannot write its cache, and {what} is over the {UNCACHED_MAX} bytes "
                "it serves uncached; try again later"
            )

        hasher = Hasher(expected)
        capped = Capped(UNCACHED_MAX, too_big)

        def sink(chunk: bytes) -> None:
            capped.add(chunk)
            hasher.update(chunk)

        await download(sink)
        _check_integrity(hasher, expected, what, "not served")
        data = capped.body()
        return CachedTarball(len(data), data=data)

    async def _fill_file(
        self,
        key: str,
        expected: Digest | None,
        download: Callable[[Sink], Awaitable[int]],
        what: str,
    ) -> CachedTarball:
        final = self.path_for(key)
        hasher = Hasher(expected)
        small: list[bytes] | None = [] if self._memory is not None else None
        with atomic_file(final, fsync=False) as f:

            def sink(chunk: bytes) -> None:
                nonlocal small
                hasher.update(chunk)
                f.write(chunk)
                if small is not None:
                    small = small if hasher.size <= MEMORY_ITEM_MAX else None
                    if small is not None:
                        small.append(chunk)

            await download(sink)
            _check_integrity(hasher, expected, what, "not cached")
            await anyio.to_thread.run_sync(_sync, f)
        self.index.add(final, hasher.size)
        if small is not None:
            # Served from these bytes, but kept in memory only once asked for twice more
            # (`get`): an install asks for most tarballs once, the background scan of a
            # version fetches it before the client does, and memory would fill with them.
            data = b"".join(small)
            return CachedTarball(len(data), data=data)
        return CachedTarball(hasher.size, path=final)


class PackumentStore:
    """The last packument bytes (and ETag) seen per package, for warm restarts and outages."""

    def __init__(self, root: Path, max_bytes: int):
        self.index = FileIndex(root, max_bytes)

    def path_for(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return self.index.root / digest[:2] / f"{digest}.json"

    def save(self, name: str, raw: bytes, etag: str | None) -> None:
        """Write `raw` atomically with a one-line header (blocking: call from a thread)."""
        path = self.path_for(name)
        self.index.add(path, write_atomically(path, saved_header(name, etag), raw))

    def load(self, name: str) -> tuple[bytes, str | None] | None:
        """The saved bytes and ETag for `name`, or None (blocking: call from a thread)."""
        path = self.path_for(name)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        found = parse_saved(name, data)
        if found is None:
            log.warning("ignoring unreadable saved packument %s", path)
            return None
        self.index.touch(path)
        return found


def saved_header(name: str, etag: str | None) -> bytes:
    """The one-line header a saved packument starts with (pure but for the time)."""
    return orjson.dumps({"name": name, "etag": etag, "saved": time.time()}) + b"\n"


def parse_saved(name: str, data: bytes) -> tuple[bytes, str | None] | None:
    """A saved packument's bytes and ETag, or None when it is not one of `name` (pure)."""
    header, sep, raw = data.partition(b"\n")
    try:
        meta = orjson.loads(header)
    except orjson.JSONDecodeError:
        meta = None
    if not sep or not isinstance(meta, dict) or meta.get("name") != name:
        return None
    etag = meta.get("etag")
    return raw, etag if isinstance(etag, str) else None
