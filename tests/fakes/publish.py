"""`npm publish` request bodies built in Python, as npm (libnpmpublish) sends them: the
document with one version and its tarball attached in base64, for tests and benchmarks that
publish to a running Floodgate over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import httpx

from tests.fakes.packages import REAL_JS, integrity_of, make_tarball


def package_tarball(manifest: Mapping[str, Any], code: bytes = REAL_JS) -> bytes:
    """A packed package: package/package.json (the manifest) and package/index.js."""
    return make_tarball(
        {"package.json": json.dumps(dict(manifest), indent=2).encode(), "index.js": code}
    )


def publish_body(
    name: str,
    version: str,
    *,
    description: str = "",
    keywords: tuple[str, ...] = (),
    code: bytes = REAL_JS,
    tag: str = "latest",
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON body of `PUT /<name>` that `npm publish` sends for `name@version`."""
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": description or f"{name}, an internal library",
        "main": "index.js",
        "license": "MIT",
        **(extra or {}),
    }
    if keywords:
        manifest["keywords"] = list(keywords)
    tarball = package_tarball(manifest, code)
    filename = f"{name}-{version}.tgz"  # npm names the attachment with the scope
    doc = {
        "_id": name,
        "name": name,
        "description": manifest["description"],
        "dist-tags": {tag: version},
        "versions": {
            version: {
                **manifest,
                "_id": f"{name}@{version}",
                "readme": f"# {name}\n",
                "dist": {
                    "integrity": integrity_of(tarball),
                    "shasum": hashlib.sha1(tarball).hexdigest(),
                    "tarball": f"http://floodgate.invalid/{name}/-/{filename}",
                },
            }
        },
        "access": None,
        "_attachments": {
            filename: {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tarball).decode(),
                "length": len(tarball),
            }
        },
    }
    return json.dumps(doc).encode()


def path_of(name: str) -> str:
    """The URL path npm publishes `name` to (`/@scope%2fname`)."""
    return "/" + name.replace("/", "%2f")


def publish(client: httpx.Client, token: str, name: str, version: str, **kw: Any) -> httpx.Response:
    """Publish through a running Floodgate; the response (201 on success)."""
    return client.put(
        path_of(name),
        content=publish_body(name, version, **kw),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
