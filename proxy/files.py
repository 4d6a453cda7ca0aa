"""Two small disciplines every layer shares: a file is written whole or not at all, and a
body read from the network is capped as it arrives.

`atomic_file` writes to a temporary file in the final directory, fsyncs it and renames it into
place with `os.replace`, so a reader never sees a half-written file and a crash leaves only a
`.tmp` file (which the cache's start-up scan removes). `Capped` collects chunks and raises the
caller's error the moment the total passes the limit, so an oversized body is never held whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_file(final: Path, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes `final` when the block exits normally (fsynced, then
    renamed into place); on any exception the temporary file is removed and `final` untouched.

    `fsync=False` is for async callers that sync the file off the event loop themselves.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=".", suffix=TMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # a no-op after the rename


def write_atomically(final: Path, *parts: bytes) -> int:
    """Write `parts` to `final` atomically; return the size written."""
    with atomic_file(final) as f:
        for part in parts:
            f.write(part)
        return f.tell()


class Capped:
    """Chunks of a body, at most `limit` bytes in all; `too_big(total)` builds the error raised
    as soon as the limit is passed."""

    def __init__(self, limit: int, too_big: Callable[[int], Exception]):
        self.limit = limit
        self.total = 0
        self._too_big = too_big
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.limit:
            self._chunks.clear()  # let the memory go before the error travels up
            raise self._too_big(self.total)
        self._chunks.append(chunk)

    def check_declared(self, declared: int | None) -> None:
        """Refuse up front when a declared length is already over the limit."""
        if declared is not None and declared > self.limit:
            raise self._too_big(declared)

    def body(self) -> bytes:
        return b"".join(self._chunks)
