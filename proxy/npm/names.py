"""`PackageName`: the npm package name grammar, and the registry's URL space for packages.

The grammar follows validate-npm-package-name's rules for names that may exist on a registry
(old packages included, so upper case is accepted): at most 214 characters, only the characters
`encodeURIComponent` leaves alone (`A-Z a-z 0-9 - _ . ! ~ * ' ( )`), no leading `.` or `_`,
and a scoped name is `@scope/name` with both parts following those rules.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

from proxy.errors import InvalidPackageName

MAX_NAME_LENGTH = 214  # characters, scope included (validate-npm-package-name)
_PART = re.compile(r"[A-Za-z0-9\-_.!~*'()]+")
_RESERVED = frozenset({"node_modules", "favicon.ico"})


def _check_part(part: str, whole: str, leading: str) -> None:
    """Check one part; `leading` holds the characters it may not start with."""
    if not part:
        raise InvalidPackageName(f"invalid package name {whole!r}: empty name part")
    if part[0] in leading:
        raise InvalidPackageName(
            f"invalid package name {whole!r}: a name cannot start with {part[0]!r}"
        )
    if not _PART.fullmatch(part):
        bad = sorted({c for c in part if not _PART.fullmatch(c)})
        raise InvalidPackageName(
            f"invalid package name {whole!r}: characters not allowed in a package name: "
            + " ".join(repr(c) for c in bad)
        )


@dataclass(frozen=True, slots=True)
class PackageName:
    """A validated npm package name, scoped (`@scope/name`) or not."""

    scope: str | None
    bare: str

    @classmethod
    def parse(cls, text: str) -> PackageName:
        """Validate `text` (`name` or `@scope/name`); raise InvalidPackageName with the reason."""
        if len(text) > MAX_NAME_LENGTH:
            raise InvalidPackageName(
                f"invalid package name {text[:40]!r}...: longer than {MAX_NAME_LENGTH} characters"
            )
        if text != text.strip():
            raise InvalidPackageName(f"invalid package name {text!r}: leading or trailing spaces")
        if text.startswith("@"):
            scope, sep, bare = text[1:].partition("/")
            if not sep:
                raise InvalidPackageName(
                    f"invalid package name {text!r}: a scoped name is @scope/name"
                )
            # validate-npm-package-name tests `_` on the whole name only, so `@scope/_x` and
            # `@_scope/x` are valid; a leading `.` is refused in either part (no `..` paths).
            _check_part(scope, text, ".")
            _check_part(bare, text, ".")
            return cls(scope, bare)
        if text.lower() in _RESERVED:
            raise InvalidPackageName(f"invalid package name {text!r}: the name is reserved")
        _check_part(text, text, "._")
        return cls(None, text)

    @property
    def name(self) -> str:
        """The name as npm writes it: `name` or `@scope/name`."""
        return self.bare if self.scope is None else f"@{self.scope}/{self.bare}"

    @property
    def escaped(self) -> str:
        """The name as a single URL path segment, as npm sends it (`@scope%2fname`)."""
        return self.bare if self.scope is None else f"@{self.scope}%2f{self.bare}"

    @property
    def path(self) -> str:
        """The name as a URL path prefix for tarballs (`@scope/name`), as registries write it."""
        return self.name

    def default_tarball_filename(self, version: str) -> str:
        """The file name a registry gives the tarball of `version`: the bare name, no scope."""
        return f"{self.bare}-{version}.tgz"

    def __str__(self) -> str:
        return self.name


class Target(StrEnum):
    """What a package URL asks for."""

    PACKUMENT = "packument"
    VERSION = "version"
    TARBALL = "tarball"


@dataclass(frozen=True, slots=True)
class PackagePath:
    """A parsed package URL: the package, what is asked for, and its argument (version or file)."""

    package: PackageName
    target: Target
    arg: str = ""


@functools.lru_cache(maxsize=16384)  # hot paths repeat; parsing is pure
def parse_package_path(raw_path: str) -> PackagePath:
    """Parse a request path as sent on the wire (percent-encoding intact).

    Accepts every spelling clients use for scoped names: `/@scope%2fname`, `/@scope%2Fname` and
    `/@scope/name`. Shapes: `/{name}`, `/{name}/{version-or-tag}`, `/{name}/-/{file}.tgz`.
    Raises InvalidPackageName for anything else.
    """
    segments = [unquote(s) for s in raw_path.split("/")[1:]]
    if segments and segments[-1] == "" and len(segments) > 1:
        segments.pop()  # a trailing slash
    if not segments or not segments[0]:
        raise InvalidPackageName("no package name in the request path")
    first = segments.pop(0)
    if first.startswith("@") and "/" not in first:
        if not segments:
            raise InvalidPackageName(
                f"invalid package name {first!r}: a scoped name is @scope/name"
            )
        first = f"{first}/{segments.pop(0)}"
    package = PackageName.parse(first)
    if not segments:
        return PackagePath(package, Target.PACKUMENT)
    if len(segments) == 1 and segments[0] and "/" not in segments[0]:
        return PackagePath(package, Target.VERSION, segments[0])
    if len(segments) == 2 and segments[0] == "-" and segments[1].endswith(".tgz"):
        filename = segments[1]
        if "/" in filename or filename in {".tgz", "..tgz"} or filename.startswith("."):
            raise InvalidPackageName(f"invalid tarball file name {filename!r}")
        return PackagePath(package, Target.TARBALL, filename)
    raise InvalidPackageName(f"{raw_path!r} is not a package, version or tarball path")
