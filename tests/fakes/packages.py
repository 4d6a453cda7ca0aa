"""Build real npm package tarballs and packument entries for tests, in memory."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any


def make_tarball(files: dict[str, bytes], prefix: str = "package/") -> bytes:
    """A gzipped tar with `files` under `prefix`, deterministic (fixed mtimes, sorted)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(prefix + path)
            info.size = len(data)
            info.mtime = 499162500  # npm's fixed tarball mtime (1985-10-26)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@dataclass
class FakeVersion:
    """One published version: its manifest fields and files (package.json is generated)."""

    version: str
    dependencies: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    published: str = "2024-01-01T00:00:00.000Z"


def build_version(name: str, fv: FakeVersion) -> tuple[dict[str, Any], bytes]:
    """The packument version entry (without dist.tarball) and the tarball bytes."""
    manifest: dict[str, Any] = {
        "name": name,
        "version": fv.version,
        "description": f"test package {name}",
        "main": "index.js",
        "license": "MIT",
        **fv.extra,
    }
    if fv.dependencies:
        manifest["dependencies"] = dict(fv.dependencies)
    files = {
        "package.json": json.dumps(manifest, indent=2).encode(),
        "index.js": f"module.exports = {json.dumps(name + '@' + fv.version)};\n".encode(),
        **fv.files,
    }
    tgz = make_tarball(files)
    entry = {
        **manifest,
        "_id": f"{name}@{fv.version}",
        "dist": {
            "integrity": integrity_of(tgz),
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "fileCount": len(files),
            "unpackedSize": sum(len(b) for b in files.values()),
        },
    }
    return entry, tgz


# Real-shaped contents for packages the detector should flag (or not).
TEA_YAML = (
    b"# https://tea.xyz/what-is-this-file\n---\nversion: 1.0.0\ncodeOwners:\n"
    b"  - '0x723332A6f259f8457e71a346566466036a5Eb3C8'\nquorum: 1\n"
)
HELLO_JS = b'console.log("hello world");\n'
REAL_JS = b"""'use strict';
function pad(text, width, fill) {
  const s = String(text);
  if (s.length >= width) return s;
  return String(fill === undefined ? ' ' : fill).repeat(width - s.length) + s;
}
function padEnd(text, width, fill) {
  const s = String(text);
  return s.length >= width ? s : s + String(fill || ' ').repeat(width - s.length);
}
module.exports = { pad, padEnd };
"""


def farm(version: str, **kw: object) -> FakeVersion:
    """A token-farming version: a tea.yaml naming a wallet, and a hello-world entry point."""
    return FakeVersion(version, files={"tea.yaml": TEA_YAML, "index.js": HELLO_JS}, **kw)  # type: ignore[arg-type]


def clean(version: str, **kw: object) -> FakeVersion:
    """A plain small library."""
    return FakeVersion(version, files={"index.js": REAL_JS}, **kw)  # type: ignore[arg-type]


def hello(version: str) -> FakeVersion:
    """Weak signals only: an entry point that just prints a greeting, in its own words and at
    its own time (the farm fixtures' file, or their publish minute, would tie it to their
    campaign)."""
    return FakeVersion(
        version,
        files={"index.js": b'console.log("Hello, world!");\n'},
        published="2024-03-05T10:20:00.000Z",
    )


def publish_body(
    name: str, fv: FakeVersion, tags: tuple[str, ...] = ("latest",), tarball: bytes | None = None
) -> dict[str, Any]:
    """The JSON body `npm publish` sends for one version (`tarball` replaces the packed one)."""
    manifest, tgz = build_version(name, fv)
    data = tgz if tarball is None else tarball
    bare = name.rsplit("/", 1)[-1]
    manifest["_id"] = f"{name}@{fv.version}"
    manifest["dist"] = {
        "integrity": integrity_of(data),
        "shasum": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "tarball": f"http://registry.invalid/{name}/-/{bare}-{fv.version}.tgz",
    }
    return {
        "_id": name,
        "name": name,
        "description": manifest.get("description", ""),
        "dist-tags": {tag: fv.version for tag in tags},
        "versions": {fv.version: manifest},
        "access": None,
        "_attachments": {
            f"{bare}-{fv.version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(data).decode(),
                "length": len(data),
            }
        },
    }
