"""Authentication: which token a request carries, as an `Identity` in `scope["state"]`.

`Authenticate` is ASGI middleware in front of everything but the access log:

- `Authorization: Bearer <token>` with a Floodgate token (see `proxy.tokens`), or `Basic` with
  the token as the password (a browser on the dashboard, whose 401 asks for it): the request is
  that token's group and name. The header is then removed from the request, so nothing after
  this point can log, fingerprint or forward the token (to the upstream with `forward_auth`).
- A token Floodgate does not know (wrong, revoked, or another kind of credential) while tokens
  exist: 401 with an `error` and an `npm-notice` that npm prints, and `WWW-Authenticate`. While
  no token exists, credentials are ignored as before (anonymous use, `forward_auth` unchanged).
- No credentials: anonymous, when the `anonymous` setting allows it (`auto`: while no token
  exists; `on`; `off`), else 401 saying how to get a token. Liveness/readiness and the login
  endpoints (which answer with how to get a token) are reachable without one.

A lookup the token index must renew (every `LOOKUP_TTL` seconds per token) runs in a worker
thread, so a slow or unreachable shared database delays only the requests that wait for it,
never the event loop; while it is down, the index answers with what it knew.

Failed attempts are counted per client address (`FailureThrottle`): past `FREE_FAILURES` within
`FAILURE_WINDOW` seconds, further bad tokens from that address get 429 with `Retry-After`
(doubling up to `MAX_LOCKOUT`) without being looked up. A valid token is always accepted, so
one noisy machine behind a shared address does not lock its neighbours out.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.identity import ANONYMOUS, Identity
from proxy.tokens import TokenIndex
from proxy.web.responses import error_response, notice_header

FREE_FAILURES = 5  # bad tokens from one address within the window before it is slowed down
FAILURE_WINDOW = 300.0  # seconds a failure counts
BASE_LOCKOUT = 10.0  # seconds the first slowed-down attempt waits; doubles with each more
MAX_LOCKOUT = 300.0
THROTTLED_ADDRESSES = 10_000  # addresses whose failures are remembered
PARSED_HEADERS = 1_000  # Authorization headers whose parse is remembered
# Reachable without a token: liveness, readiness, and the login endpoints (their answer tells
# npm login users how to get a token).
OPEN_PATHS = ("/-/ping", "/-/ready", "/-/v1/login", "/-/user/")
HOW_TO_GET_ONE = (
    "ask the Floodgate administrator for a token (floodgate token create --group GROUP --name "
    "NAME) and put it in .npmrc as //<floodgate host>/:_authToken=<token> "
    "(yarn 4: npmAuthToken and npmAlwaysAuth: true in .yarnrc.yml)"
)
WWW_AUTHENTICATE = 'Bearer realm="floodgate"'
# Pages people open in a browser: a Basic challenge makes the browser ask for the token.
BROWSER_PATHS = ("/-/dashboard",)
BROWSER_AUTHENTICATE = 'Basic realm="floodgate", charset="UTF-8"'


def challenge(path: str) -> str:
    """The `WWW-Authenticate` for a refusal at `path`: Basic where a browser asks (the
    dashboard: the password is the token), Bearer for the package clients."""
    return BROWSER_AUTHENTICATE if path.startswith(BROWSER_PATHS) else WWW_AUTHENTICATE


ANONYMOUS_MODES = ("auto", "on", "off")


def bearer(header: bytes) -> str | None:
    """The token of an `Authorization` header (pure): `Bearer <token>`, as npm, pnpm, yarn and
    bun send it, or `Basic base64(user:<token>)`, as a browser sends it after the dashboard's
    login prompt (the password is the token; the user name is ignored, and a token given as
    the user name with an empty password, `curl -u TOKEN:`, counts too). Else None."""
    kind, _, token = header.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if not token:
        return None
    if kind.lower() == "bearer":
        return token
    if kind.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon:
        return None
    return password or user or None


@dataclass
class FailureThrottle:
    """Failed authentications per client address, with an injectable clock."""

    clock: Callable[[], float] = time.monotonic
    free: int = FREE_FAILURES
    window: float = FAILURE_WINDOW
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before its next attempt is looked at (0: none)."""
        until = self._locked_until.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            return 0.0
        return left

    def failed(self, address: str) -> float:
        """Count a failure; the lockout it starts (0 while within the free attempts)."""
        now = self.clock()
        if len(self._failures) >= THROTTLED_ADDRESSES and address not in self._failures:
            self._forget_old(now)
        recent = [t for t in self._failures.get(address, ()) if now - t < self.window]
        recent.append(now)
        self._failures[address] = recent
        over = len(recent) - self.free
        if over <= 0:
            return 0.0
        lockout = min(BASE_LOCKOUT * 2.0 ** (over - 1), MAX_LOCKOUT)
        self._locked_until[address] = now + lockout
        return lockout

    def _forget_old(self, now: float) -> None:
        self._failures = {
            a: ts for a, ts in self._failures.items() if ts and now - ts[-1] < self.window
        }
        self._locked_until = {a: t for a, t in self._locked_until.items() if t > now}
        if len(self._failures) >= THROTTLED_ADDRESSES:
            self._failures.clear()


