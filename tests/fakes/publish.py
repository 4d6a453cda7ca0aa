"""`npm publish` request bodies built in Python, as npm (libnpmpublish) sends them: the
document with one version and its tarball attached in base64, for tests and benchmarks that
publish to a running Floodgate over HTTP."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from tests.fakes import packages
from tests.fakes.packages import REAL_JS, FakeVersion


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
    fields: dict[str, Any] = {"description": description or f"{name}, an internal library"}
    if keywords:
        fields["keywords"] = list(keywords)
    version_of = FakeVersion(version, files={"index.js": code}, extra={**fields, **(extra or {})})
    return json.dumps(packages.publish_body(name, version_of, (tag,))).encode()


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
