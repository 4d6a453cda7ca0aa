"""Real activity on a running Floodgate's hosted packages, over HTTP as npm sends it: publishes,
a dist-tag, a deprecation, a refused publish; every one an event in the hosted audit log."""

from __future__ import annotations

import httpx

from tests.fakes.publish import path_of, publish

UTILS_JS = b"""'use strict';
function chunk(list, size) {
  const out = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}
function unique(list) {
  return Array.from(new Set(list));
}
module.exports = { chunk, unique };
"""
VAULT_JS = b"""'use strict';
const crypto = require('crypto');
function seal(key, text) {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}
module.exports = { seal };
"""

# (event, package) of the events `make_activity` makes, newest first.
NEWEST_FIRST = [
    ("refused", "@acme/utils"),
    ("deprecate", "@acme/utils"),
    ("dist-tag", "@acme/utils"),
    ("publish", "@acme/vault"),
    ("publish", "@acme/utils"),
    ("publish", "@acme/utils"),
]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def deprecate(client: httpx.Client, token: str, name: str, version: str, message: str) -> None:
    """`npm deprecate`: the document read with ?write=true, written back with the message."""
    doc = client.get(path_of(name) + "?write=true", headers=bearer(token)).json()
    doc["versions"][version]["deprecated"] = message
    r = client.put(path_of(name), json=doc, headers=bearer(token))
    assert r.status_code == 200, r.text


def tag(client: httpx.Client, token: str, name: str, tag: str, version: str) -> None:
    """`npm dist-tag add name@version tag`."""
    r = client.put(
        f"/-/package/{path_of(name)[1:]}/dist-tags/{tag}",
        content=f'"{version}"',
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text


def make_activity(client: httpx.Client, admin: str, other: str) -> None:
    """In this order: @acme/utils 1.0.0 and 1.1.0 and @acme/vault 1.0.0 published by `admin`,
    @acme/utils@1.0.0 tagged `stable` and deprecated, and a publish by `other` (a token
    whose group may not publish) refused."""
    for name, version, code in (
        ("@acme/utils", "1.0.0", UTILS_JS),
        ("@acme/utils", "1.1.0", UTILS_JS + b"module.exports.version = '1.1.0';\n"),
        ("@acme/vault", "1.0.0", VAULT_JS),
    ):
        r = publish(client, admin, name, version, code=code)
        assert r.status_code == 201, r.text
    tag(client, admin, "@acme/utils", "stable", "1.0.0")
    deprecate(client, admin, "@acme/utils", "1.0.0", "use 1.1.0: <b>chunk</b> was off by one")
    refused = publish(client, other, "@acme/utils", "2.0.0", code=UTILS_JS)
    assert refused.status_code == 403, refused.text
