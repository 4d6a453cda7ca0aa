"""Semantic versions and npm's range grammar (node-semver), enough for registries and policies.

`Version.parse` accepts SemVer 2.0 (with a leading `v` or `=` tolerated, as node-semver's loose
mode does). `Range.parse` accepts npm ranges: `||` unions, comparator sets, hyphen ranges, x-ranges,
`~` and `^`. As in node-semver, a prerelease version satisfies a range only when a comparator of
the same comparator set names the same `major.minor.patch` with a prerelease tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(
    r"^\s*[v=]*\s*(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\s*$"
)
_PARTIAL = re.compile(
    r"^[v=]*(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*])(?:\.(?P<patch>\d+|[xX*])"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?)?)?$"
)
_COMPARATOR = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?\s*(.*)$")
_HYPHEN = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")
_MAX_LENGTH = 256  # node-semver's MAX_LENGTH


class SemverError(ValueError):
    """Raised when a version or range does not parse."""


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A SemVer 2.0 version; build metadata is dropped (it has no precedence)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse `text`; raise SemverError when it is not a version."""
        if len(text) > _MAX_LENGTH:
            raise SemverError(f"version longer than {_MAX_LENGTH} characters")
        m = _VERSION.match(text)
        if not m:
            raise SemverError(f"not a semantic version: {text!r}")
        pre = tuple(int(p) if p.isdigit() else p for p in m[4].split(".")) if m[4] else ()
        return cls(int(m[1]), int(m[2]), int(m[3]), pre)

    @classmethod
    def try_parse(cls, text: str) -> Version | None:
        """Like `parse`, but None for text that is not a version."""
        try:
            return cls.parse(text)
        except SemverError:
            return None

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its prereleases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return base + ("-" + ".".join(str(p) for p in self.prerelease) if self.prerelease else "")


@dataclass(frozen=True, slots=True)
class Comparator:
    """One `op version` test, op in <, <=, >, >=, =."""

    op: str
    version: Version

    def test(self, v: Version) -> bool:
        if self.op == "=":
            return v == self.version
        if self.op == "<":
            return v < self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        return v >= self.version


_ANY: tuple[Comparator, ...] = (Comparator(">=", Version(0, 0, 0)),)


def _partial(text: str) -> tuple[int | None, int | None, int | None, tuple[int | str, ...]]:
    m = _PARTIAL.match(text)
    if not m:
        raise SemverError(f"not a version or partial version: {text!r}")

    def num(part: str | None) -> int | None:
        return None if part is None or part in ("x", "X", "*") else int(part)

    major, minor, patch = num(m["major"]), num(m["minor"]), num(m["patch"])
    if major is None:
        minor = patch = None
    elif minor is None:
        patch = None
    pre = tuple(int(p) if p.isdigit() else p for p in m["pre"].split(".")) if m["pre"] else ()
    return major, minor, patch, pre


def _lower_bound_exclusive_cap(major: int, minor: int | None) -> Version:
    # The first version past an x-range: `1` -> 2.0.0-0, `1.2` -> 1.3.0-0.
    return Version(major + 1, 0, 0, (0,)) if minor is None else Version(major, minor + 1, 0, (0,))


def _desugar(op: str, text: str) -> tuple[Comparator, ...]:
    major, minor, patch, pre = _partial(text)
    if op in ("~", "~>"):
        if major is None:
            return _ANY
        low = Version(major, minor or 0, patch or 0, pre)
        high = _lower_bound_exclusive_cap(major, minor)
        return (Comparator(">=", low), Comparator("<", high))
    if op == "^":
        if major is None:
            return _ANY
        low = Version(major, minor or 0, patch or 0, pre)
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0, (0,))
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0, (0,))
        else:
            high = Version(0, 0, patch + 1, (0,))
        return (Comparator(">=", low), Comparator("<", high))
    if major is None:
        return (Comparator("<", Version(0, 0, 0, (0,))),) if op in ("<", ">") else _ANY
    if minor is None or patch is None:  # an x-range with an operator
        low = Version(major, minor or 0, 0)
        high = _lower_bound_exclusive_cap(major, minor)
        if op in ("", "="):
            return (Comparator(">=", low), Comparator("<", high))
        if op == ">":
            return (Comparator(">=", Version(high.major, high.minor, high.patch)),)
        if op == ">=":
            return (Comparator(">=", low),)
        if op == "<":
            return (Comparator("<", Version(low.major, low.minor, low.patch, (0,))),)
        return (Comparator("<", high),)  # <=
    return (Comparator(op or "=", Version(major, minor, patch, pre)),)


def _hyphen(low_text: str, high_text: str) -> tuple[Comparator, ...]:
    lmaj, lmin, lpat, lpre = _partial(low_text)
    hmaj, hmin, hpat, hpre = _partial(high_text)
    out: list[Comparator] = []
    if lmaj is not None:
        out.append(Comparator(">=", Version(lmaj, lmin or 0, lpat or 0, lpre)))
    if hmaj is not None:
        if hmin is None or hpat is None:
            out.append(Comparator("<", _lower_bound_exclusive_cap(hmaj, hmin)))
        else:
            out.append(Comparator("<=", Version(hmaj, hmin, hpat, hpre)))
    return tuple(out) or _ANY


def _comparator_set(text: str) -> tuple[Comparator, ...]:
    text = text.strip()
    if not text:
        return _ANY
    hy = _HYPHEN.match(text)
    if hy:
        return _hyphen(hy[1], hy[2])
    # Glue operators to their versions (`>= 1.2.3` -> `>=1.2.3`), then split on spaces.
    tokens = re.sub(r"(<=|>=|<|>|=|~>|~|\^)\s+", r"\1", text).split()
    out: list[Comparator] = []
    for token in tokens:
        m = _COMPARATOR.match(token)
        assert m is not None  # the pattern accepts any string
        out.extend(_desugar(m[1] or "", m[2]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Range:
    """An npm semver range: a union of comparator sets."""

    sets: tuple[tuple[Comparator, ...], ...]
    raw: str = ""

    @classmethod
    def parse(cls, text: str) -> Range:
        """Parse an npm range; raise SemverError with the reason when it does not parse."""
        if len(text) > _MAX_LENGTH:
            raise SemverError(f"range longer than {_MAX_LENGTH} characters")
        try:
            return cls(tuple(_comparator_set(part) for part in text.split("||")), text)
        except SemverError as exc:
            raise SemverError(f"invalid semver range {text!r}: {exc}") from None

    def contains(self, version: Version | str) -> bool:
        """True when `version` satisfies the range (node-semver's prerelease rule included)."""
        v = version if isinstance(version, Version) else Version.try_parse(version)
        if v is None:
            return False
        return any(_set_contains(s, v) for s in self.sets)

    def __str__(self) -> str:
        return self.raw


def _set_contains(comparators: tuple[Comparator, ...], v: Version) -> bool:
    if not all(c.test(v) for c in comparators):
        return False
    if not v.prerelease:
        return True
    return any(c.version.prerelease and c.version.release == v.release for c in comparators)


def max_satisfying(versions: list[str], rng: Range) -> str | None:
    """The highest of `versions` inside `rng`, or None."""
    best: tuple[Version, str] | None = None
    for text in versions:
        v = Version.try_parse(text)
        if v is not None and rng.contains(v) and (best is None or v > best[0]):
            best = (v, text)
    return best[1] if best else None
