"""`dist.integrity` (Subresource Integrity) and `dist.shasum`: parse, hash while streaming."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

# Strongest first; npm writes sha512 (and older packages only a sha1 shasum).
_ALGORITHMS = ("sha512", "sha384", "sha256", "sha1")


@dataclass(frozen=True, slots=True)
class Digest:
    """An expected digest: algorithm name and raw bytes."""

    algorithm: str
    value: bytes

    @property
    def key(self) -> str:
        """A file-name-safe key for content-addressed storage: `sha512-<hex>`."""
        return f"{self.algorithm}-{self.value.hex()}"

    @property
    def sri(self) -> str:
        return f"{self.algorithm}-{base64.b64encode(self.value).decode()}"


_SHA512_SRI = re.compile(r"sha512-[A-Za-z0-9+/]{86}==")


def needs_shasum(integrity: str | None) -> bool:
    """Whether `shasum` could matter to `expected_digest` beside this `integrity`: only when
    the integrity names no digest (absent, or malformed). Kept facts drop it otherwise: a
    40-character string for each of thousands of versions, never read."""
    if integrity is not None and _SHA512_SRI.fullmatch(integrity):
        return False  # npm's own form, checked without decoding it
    return expected_digest(integrity, None) is None


def expected_digest(integrity: str | None, shasum: str | None) -> Digest | None:
    """The strongest digest named by `integrity` (SRI, maybe several) or else by `shasum`."""
    found: dict[str, bytes] = {}
    for token in (integrity or "").split():
        algorithm, _, b64 = token.partition("-")
        b64 = b64.split("?", 1)[0]  # SRI options
        if algorithm in _ALGORITHMS and b64:
            try:
                found.setdefault(algorithm, base64.b64decode(b64, validate=True))
            except (binascii.Error, ValueError):
                continue
    for algorithm in _ALGORITHMS:
        if algorithm in found:
            return Digest(algorithm, found[algorithm])
    if shasum:
        try:
            raw = bytes.fromhex(shasum)
        except ValueError:
            return None
        if len(raw) == 20:
            return Digest("sha1", raw)
    return None


class Hasher:
    """Hashes a stream with the expected algorithm (and sha512, for keys) as bytes go by."""

    def __init__(self, expected: Digest | None):
        self.expected = expected
        self._sha512 = hashlib.sha512()
        self._other = (
            hashlib.new(expected.algorithm)
            if expected is not None and expected.algorithm != "sha512"
            else None
        )
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha512.update(chunk)
        if self._other is not None:
            self._other.update(chunk)
        self.size += len(chunk)

    @property
    def sha512(self) -> Digest:
        return Digest("sha512", self._sha512.digest())

    def matches(self) -> bool:
        """True when the bytes seen match the expected digest (or nothing was expected)."""
        if self.expected is None:
            return True
        got = self._other.digest() if self._other is not None else self._sha512.digest()
        return got == self.expected.value
