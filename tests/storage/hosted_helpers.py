"""Publish bodies as `npm publish` sends them, built in Python (real tarballs, real shapes)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from tests.fakes.packages import build_version, clean


def publish_body(name: str, version: str, tag: str = "latest") -> tuple[dict[str, Any], bytes]:
    """`PUT /<name>`'s JSON for one version (manifest, dist-tag, base64 tarball); and the
    tarball's bytes."""
    entry, tgz = build_version(name, clean(version))
    bare = name.rsplit("/", 1)[-1]
    body = {
        "_id": name,
        "name": name,
        "description": entry["description"],
        "dist-tags": {tag: version},
        "versions": {version: entry},
        "_attachments": {
            f"{bare}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tgz).decode(),
                "length": len(tgz),
            }
        },
    }
    return body, tgz


def package_path(name: str) -> str:
    """The path npm writes a package at: the scope's slash escaped."""
    return "/" + quote(name, safe="@")


def tarball_path(name: str, version: str) -> str:
    return f"/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
