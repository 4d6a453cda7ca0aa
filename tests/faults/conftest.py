"""Fixtures of the fault suite: a small full disk, a log watcher."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TMPFS_BYTES = 8 * 1024 * 1024


@dataclass
class SmallDisk:
    """A tmpfs of `TMPFS_BYTES` mounted at `path`; `fill()` uses up its space."""

    path: Path

    def fill(self) -> None:
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        block = b"\0" * 65536
        failed: OSError | None = None
        try:
            for _ in range(TMPFS_BYTES // len(block) * 2):  # bounded: the disk is smaller
                os.write(fd, block)
        except OSError as exc:
            failed = exc
        finally:
            os.close(fd)
        assert failed is not None, "the small disk never filled up"
        assert failed.errno == errno.ENOSPC
        with contextlib.suppress(OSError):  # the last few bytes too
            for _ in range(4096):
                with open(self.path / "filler", "ab") as f:
                    f.write(b"\0" * 512)

    def free(self) -> None:
        (self.path / "filler").unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A tmpfs mount (root only); skipped with the reason elsewhere, never in CI."""
    where = tmp_path / "small-disk"
    where.mkdir()
    why = ""
    if os.geteuid() != 0:
        why = "mounting a tmpfs needs root"
    else:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            why = f"cannot mount a tmpfs here: {done.stderr.strip()}"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the full-disk tests: {why}")
        pytest.skip(why)
    try:
        yield SmallDisk(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


class LogWatch(logging.Handler):
    """Every record logged while a test runs (any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def exceptions(self) -> list[str]:
        """Tracebacks and internal errors logged, but the fake upstream's deliberate drops."""
        return [
            r.getMessage()
            for r in self.records
            if (r.exc_info is not None and not _deliberate(r.exc_info[1]))
            or "unexpected error" in r.getMessage()
        ]


def _deliberate(exc: BaseException | None) -> bool:
    return isinstance(exc, ConnectionAbortedError) and "on purpose" in str(exc)


@pytest.fixture
def log_watch() -> Iterator[LogWatch]:
    watch = LogWatch()
    root = logging.getLogger()
    level = root.level
    root.addHandler(watch)
    root.setLevel(logging.INFO)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        root.setLevel(level)