def anonymous_allowed(mode: str, tokens_exist: bool) -> bool:
    """The `anonymous` setting: `on`, `off`, or `auto` (on while no token exists). Pure."""
    if mode == "auto":
        return not tokens_exist
    return mode == "on"


class Authenticate:
    """ASGI middleware: resolve the request's token to an `Identity` (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenIndex,
        anonymous: str = "auto",
        throttle: FailureThrottle | None = None,
    ):
        if anonymous not in ANONYMOUS_MODES:
            raise ValueError(f"anonymous must be one of {ANONYMOUS_MODES}, not {anonymous!r}")
        self.app = app
        self.tokens = tokens
        self.anonymous = anonymous
        self.throttle = throttle if throttle is not None else FailureThrottle()
        self._tokens_of: dict[bytes, str | None] = {}  # parsed Authorization headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        header = None
        at = 0
        for key, value in headers:
            if key == b"authorization":
                header = value
                break
            at += 1
        state = scope.setdefault("state", {})
        tokens_exist = self.tokens.any_cached()
        if tokens_exist is None:  # due again: read off the event loop (a database may be slow)
            tokens_exist = await anyio.to_thread.run_sync(self.tokens.any)
        if header is None or not tokens_exist:
            # No credentials, or none of ours exist (then a client's credentials are its own
            # business, as before: forwarded only with forward_auth).
            if header is None and not self._anonymous_ok(scope["path"], tokens_exist):
                await self._refuse(
                    scope, receive, send, "this Floodgate requires a token: " + HOW_TO_GET_ONE
                )
                return
            state["identity"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        identity = await self._identify(header)
        if identity is None:
            await self._failed(scope, receive, send)
            return
        # Ours: nothing downstream sees it (logs, decision log, forward_auth to the upstream).
        rest = headers[at + 1 :]
        if any(k == b"authorization" for k, _ in rest):  # a second one: drop them all
            rest = [(k, v) for k, v in rest if k != b"authorization"]
        scope["headers"] = headers[:at] + rest
        state["identity"] = identity
        await self.app(scope, receive, send)

    def _anonymous_ok(self, path: str, tokens_exist: bool) -> bool:
        if anonymous_allowed(self.anonymous, tokens_exist):
            return True
        return path.startswith(OPEN_PATHS)

    async def _identify(self, header: bytes) -> Identity | None:
        try:
            token = self._tokens_of[header]
        except KeyError:
            token = bearer(header)
            if len(self._tokens_of) >= PARSED_HEADERS:
                self._tokens_of.clear()
            self._tokens_of[header] = token
        if token is None:
            return None
        seen = self.tokens.cached(token)  # the warm path: a dictionary lookup
        if seen is not None:
            return seen.identity
        return await anyio.to_thread.run_sync(self.tokens.identify, token)

    async def _failed(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        address = client[0] if client else "-"
        waiting = self.throttle.retry_after(address)
        if waiting > 0:
            message = (
                f"too many failed authentications from {address}: try again in "
                f"{waiting:.0f}s with a valid token"
            )
            response = error_response(
                429,
                message,
                {"retry-after": str(max(1, round(waiting))), "npm-notice": notice_header(message)},
            )
            scope["state"]["note"] = " auth=throttled"
            await response(scope, receive, send)
            return
        self.throttle.failed(address)
        await self._refuse(
            scope,
            receive,
            send,
            "Floodgate does not know this token (wrong, or revoked): " + HOW_TO_GET_ONE,
        )

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        scope["state"]["note"] = " auth=refused"
        response = error_response(
            401,
            message,
            {"www-authenticate": challenge(scope["path"]), "npm-notice": notice_header(message)},
        )
        await response(scope, receive, send)
