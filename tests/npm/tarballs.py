"""Tarball builders for tests: real npm-shaped packages and hostile archives, made on the fly."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Mapping
from typing import Any


def member(name: str, data: bytes = b"", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def build(
    members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT, level: int = 6
) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return gzip.compress(raw.getvalue(), level, mtime=0)


def package(
    files: Mapping[str, bytes | str],
    manifest: Mapping[str, Any] | None = None,
    root: str = "package",
) -> bytes:
    """An npm-packed tarball: `root/package.json` from `manifest`, plus `files`."""
    members = []
    if manifest is not None:
        members.append(member(f"{root}/package.json", json.dumps(manifest).encode()))
    for path, data in files.items():
        blob = data.encode() if isinstance(data, str) else data
        members.append(member(f"{root}/{path}", blob))
    return build(members)


def zero_bomb(total: int, members: int = 1) -> bytes:
    """`members` tar files of zeros adding up to `total` bytes, gzipped hard (ratio ~1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out: list[bytes] = []
    chunk = bytes(1 << 20)
    for m in range(members):
        info = tarfile.TarInfo(f"package/zeros{m}.bin")
        info.size = total // members
        out.append(comp.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        left = info.size
        while left:
            n = min(left, len(chunk))
            out.append(comp.compress(chunk[:n]))
            left -= n
    out.append(comp.flush())
    return b"".join(out)
