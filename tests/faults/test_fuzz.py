"""Property-based fuzzing (Hypothesis) of names, request paths, packuments and tarballs: no 5xx
but the documented upstream ones, no exception in the log, no file outside the cache."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.errors import InvalidPackageName
from proxy.npm.names import PackageName
from proxy.npm.tarball import read_tarball
from tests.conftest import ProxyFactory, RunningProxy
from tests.fakes.packages import clean, make_tarball
from tests.fakes.registry import FakeRegistry
from tests.faults.conftest import LogWatch

UPSTREAM_STATUSES = {502, 503, 504}  # documented: the upstream failed us (README)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples every run: CI stays deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

name_chars = st.sampled_from(list("abcdefghijklmnopqrstuvwxyz0123456789-._~@/%!*'() \\\n\x00é"))
names = st.text(name_chars, max_size=40)
path_chars = st.sampled_from(
    [
        *"abcdefghijklmnopqrstuvwxyz0123456789-._~@/%:+,;=&?#[]!$'()* ",
        *["%2f", "%2F", "%00", "%0a", "%1b", "%2e%2e", "..", "//", "/-/", "%", "%zz", "é"],
    ]
)
paths = st.lists(path_chars, max_size=30).map(lambda parts: "/" + "".join(parts))


@FUZZ
@given(names)
def test_name_parsing_accepts_or_explains(text: str) -> None:
    try:
        name = PackageName.parse(text)
    except InvalidPackageName as exc:
        explained = str(exc)
        assert explained
    else:
        assert name.name
        assert "\n" not in name.name
        assert ".." not in name.path.split("/")


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def check_clean(proxy: RunningProxy, tmp_path: Path, before: set[Path], watch: LogWatch) -> None:
    cache = Path(proxy.settings.cache_dir)
    outside = {p for p in files_under(tmp_path) - before if cache not in p.parents}
    assert outside == set()
    assert not watch.exceptions()


def test_fuzzed_request_paths(
    registry: FakeRegistry, make_proxy: ProxyFactory, log_watch: LogWatch, tmp_path: Path
) -> None:
    registry.add("fg-known", clean("1.0.0"))
    registry.add("@fg-scope/known", clean("1.0.0"))
    proxy = make_proxy()
    before = files_under(tmp_path)

    @FUZZ
    @given(paths, st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]))
    def request(path: str, method: str) -> None:
        r = proxy.client.request(method, path, content=b"{}" if method == "POST" else None)
        assert r.status_code < 500 or r.status_code in UPSTREAM_STATUSES, (path, r.text)

    request()
    check_clean(proxy, tmp_path, before, log_watch)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what JSON encoders agree on
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
PACKUMENT_KEYS = ["name", "versions", "dist-tags", "time", "_id", "readme", "maintainers"]
VERSION_KEYS = ["version", "dist", "dependencies", "scripts", "os", "deprecated", "name"]
DIST_KEYS = ["tarball", "integrity", "shasum", "unpackedSize", "signatures"]


@st.composite
def packuments(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A real packument with some of its fields replaced by arbitrary JSON."""
    doc = copy.deepcopy(base)
    for key in draw(st.lists(st.sampled_from(PACKUMENT_KEYS), max_size=2)):
        doc[key] = draw(json_values)
    version = (
        doc.get("versions", {}).get("1.0.0") if isinstance(doc.get("versions"), dict) else None
    )
    if isinstance(version, dict):
        for key in draw(st.lists(st.sampled_from(VERSION_KEYS), max_size=2)):
            version[key] = draw(json_values)
        if isinstance(version.get("dist"), dict):
            for key in draw(st.lists(st.sampled_from(DIST_KEYS), max_size=2)):
                version["dist"][key] = draw(json_values)
    return doc


def test_fuzzed_packuments(
    registry: FakeRegistry, make_proxy: ProxyFactory, log_watch: LogWatch, tmp_path: Path
) -> None:
    base = registry.add("fg-template", clean("1.0.0"))
    proxy = make_proxy(prefetch_scans=0)
    before = files_under(tmp_path)
    counter = itertools.count()

    @FUZZ
    @given(packuments(orjson.loads(orjson.dumps(base))))
    def serve(doc: dict[str, Any]) -> None:
        name = f"fg-fuzz-{next(counter)}"  # a cold package each time
        if doc.get("name") == "fg-template":
            doc["name"] = doc["_id"] = name
        registry.packuments[name] = doc
        for path in (f"/{name}", f"/{name}/1.0.0", f"/{name}/-/{name}-1.0.0.tgz"):
            r = proxy.client.get(path, headers={"accept": "application/vnd.npm.install-v1+json"})
            assert r.status_code < 500 or r.status_code in UPSTREAM_STATUSES, (path, r.text)

    serve()
    check_clean(proxy, tmp_path, before, log_watch)


@st.composite
def tarballs(draw: st.DrawFn) -> bytes:
    """Real tarballs cut, flipped or spliced, and plain noise."""
    files = draw(
        st.dictionaries(
            st.sampled_from(["package.json", "index.js", "tea.yaml", "../x", "a/b.js", "README"]),
            st.binary(max_size=300),
            max_size=4,
        )
    )
    data = bytearray(make_tarball(files))
    how = draw(st.sampled_from(["as-is", "cut", "flip", "noise"]))
    if how == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    elif how == "noise":
        data = bytearray(draw(st.binary(max_size=600)))
    return bytes(data)


@FUZZ
@given(tarballs())
def test_the_tarball_reader_never_raises(data: bytes) -> None:
    facts = read_tarball(data)
    assert facts.unpacked_size >= 0


def test_fuzzed_tarballs_through_the_proxy(
    registry: FakeRegistry, make_proxy: ProxyFactory, log_watch: LogWatch, tmp_path: Path
) -> None:
    proxy = make_proxy(prefetch_scans=0)
    before = files_under(tmp_path)
    counter = itertools.count()

    @FUZZ
    @given(tarballs())
    def serve(data: bytes) -> None:
        name = f"fg-tgz-{next(counter)}"
        registry.add(name, clean("1.0.0"))
        registry.set_tarball(name, "1.0.0", data)
        r = proxy.client.get(f"/{name}/-/{name}-1.0.0.tgz", follow_redirects=True)
        assert r.status_code in (200, 451), r.text
        if r.status_code == 200:
            assert r.content == data

    serve()
    check_clean(proxy, tmp_path, before, log_watch)
