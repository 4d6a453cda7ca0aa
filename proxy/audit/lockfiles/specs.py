"""Dependency specs as lockfiles write them: `name@range`, `npm:` aliases, and where a package
comes from (registry, git, file, link or something else)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from proxy.audit.model import Source

# npm-package-arg's hosted-git shorthands and git URL forms
_GIT_PREFIXES = ("git+", "git:", "git@", "github:", "gitlab:", "bitbucket:", "gist:")
# pnpm 6 keys for hosted git packages: `github.com/user/repo/<sha>`
_GIT_HOSTS = ("github.com/", "gitlab.com/", "bitbucket.org/")
_LINK_PREFIXES = ("link:", "workspace:", "portal:")
_LOCAL_PATHS = ("./", "../", "/", "~/")
# `user/repo` or `user/repo#ref`: npm reads a bare two-part path as a GitHub repository
_GITHUB_SHORTHAND = re.compile(r"[\w.-]+/[\w.-]+(#.*)?")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
_VERSION = re.compile(r"v?\d")


def split_name(spec: str) -> tuple[str, str] | None:
    """`name@rest` → `(name, rest)`; a scope's leading `@` belongs to the name.

    The first `@` after the name splits, so `rest` may itself hold `@` (`npm:x@1`, git URLs).
    Returns None when there is no name or no `@`.
    """
    at = spec.find("@", 1)
    if at <= 0:
        return None
    return spec[:at], spec[at + 1 :]


def parse_alias(spec: str) -> tuple[str, str] | None:
    """`npm:lodash@4.17.21` → `("lodash", "4.17.21")`; `npm:lodash` → `("lodash", "")`.

    Returns None when `spec` is not an `npm:` alias.
    """
    if not spec.startswith("npm:"):
        return None
    target = spec[4:]
    parts = split_name(target)
    if parts is None:
        return (target, "") if target and not target.endswith("@") else None
    return parts if parts[0] else None


def strip_peers(version: str) -> str:
    """pnpm's peer suffix off a version: `18.2.0(react@18.2.0)(x@1.0.0)` → `18.2.0`."""
    paren = version.find("(")
    return version[:paren] if paren >= 0 else version


def is_version(text: str) -> bool:
    """Whether `text` looks like an exact version rather than a URL, path or protocol spec."""
    return bool(_VERSION.match(text)) and ":" not in text and "/" not in text


def is_registry_tarball(url: str) -> bool:
    """A registry's tarball URL (`<host>/<name>/-/<file>.tgz`), on any host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and "/-/" in parts.path and parts.path.endswith(".tgz")


def _url_source(url: str) -> Source:
    try:
        parts = urlsplit(url)
    except ValueError:
        return Source.OTHER
    host = (parts.hostname or "").lower()
    # hosted-git archives: GitHub's codeload and GitLab's `/-/archive/` (checked before `/-/`)
    if host == "codeload.github.com" or "/-/archive/" in parts.path:
        return Source.GIT
    if parts.path.endswith(".git") or parts.fragment.startswith("commit="):
        return Source.GIT
    return Source.REGISTRY if is_registry_tarball(url) else Source.OTHER


def source_of(spec: str | None) -> Source:
    """Where a package with this `resolved` value or version spec comes from.

    None, versions, ranges and `npm:` aliases are the registry; so are registry tarball URLs of any
    host. Git URLs and shorthands are git; `file:` and local paths are file; `link:`, `workspace:`
    and `portal:` are link; other URLs and unknown protocols are other.
    """
    if not spec:
        return Source.REGISTRY
    lower = spec.lower()
    if lower.startswith(_GIT_PREFIXES) or lower.startswith(_GIT_HOSTS):
        return Source.GIT
    if lower.startswith("file:") or spec.startswith(_LOCAL_PATHS):
        return Source.FILE
    if lower.startswith(_LINK_PREFIXES):
        return Source.LINK
    if lower.startswith(("http://", "https://")):
        return _url_source(spec)
    if lower.startswith("npm:"):
        return Source.REGISTRY
    if _SCHEME.match(spec):
        return Source.OTHER
    if _GITHUB_SHORTHAND.fullmatch(spec):
        return Source.GIT
    return Source.REGISTRY
