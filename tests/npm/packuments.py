"""Real-shaped packuments for unit tests, built the way the public registry writes them."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

UPSTREAM = "https://registry-host.invalid"
PROXY = "http://127.0.0.1:4873"
NPM_USER = {"name": "kchan", "email": "kchan@example.com"}


def tarball_bytes(name: str, version: str) -> bytes:
    """Stand-in tarball content: unique per name and version, so digests differ."""
    return f"tarball of {name}@{version}".encode()


def sri(data: bytes, algorithm: str = "sha512") -> str:
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def manifest(
    name: str,
    version: str,
    *,
    dependencies: Mapping[str, str] | None = None,
    scripts: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One version entry of a full packument, with every field npm publishes."""
    data = tarball_bytes(name, version)
    bare = name.rsplit("/", 1)[-1]
    out: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": f"{bare}: a small utility",
        "main": "index.js",
        "scripts": dict(scripts or {"test": "node test.js"}),
        "repository": {"type": "git", "url": f"git+https://github.com/example/{bare}.git"},
        "keywords": ["utility"],
        "author": {"name": "K. Chan"},
        "license": "MIT",
        "dependencies": dict(dependencies or {}),
        "devDependencies": {"tap": "^16.3.0"},
        "engines": {"node": ">=14"},
        "gitHead": hashlib.sha1(f"{name}{version}".encode()).hexdigest(),
        "bugs": {"url": f"https://github.com/example/{bare}/issues"},
        "homepage": f"https://github.com/example/{bare}#readme",
        "_id": f"{name}@{version}",
        "_nodeVersion": "20.11.1",
        "_npmVersion": "10.2.4",
        "_npmUser": dict(NPM_USER),
        "maintainers": [dict(NPM_USER)],
        "directories": {},
        "_hasShrinkwrap": False,
        "dist": {
            "integrity": sri(data),
            "shasum": hashlib.sha1(data).hexdigest(),
            "tarball": f"{UPSTREAM}/{name}/-/{bare}-{version}.tgz",
            "fileCount": 3,
            "unpackedSize": 1234,
            "signatures": [
                {
                    "keyid": "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA",
                    "sig": "MEUCIQDyq" + hashlib.sha256(data).hexdigest()[:40],
                }
            ],
        },
    }
    out.update(extra or {})
    return out


def packument(
    name: str,
    versions: Sequence[str],
    *,
    tags: Mapping[str, str] | None = None,
    manifests: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A full packument of `name` with `versions` published one day apart, in order."""
    entries = {v: manifest(name, v) for v in versions}
    entries.update(manifests or {})
    time: dict[str, str] = {"created": "2023-03-01T09:00:00.000Z"}
    for day, version in enumerate(versions, start=1):
        time[version] = f"2023-03-{day:02d}T10:00:00.000Z"
    time["modified"] = f"2023-03-{len(versions):02d}T10:00:05.000Z" if versions else time["created"]
    latest = versions[-1] if versions else ""
    bare = name.rsplit("/", 1)[-1]
    return {
        "_id": name,
        "_rev": f"{len(versions)}-0c5d3a1b2e4f",
        "name": name,
        "description": f"{bare}: a small utility",
        "dist-tags": dict(tags) if tags is not None else {"latest": latest},
        "versions": entries,
        "time": time,
        "maintainers": [dict(NPM_USER)],
        "author": {"name": "K. Chan"},
        "repository": {"type": "git", "url": f"git+https://github.com/example/{bare}.git"},
        "homepage": f"https://github.com/example/{bare}#readme",
        "bugs": {"url": f"https://github.com/example/{bare}/issues"},
        "license": "MIT",
        "readme": f"# {bare}\n\nA small utility.\n",
        "readmeFilename": "README.md",
        "keywords": ["utility"],
        "users": {"someone": True},
    }


def raw(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc)
