"""The authentication middleware and its failure throttle, driven as plain ASGI (no server)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from proxy.identity import ANONYMOUS, Identity, identity_of
from proxy.tokens import TokenIndex, TokenStore
from proxy.web.auth import (
    BASE_LOCKOUT,
    FREE_FAILURES,
    Authenticate,
    FailureThrottle,
    anonymous_allowed,
    bearer,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer fg_abc", "fg_abc"),
        (b"bearer   fg_abc  ", "fg_abc"),
        (b"Basic dXNlcjpwYXNz", "pass"),  # user:pass, as a browser sends the login
        (b"Basic " + base64.b64encode(b"fg_tok:"), "fg_tok"),  # curl -u fg_tok:
        (b"Basic " + base64.b64encode(b"nocolon"), None),
        (b"Basic not-base64!", None),
        (b"Basic " + base64.b64encode(b"\xff:\xfe"), None),
        (b"Digest abc", None),
        (b"Bearer ", None),
        (b"fg_abc", None),
    ],
)
def test_bearer(header: bytes, token: str | None) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize(
    ("mode", "tokens_exist", "allowed"),
    [
        ("auto", False, True),
        ("auto", True, False),
        ("on", True, True),
        ("on", False, True),
        ("off", False, False),
        ("off", True, False),
    ],
)
def test_anonymous_modes(mode: str, tokens_exist: bool, allowed: bool) -> None:
    assert anonymous_allowed(mode, tokens_exist) is allowed


def test_throttle_slows_an_address_after_the_free_failures_and_forgets_with_time() -> None:
    clock = Clock()
    throttle = FailureThrottle(clock=clock, free=FREE_FAILURES, window=300)
    for _ in range(FREE_FAILURES):
        assert throttle.failed("10.0.0.1") == 0
    assert throttle.retry_after("10.0.0.1") == 0
    assert throttle.failed("10.0.0.1") == BASE_LOCKOUT
    assert throttle.retry_after("10.0.0.1") == BASE_LOCKOUT
    assert throttle.retry_after("10.0.0.2") == 0  # another address is unaffected
    clock.now += BASE_LOCKOUT
    assert throttle.retry_after("10.0.0.1") == 0
    assert throttle.failed("10.0.0.1") == BASE_LOCKOUT * 2  # doubles
    clock.now += 301  # the window has passed: the old failures no longer count
    assert throttle.failed("10.0.0.1") == 0


class App:
    """The inner app: records the identity and the headers it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[Identity, list[tuple[bytes, bytes]]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append((identity_of(scope), list(scope["headers"])))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(
    app: Any, path: str = "/fg-alpha", token: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = [(b"host", b"floodgate.invalid")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": headers,
        "client": ("10.0.0.1", 5000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    start = sent[0]
    out = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], out, orjson.loads(body) if body != b"ok" else body


@pytest.fixture
def index(tmp_path: Path) -> TokenIndex:
    return TokenIndex(TokenStore(tmp_path / "tokens.sqlite3"), ttl=5.0, clock=Clock())


def test_valid_token_becomes_the_identity_and_is_removed_from_the_request(
    index: TokenIndex,
) -> None:
    token = index.store.create("ci", "runner-7")
    inner = App()
    status, _, _ = call(Authenticate(inner, index), token=token)
    assert status == 200
    identity, headers = inner.seen[0]
    assert identity == Identity("ci", "runner-7")
    assert all(k != b"authorization" for k, _ in headers)


def test_no_tokens_means_anonymous_and_credentials_untouched(index: TokenIndex) -> None:
    inner = App()
    status, _, _ = call(Authenticate(inner, index), token="npm_for_the_upstream")
    assert status == 200
    identity, headers = inner.seen[0]
    assert identity == ANONYMOUS
    assert (b"authorization", b"Bearer npm_for_the_upstream") in headers


def test_refusals_say_how_to_get_a_token_and_keep_open_paths_open(index: TokenIndex) -> None:
    index.store.create("ci", "runner-7")
    inner = App()
    app = Authenticate(inner, index)
    status, headers, body = call(app)
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="floodgate"'
    assert "floodgate token create" in body["error"]
    assert headers["npm-notice"] == body["error"]
    status, _, body = call(app, token="fg_nope")
    assert status == 401
    assert "wrong, or revoked" in body["error"]
    assert "fg_nope" not in body["error"]
    for path in ("/-/ping", "/-/ready", "/-/v1/login", "/-/user/org.couchdb.user:me"):
        assert call(app, path)[0] == 200
    assert inner.seen
    assert all(identity == ANONYMOUS for identity, _ in inner.seen)


def test_anonymous_on_and_off(index: TokenIndex) -> None:
    assert call(Authenticate(App(), index, "off"))[0] == 401  # off: even with no token at all
    index.store.create("ci", "runner-7")
    index.forget()
    assert call(Authenticate(App(), index, "on"))[0] == 200
    with pytest.raises(ValueError, match="anonymous"):
        Authenticate(App(), index, "sometimes")


def test_throttled_address_gets_429_but_a_valid_token_still_works(index: TokenIndex) -> None:
    token = index.store.create("ci", "runner-7")
    clock = Clock()
    app = Authenticate(App(), index, throttle=FailureThrottle(clock=clock))
    for _ in range(FREE_FAILURES + 1):
        assert call(app, token="fg_nope")[0] == 401
    status, headers, body = call(app, token="fg_nope")
    assert status == 429
    assert headers["retry-after"] == str(int(BASE_LOCKOUT))
    assert "too many failed" in body["error"]
    assert call(app, token=token)[0] == 200
    clock.now += BASE_LOCKOUT
    assert call(app, token="fg_nope")[0] == 401


def test_every_authorization_header_is_removed_with_a_valid_token(index: TokenIndex) -> None:
    token = index.store.create("ci", "runner-7")
    inner = App()
    app: Any = Authenticate(inner, index)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/fg-alpha",
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"host", b"floodgate.invalid"),
            (b"authorization", b"Bearer something-else"),
        ],
        "client": ("10.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        return None

    anyio.run(app, scope, receive, send)
    assert inner.seen[0][1] == [(b"host", b"floodgate.invalid")]
