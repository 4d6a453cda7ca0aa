"""The exception tree shared by every layer of Floodgate.

    FloodgateError
     ├── SettingsError             bad flag, environment variable or config file
     ├── InvalidPackageName        a request path that is not a valid npm package name
     ├── NotFound                  no such package, version or file (upstream 404 included)
     ├── UpstreamError             the upstream failed us
     │    ├── UpstreamUnavailable  timeout, refused or dropped connection, 5xx
     │    │    ├── UpstreamBusy     429/503 with Retry-After: not asked again until then (503)
     │    │    └── HostedUnavailable the hosted packages' store cannot be reached (503)
     │    ├── UpstreamBadResponse  malformed JSON, oversized body, wrong integrity
     │    │    └── UpstreamRefused refused by a registry's policy (451, as another Floodgate)
     │    └── ForbiddenOrigin      a URL outside the configured upstream (and allow-list)
     ├── TarballRejected           a tarball the safe reader refuses to look into
     ├── PolicyError               a malformed policy file
     ├── PolicyBlocked             the policy refuses a package or version (451)
     ├── CacheUnavailable          the cache folder cannot be written (full, read-only, gone: 503)
     ├── LockfileError             a lockfile that cannot be read (names the file and the spot)
     ├── ReadOnly                  a write Floodgate does not take (login; publish outside hosted)
     ├── RequestTooLarge           a client request body over the limit
 ├── ClientBusy                a client over its share of concurrent work (429)
     ├── BadRequest                a client request body Floodgate cannot read
     ├── Unauthenticated           an action that needs a token, without one (401)
     ├── Forbidden                 the caller's group may not, or the registry's rules forbid (403)
     └── Conflict                  a hosted document changed under the request (409)

Third-party exceptions (httpx, yaml, tarfile) are caught at the edge that calls them and re-raised
as one of these with `raise ... from exc`; `proxy.app` is the one place that maps them to HTTP.
"""

from __future__ import annotations


class FloodgateError(Exception):
    """Base of every error Floodgate raises on purpose."""


class SettingsError(FloodgateError):
    """Raised when a setting is missing, unknown or has a value of the wrong type."""


class InvalidPackageName(FloodgateError):
    """Raised when a name or request path is not a valid npm package name."""


class NotFound(FloodgateError):
    """Raised when a package, version, dist-tag or tarball does not exist."""


class UpstreamError(FloodgateError):
    """Raised when the upstream registry could not give a usable answer."""


class UpstreamUnavailable(UpstreamError):
    """Raised on timeouts, refused or dropped connections and 5xx answers from the upstream."""


class UpstreamBusy(UpstreamUnavailable):
    """Raised when the upstream answered 429 or 503 with Retry-After, and while that wait lasts
    (the upstream is not asked again before); `retry_after` is the seconds left."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class HostedUnavailable(UpstreamUnavailable):
    """Raised when the store of the packages Floodgate hosts cannot be read or written (the
    shared database or object store is down, the embedded file cannot be written): answered
    503, never as "not published"; a hosted document cached in memory is served stale, like a
    proxied one when the upstream is down."""


class UpstreamBadResponse(UpstreamError):
    """Raised when the upstream answered something unusable: bad JSON, too big, bad integrity."""


class UpstreamRefused(UpstreamBadResponse):
    """Raised when the upstream refuses a package by its policy (451), with its reason."""


class ForbiddenOrigin(UpstreamError):
    """Raised when a URL points outside the configured upstream origin and the allow-list."""


class TarballRejected(FloodgateError):
    """Raised when a tarball cannot be read safely (not gzip, not tar, over a cap)."""


class PolicyError(FloodgateError):
    """Raised when a policy file is malformed; the message names the file, line and key path."""


class ReadOnly(FloodgateError):
    """Raised for write requests: Floodgate is a read-only proxy."""


class RequestTooLarge(FloodgateError):
    """Raised when a client sends a request body over the passthrough limit."""


class PolicyBlocked(FloodgateError):
    """Raised when the policy blocks a package or version; the message is what npm prints."""


class LockfileError(FloodgateError):
    """Raised when a lockfile is missing or malformed; the message names the file and the spot."""


class ClientBusy(FloodgateError):
    """Raised when a client asks for more concurrent work than its share (a second audit while
    its first is running); answered 429 with Retry-After."""


class BadRequest(FloodgateError):
    """Raised when a client's request body is not what the endpoint takes."""


class CacheUnavailable(FloodgateError):
    """Raised when the cache folder cannot be written while serving (disk full, read-only,
    removed); the request gets a 503 with the reason instead of an internal error."""


class Unauthenticated(FloodgateError):
    """Raised when an action needs a token and the request has none: answered 401 with how to
    get one."""


class Forbidden(FloodgateError):
    """Raised when the caller's group may not do this (read or publish a hosted scope), or the
    registry's rules forbid it (republishing a version): answered 403 with the reason."""


class Conflict(FloodgateError):
    """Raised when a hosted document changed since the client (or another replica) read it:
    answered 409; the client retries on the fresh document."""
