"""Publish bodies as `npm publish` sends them, built in Python (real tarballs, real shapes)."""

from __future__ import annotations

import base64
from typing import Any

from tests.fakes import packages
from tests.fakes.packages import clean


def publish_body(name: str, version: str, tag: str = "latest") -> tuple[dict[str, Any], bytes]:
    """`PUT /<name>`'s JSON for one version (manifest, dist-tag, base64 tarball); and the
    tarball's bytes."""
    body = packages.publish_body(name, clean(version), (tag,))
    (attachment,) = body["_attachments"].values()
    return body, base64.b64decode(attachment["data"])


def tarball_path(name: str, version: str) -> str:
    return f"/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
