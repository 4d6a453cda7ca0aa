"""Hostile tarballs, built in memory and kept small: a gzip bomb and an archive whose member
declares far more data than the archive holds."""

from __future__ import annotations

import gzip
import json
import tarfile
import zlib

BLOCK = 512


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 499162500
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _file(name: str, data: bytes) -> bytes:
    return _header(name, len(data)) + data + b"\0" * (-len(data) % BLOCK)


def _manifest(name: str, version: str) -> bytes:
    return json.dumps({"name": name, "version": version, "main": "index.js"}).encode()


def gzip_bomb(name: str, version: str, unpacked: int = 64 * 1024 * 1024) -> bytes:
    """A valid package whose one data file is `unpacked` bytes of zeros (~1000x smaller)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [deflate.compress(_file("package/package.json", _manifest(name, version)))]
    parts.append(deflate.compress(_header("package/zeros.bin", unpacked)))
    block = b"\0" * (1024 * 1024)
    parts.extend(deflate.compress(block) for _ in range(unpacked // len(block)))
    parts.append(deflate.compress(b"\0" * (2 * BLOCK)))  # end of archive
    parts.append(deflate.flush())
    return b"".join(parts)


def size_lie(name: str, version: str, claimed: int = 8 * 1024**3) -> bytes:
    """A package whose second member claims `claimed` bytes, then the archive simply ends."""
    raw = _file("package/package.json", _manifest(name, version))
    raw += _header("package/huge.bin", claimed) + b"x" * 4096
    return gzip.compress(raw)
