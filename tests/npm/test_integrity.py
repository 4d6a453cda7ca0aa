"""`expected_digest` (SRI and shasum) and `Hasher`, with real digests of real bytes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from proxy.npm.integrity import Digest, Hasher, expected_digest
from tests.fakes.packages import make_tarball

TGZ = make_tarball({"package.json": b'{"name":"left-pad","version":"1.3.0"}', "index.js": b"1"})
OTHER = make_tarball({"package.json": b'{"name":"left-pad","version":"1.3.1"}', "index.js": b"2"})
# (make_tarball's gzip header carries the current time: rows get explicit ids, not the bytes.)


def b64(algorithm: str, data: bytes = TGZ) -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def raw(algorithm: str, data: bytes = TGZ) -> bytes:
    return hashlib.new(algorithm, data).digest()


SHA1_HEX = hashlib.sha1(TGZ).hexdigest()


@pytest.mark.parametrize(
    ("integrity", "shasum", "algorithm", "value"),
    [
        pytest.param(f"sha512-{b64('sha512')}", None, "sha512", raw("sha512"), id="sha512"),
        pytest.param(
            f"sha512-{b64('sha512')}", SHA1_HEX, "sha512", raw("sha512"), id="integrity-wins"
        ),
        # Several tokens: the strongest, whatever the order.
        pytest.param(
            f"sha1-{b64('sha1')} sha512-{b64('sha512')}",
            None,
            "sha512",
            raw("sha512"),
            id="strongest-of-sha1-sha512",
        ),
        pytest.param(
            f"sha256-{b64('sha256')}  sha384-{b64('sha384')}",
            None,
            "sha384",
            raw("sha384"),
            id="strongest-of-sha256-sha384",
        ),
        pytest.param(
            f"sha512-{b64('sha512')}?foo=bar", None, "sha512", raw("sha512"), id="sri-options"
        ),
        pytest.param(f"\tsha256-{b64('sha256')}\n", None, "sha256", raw("sha256"), id="whitespace"),
        # A broken strongest token does not hide a good weaker one.
        pytest.param(
            f"sha512-***not*base64*** sha1-{b64('sha1')}",
            None,
            "sha1",
            raw("sha1"),
            id="broken-sha512-good-sha1",
        ),
        # Nothing usable in integrity: fall back to the sha1 shasum (hex).
        pytest.param("sha512-", SHA1_HEX, "sha1", raw("sha1"), id="empty-sri-shasum"),
        pytest.param(
            "md5-1B2M2Y8AsgTpgAmY7PhCfg==", SHA1_HEX, "sha1", raw("sha1"), id="md5-shasum"
        ),
        pytest.param("not an sri string", SHA1_HEX, "sha1", raw("sha1"), id="garbage-shasum"),
        pytest.param(None, SHA1_HEX, "sha1", raw("sha1"), id="shasum-only"),
        pytest.param("", SHA1_HEX.upper(), "sha1", raw("sha1"), id="shasum-upper-hex"),
        # Garbage everywhere: nothing to check against.
        pytest.param(None, None, None, None, id="nothing"),
        pytest.param("", "", None, None, id="empty-strings"),
        pytest.param("md5-1B2M2Y8AsgTpgAmY7PhCfg==", None, None, None, id="md5-only"),
        pytest.param(None, "zz" * 20, None, None, id="shasum-not-hex"),
        pytest.param(None, SHA1_HEX[:-2], None, None, id="shasum-19-bytes"),
        pytest.param(None, hashlib.sha256(TGZ).hexdigest(), None, None, id="shasum-is-sha256"),
    ],
)
def test_expected_digest(
    integrity: str | None, shasum: str | None, algorithm: str | None, value: bytes | None
) -> None:
    digest = expected_digest(integrity, shasum)
    if algorithm is None:
        assert digest is None
    else:
        assert digest == Digest(algorithm, value or b"")


def test_digest_spellings() -> None:
    digest = Digest("sha512", raw("sha512"))
    assert digest.sri == f"sha512-{b64('sha512')}"
    assert digest.key == "sha512-" + hashlib.sha512(TGZ).hexdigest()
    assert "/" not in digest.key  # safe as a file name, unlike base64


def feed(hasher: Hasher, data: bytes, chunk: int = 7) -> None:
    for i in range(0, len(data), chunk):
        hasher.update(data[i : i + chunk])


@pytest.mark.parametrize(
    ("expected", "data", "matches"),
    [
        pytest.param(expected_digest(f"sha512-{b64('sha512')}", None), TGZ, True, id="sha512-ok"),
        pytest.param(
            expected_digest(f"sha512-{b64('sha512')}", None), OTHER, False, id="sha512-other"
        ),
        pytest.param(
            expected_digest(f"sha512-{b64('sha512')}", None), TGZ[:-1], False, id="sha512-short"
        ),
        pytest.param(expected_digest(None, SHA1_HEX), TGZ, True, id="sha1-ok"),
        pytest.param(expected_digest(None, SHA1_HEX), OTHER, False, id="sha1-other"),
        pytest.param(expected_digest(f"sha384-{b64('sha384')}", None), TGZ, True, id="sha384-ok"),
        pytest.param(
            expected_digest(f"sha384-{b64('sha384')}", None), TGZ + b"\0", False, id="sha384-long"
        ),
        pytest.param(None, OTHER, True, id="nothing-expected"),
    ],
)
def test_hasher_matches(expected: Digest | None, data: bytes, matches: bool) -> None:
    hasher = Hasher(expected)
    feed(hasher, data)
    assert hasher.matches() is matches
    assert hasher.size == len(data)
    # The sha512 (for storage keys) is computed whatever was expected.
    assert hasher.sha512 == Digest("sha512", hashlib.sha512(data).digest())


def test_hasher_of_nothing() -> None:
    hasher = Hasher(expected_digest(f"sha512-{b64('sha512')}", None))
    assert hasher.size == 0
    assert not hasher.matches()
