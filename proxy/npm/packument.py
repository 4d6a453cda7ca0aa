"""Packuments: parse, summarize, abbreviate, filter and rewrite, then render to served bytes.

Everything here is pure and works on a freshly parsed document that the caller owns; the
functions return new containers for what they change and never mutate their input, so one parse
can feed several renders. `render` is the single entry point the proxy uses, and it is picklable
so that large documents can be rendered in a worker process.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from proxy.errors import UpstreamBadResponse
from proxy.npm.integrity import Digest, expected_digest, needs_shasum
from proxy.npm.names import PackageName
from proxy.npm.semver import Version
from proxy.records import record

ABBREVIATED_MEDIA_TYPE = "application/vnd.npm.install-v1+json"
FULL_MEDIA_TYPE = "application/json"
# gzip level of served packuments. A cold packument's gzip is on the path of the install that
# asked for it: over the 547 packuments of a real install (60 MB abbreviated), level 1 took
# 0.73 s against 1.81 s at level 6, for 10.8 MB against 9.1 MB on the wire.
GZIP_LEVEL = 1
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")

# Per-version fields of the abbreviated ("corgi") form: the registry's documented list plus the
# install-time fields npm records in lockfiles (os, cpu, libc, license, funding).
ABBREVIATED_VERSION_FIELDS = frozenset(
    {
        "name",
        "version",
        "deprecated",
        "dependencies",
        "optionalDependencies",
        "devDependencies",
        "bundleDependencies",
        "bundledDependencies",
        "peerDependencies",
        "peerDependenciesMeta",
        "acceptDependencies",
        "bin",
        "directories",
        "dist",
        "engines",
        "os",
        "cpu",
        "libc",
        "license",
        "funding",
        "_hasShrinkwrap",
        "hasInstallScript",
    }
)

Doc = dict[str, Any]
RenderKeyT = tuple[str, str, str, str]  # (variant, base URL, edits digest, gate salt)


class Variant(StrEnum):
    """The two packument representations a client can ask for."""

    FULL = "full"
    ABBREVIATED = "abbreviated"

    @property
    def media_type(self) -> str:
        return ABBREVIATED_MEDIA_TYPE if self is Variant.ABBREVIATED else FULL_MEDIA_TYPE


@functools.lru_cache(maxsize=256)  # clients send a handful of distinct Accept headers
def negotiate(accept: str | None) -> Variant:
    """Pick the representation from an `Accept` header; no header means full (pacote).

    The abbreviated form is chosen when it is listed with a q-value above zero (media types
    compare case-insensitively); otherwise the full document, the registry's default.
    """
    for item in (accept or "").lower().split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if media != ABBREVIATED_MEDIA_TYPE:
            continue
        q = next((p[2:] for p in params if p.startswith("q=")), "1")
        try:
            return Variant.ABBREVIATED if float(q) > 0 else Variant.FULL
        except ValueError:
            return Variant.ABBREVIATED
    return Variant.FULL


@record
class VersionRef:
    """Where one version's tarball lives upstream, and how to verify it.

    Every version of every cached packument has one (thousands for some packages), so what can
    be derived is not kept: the digest is parsed from `integrity`/`shasum` when asked for (a
    tarball fetch; `shasum` is kept only when `integrity` names no digest), the file name is
    kept only when it is not the registry's default `<bare name>-<version>.tgz`, and the URL
    only when it is not `url_base` and the file name. Measured on a real install's 547
    packuments: the URL and shasum strings, one each per version, scattered among the
    parsed documents' garbage, held 20 MiB of resident memory."""

    version: str
    url_base: str  # what the versions' tarball URLs share before the file name (one string)
    bare: str  # the package name without its scope (one string shared by all versions)
    integrity: str | None
    shasum: str | None
    platform: bool = False  # declares `os`, `cpu` or `libc`: installed only on some machines
    unpacked_size: int | None = None  # dist.unpackedSize, when the registry gives it
    odd_filename: str | None = None  # the tarball's file name when it is not the default
    odd_url: str | None = None  # the tarball URL when it is not `url_base` + file name

    @property
    def filename(self) -> str:
        return self.odd_filename or f"{self.bare}-{self.version}.tgz"

    @property
    def tarball(self) -> str:
        """The tarball's URL as the packument has it ("" when it has none)."""
        return self.url_base + self.filename if self.odd_url is None else self.odd_url

    @property
    def digest(self) -> Digest | None:
        """The strongest of integrity and shasum."""
        return _digest(self.integrity, self.shasum)

    @property
    def store_key(self) -> str:
        """The content-addressed cache key; URL-derived when the registry gave no hash."""
        return _store_key(self.integrity, self.shasum, self.tarball)


# Parsed when asked for (a tarball request asks twice), memoised for the hot tarballs.
@functools.lru_cache(maxsize=4096)
def _digest(integrity: str | None, shasum: str | None) -> Digest | None:
    return expected_digest(integrity, shasum)


@functools.lru_cache(maxsize=4096)
def _store_key(integrity: str | None, shasum: str | None, tarball: str) -> str:
    digest = _digest(integrity, shasum)
    if digest is not None:
        return digest.key
    return "url-" + hashlib.sha256(tarball.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Summary:
    """What the proxy needs from a packument without keeping the parsed document around."""

    name: str
    dist_tags: Mapping[str, str]
    versions: Mapping[str, VersionRef]
    modified: str | None = None
    odd_filenames: Mapping[str, str] = field(default_factory=dict)  # file name -> version

    def resolve(self, spec: str) -> VersionRef | None:
        """A version by exact version or by dist-tag; None when neither exists."""
        ref = self.versions.get(spec)
        if ref is None and spec in self.dist_tags:
            ref = self.versions.get(self.dist_tags[spec])
        return ref

    def for_filename(self, filename: str) -> VersionRef | None:
        """The version whose tarball has this file name: one of `odd_filenames`, or else the
        version a default file name spells."""
        version = self.odd_filenames.get(filename)
        if version is not None:
            return self.versions.get(version)
        prefix = self.name.rsplit("/", 1)[-1] + "-"
        if not (filename.startswith(prefix) and filename.endswith(".tgz")):
            return None
        ref = self.versions.get(filename[len(prefix) : -len(".tgz")])
        return ref if ref is not None and ref.odd_filename is None else None


@dataclass(frozen=True, slots=True)
class Edits:
    """What a policy changes in a packument.

    `hidden` versions disappear. `restricted` (blocked) versions stay, so that every client
    that picks one hears why instead of silently installing an older version: they are listed
    under `policyRestrictions` with `message` (npm fails with its native E403 "due to policy
    violations"), deprecated with their reason (pnpm, yarn 1 and bun print that), and their
    `dist.tarball` points at a blocked URL whose path spells the reason (the one text yarn 4,
    bun and pnpm print of a failed download; `blocked_tarball_url`). `blocked` maps a
    restricted version to its one-line reason. Tags move off restricted versions when a clean
    one is left. `deprecated` maps a version to a warning clients print at install.
    """

    hidden: frozenset[str] = frozenset()
    restricted: frozenset[str] = frozenset()
    message: str = ""
    deprecated: tuple[tuple[str, str], ...] = ()
    blocked: tuple[tuple[str, str], ...] = ()

    def block_reason(self, version: str) -> str:
        """The one-line reason a restricted version is blocked (the shared message if none)."""
        return next((m for v, m in self.blocked if v == version), self.message)

    @property
    def removed(self) -> frozenset[str]:
        return self.hidden | self.restricted

    def __bool__(self) -> bool:
        return bool(self.hidden or self.restricted or self.deprecated)

    @property
    def digest(self) -> str:
        """A short stable digest of the edits, for cache keys and ETags."""
        if not self:
            return "-"
        blob = orjson.dumps(
            [
                sorted(self.hidden),
                sorted(self.restricted),
                self.message,
                sorted(self.deprecated),
                sorted(self.blocked),
            ]
        )
        return hashlib.blake2b(blob, digest_size=8).hexdigest()


NO_EDITS = Edits()


@dataclass(frozen=True, slots=True)
class Rendered:
    """Served bytes of one representation, gzipped and (`body`, None until a client without
    gzip asks: every npm client accepts gzip) plain, with their ETag."""

    body: bytes | None
    gzip: bytes
    etag: str

    @property
    def size(self) -> int:
        return len(self.body or b"") + len(self.gzip)

    @property
    def gzip_plain(self) -> bytes:
        """The plain bytes, kept or gunzipped."""
        return self.body if self.body is not None else gzip.decompress(self.gzip)

    def gzip_only(self) -> Rendered:
        return Rendered(None, self.gzip, self.etag)

    def with_body(self) -> Rendered:
        """This representation with its plain bytes (gunzipped when not kept)."""
        if self.body is not None:
            return self
        return Rendered(self.gzip_plain, self.gzip, self.etag)


def parse(raw: bytes, expected_name: str) -> Doc:
    """Parse an upstream packument; raise UpstreamBadResponse when it is not one."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamBadResponse(
            f"upstream packument for {expected_name!r} is not valid JSON: {exc}"
        ) from exc
    if not isinstance(doc, dict):
        raise UpstreamBadResponse(f"upstream packument for {expected_name!r} is not a JSON object")
    if doc.get("name") not in (None, expected_name):
        raise UpstreamBadResponse(
            f"upstream packument for {expected_name!r} names another package: {doc.get('name')!r}"
        )
    if not isinstance(doc.get("versions", {}), dict):
        raise UpstreamBadResponse(
            f"upstream packument for {expected_name!r}: versions is not a map"
        )
    if not isinstance(doc.get("dist-tags", {}), dict):
        raise UpstreamBadResponse(
            f"upstream packument for {expected_name!r}: dist-tags is not a map"
        )
    return doc


def declares_platform(manifest: Mapping[str, Any]) -> bool:
    """Whether a version's manifest restricts where it installs (`os`, `cpu` or `libc`): a
    platform build, which most machines skip."""
    get = manifest.get
    return bool(get("os") or get("cpu") or get("libc"))


def _versions(doc: Doc) -> dict[str, Doc]:
    """The well-formed version entries; malformed ones (not objects) are dropped."""
    versions = doc.get("versions") or {}
    return {v: m for v, m in versions.items() if isinstance(m, dict)}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def url_leaf(url: str) -> str:
    """The last segment of a URL's path, as `urlsplit(url).path` has it (still %-encoded).

    Called twice per version of every packument (thousands for some), so the usual shape,
    `http(s)://host/path`, is cut by hand; anything else goes through `urlsplit`."""
    if url.startswith("https://"):
        host_at = 8
    elif url.startswith("http://"):
        host_at = 7
    else:
        return urlsplit(url).path.rsplit("/", 1)[-1]
    end = len(url)
    if "?" in url or "#" in url:
        end = min(at for at in (url.find("?"), url.find("#"), end) if at >= 0)
    cut = url.find("/", host_at, end)
    if (
        cut < 0
        or "[" in url[:cut]
        or not url.isascii()
        or "\t" in url
        or "\n" in url
        or "\r" in url
    ):
        return urlsplit(url).path.rsplit("/", 1)[-1]
    return url[url.rfind("/", cut, end) + 1 : end]


def tarball_filename(url: str, package: PackageName, version: str) -> str:
    """The file name of a tarball URL, or the registry's default name when it has none."""
    leaf = url_leaf(url) if url else ""
    name = unquote(leaf) if "%" in leaf else leaf
    if not name.endswith(".tgz") or name.startswith("."):
        return package.default_tarball_filename(version)
    return name


def _joins(url: str, base: str | None, filename: str) -> bool:
    """`url == base + filename`, without making the string."""
    return (
        base is not None
        and len(url) == len(base) + len(filename)
        and url.startswith(base)
        and url.endswith(filename)
    )


def summarize(doc: Doc, package: PackageName) -> Summary:
    """The tarball map, dist-tags and modification time of a parsed packument."""
    refs: dict[str, VersionRef] = {}
    odd: dict[str, str] = {}  # file names that are not the default, to their version
    bare = package.bare
    base = None  # the first URL's part before its file name, shared by the versions' refs
    for version, manifest in _versions(doc).items():
        dist = manifest.get("dist")
        dist = dist if isinstance(dist, dict) else {}
        url = _str(dist.get("tarball"))
        filename = tarball_filename(url, package, version)
        default = filename == package.default_tarball_filename(version)
        if base is None and url.endswith("/" + filename):
            base = url[: -len(filename)]
        size = dist.get("unpackedSize")
        integrity = _str(dist.get("integrity")) or None
        refs[version] = VersionRef(
            version,
            base or "",
            bare,
            integrity,
            (_str(dist.get("shasum")) or None) if needs_shasum(integrity) else None,
            platform=declares_platform(manifest),
            unpacked_size=size if isinstance(size, int) and size >= 0 else None,
            odd_filename=None if default else filename,
            odd_url=None if _joins(url, base, filename) else url,
        )
        if default:  # a later version named so wins over an earlier odd one, as before
            odd.pop(filename, None)
        else:
            odd[filename] = version
    tags = {
        t: v for t, v in (doc.get("dist-tags") or {}).items() if isinstance(v, str) and v in refs
    }
    return Summary(package.name, tags, refs, _modified(doc), odd)


def _modified(doc: Doc) -> str | None:
    time = doc.get("time")
    if isinstance(time, dict) and isinstance(time.get("modified"), str):
        return str(time["modified"])
    modified = doc.get("modified")
    return modified if isinstance(modified, str) else None


def abbreviate_manifest(manifest: Doc) -> Doc:
    """The abbreviated form of one version manifest (with `hasInstallScript`, as registries add)."""
    out = {k: v for k, v in manifest.items() if k in ABBREVIATED_VERSION_FIELDS}
    if "hasInstallScript" not in out and _has_install_script(manifest):
        out["hasInstallScript"] = True
    return out


def abbreviate(doc: Doc) -> Doc:
    """The abbreviated packument, with `time` kept (yarn and pnpm need it; see npm-protocol 3.2)."""
    out: Doc = {"name": doc.get("name"), "dist-tags": doc.get("dist-tags") or {}}
    modified = _modified(doc)
    if modified is not None:
        out["modified"] = modified
    out["versions"] = {v: abbreviate_manifest(m) for v, m in _versions(doc).items()}
    if isinstance(doc.get("time"), dict):
        out["time"] = doc["time"]
    if "policyRestrictions" in doc:
        out["policyRestrictions"] = doc["policyRestrictions"]
    return out


def repair_dist_tags(tags: Mapping[str, str], kept: Collection[str]) -> dict[str, str]:
    """Re-point tags whose version was removed to the highest kept version not above it.

    A tag never moves from a stable version to a prerelease (pnpm #9979); a tag with nowhere to go
    is dropped (as pnpr does), except that `latest` may move above its old target when nothing
    below it is left.
    """
    parsed = sorted((pv, v) for v in kept if (pv := Version.try_parse(v)) is not None)
    kept_set = set(kept)
    out: dict[str, str] = {}
    for tag, target in tags.items():
        if target in kept_set:
            out[tag] = target
            continue
        old = Version.try_parse(target)
        if old is None:
            continue
        eligible = [(pv, v) for pv, v in parsed if old.is_prerelease or not pv.is_prerelease]
        below = [(pv, v) for pv, v in eligible if pv <= old]
        if below:
            out[tag] = below[-1][1]
        elif tag == "latest" and eligible:
            out[tag] = eligible[-1][1]
    return out


def served_dist_tags(
    tags: Mapping[str, str], kept: Collection[str], restricted: Collection[str]
) -> dict[str, str]:
    """Tags over the kept versions, moved off restricted ones while a clean version is left;
    a tag with no clean place to go stays on its restricted target (so that a client that
    follows it reaches the blocked tarball and its reason, not a "no such tag" error)."""
    blocked = set(restricted)
    out = repair_dist_tags(tags, [v for v in kept if v not in blocked])
    kept_set = set(kept)
    for tag, target in tags.items():
        if tag not in out and target in kept_set:
            out[tag] = target
    return out


def apply_edits(doc: Doc, edits: Edits) -> Doc:
    """Remove hidden versions, deprecate warned and blocked ones, add `policyRestrictions`."""
    if not edits:
        return doc
    versions = _versions(doc)
    hidden = edits.hidden
    kept = {v: m for v, m in versions.items() if v not in hidden}
    for version, message in edits.deprecated:
        if version in kept:
            kept[version] = {**kept[version], "deprecated": message}
    for version in edits.restricted & kept.keys():
        kept[version] = {**kept[version], "deprecated": edits.block_reason(version)}
    out = {**doc, "versions": kept}
    out["dist-tags"] = served_dist_tags(doc.get("dist-tags") or {}, kept, edits.restricted)
    time = doc.get("time")
    if isinstance(time, dict):
        out["time"] = {k: t for k, t in time.items() if k not in hidden}
    restricted = {v: abbreviate_manifest(kept[v]) for v in edits.restricted if v in kept}
    if restricted:
        out["policyRestrictions"] = {"message": edits.message, "versions": restricted}
    return out


BLOCKED_PREFIX = "/-/blocked/"
MAX_SLUG = 400  # characters of reason in a blocked URL; longer ones lose their middle


def reason_slug(text: str) -> str:
    """`text` as one URL path segment that reads as the sentence it came from: runs of
    characters outside [A-Za-z0-9.@_~] become one "-" (so nothing needs escaping)."""
    out: list[str] = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch in ".@_~"):
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    slug = "".join(out).strip("-.") or "blocked"
    if len(slug) > MAX_SLUG:
        slug = slug[: MAX_SLUG - 80].rstrip("-") + "--" + slug[-78:].lstrip("-")
    return slug


def blocked_tarball_url(base_url: str, package: PackageName, filename: str, reason: str) -> str:
    """Where a blocked version's tarball is served: `/-/blocked/<reason slug>/<name>/-/<file>`.

    The slug is for people: clients print the URL of a failed download, so it carries the
    reason to those that print nothing else. The server ignores it and decides afresh."""
    tail = proxy_tarball_url("", package, filename)
    return f"{base_url}{BLOCKED_PREFIX}{reason_slug(reason)}{tail}"


_URL_SAFE = "-._~!*()+"
_URL_PLAIN = re.compile(r"[A-Za-z0-9\-._~!*()+]*")  # what `quote(..., _URL_SAFE)` leaves as is


def proxy_tarball_url(base_url: str, package: PackageName, filename: str) -> str:
    """The URL under which the proxy serves a tarball."""
    name = filename if _URL_PLAIN.fullmatch(filename) else quote(filename, safe=_URL_SAFE)
    return f"{base_url}/{package.path}/-/{name}"


def rewrite_manifest(
    manifest: Doc, base_url: str, package: PackageName, edits: Edits = NO_EDITS
) -> Doc:
    """One version manifest with `dist.tarball` pointing at the proxy (at its blocked URL for
    a restricted version); nothing else changes."""
    dist = manifest.get("dist")
    if not isinstance(dist, dict):
        return manifest
    served = _served_tarball(manifest, dist, base_url, package, edits)
    return {**manifest, "dist": {**dist, "tarball": served}}


def rewrite_tarballs(doc: Doc, base_url: str, package: PackageName, edits: Edits = NO_EDITS) -> Doc:
    """The packument with every `dist.tarball` pointing at the proxy (hashes untouched)."""
    versions = {v: rewrite_manifest(m, base_url, package, edits) for v, m in _versions(doc).items()}
    out = {**doc, "versions": versions}
    restrictions = doc.get("policyRestrictions")
    if isinstance(restrictions, dict) and isinstance(restrictions.get("versions"), dict):
        listed = {
            v: rewrite_manifest(m, base_url, package, edits) if isinstance(m, dict) else m
            for v, m in restrictions["versions"].items()
        }
        out["policyRestrictions"] = {**restrictions, "versions": listed}
    return out


def served_document(
    doc: Doc, package: PackageName, variant: Variant, base_url: str, edits: Edits = NO_EDITS
) -> Doc:
    """`rewrite_tarballs(abbreviate(apply_edits(doc, edits)))` (without `abbreviate` for the
    full variant), in one pass over the versions: one new dict per served version, where the
    three steps copy every manifest three times (thousands of them in a big packument)."""
    abbreviated = variant is Variant.ABBREVIATED
    hidden, restricted, warned = edits.hidden, edits.restricted, dict(edits.deprecated)
    kept: dict[str, Doc] = {}  # edited manifests by version, for policyRestrictions
    versions: dict[str, Doc] = {}
    for version, manifest in _versions(doc).items():
        if version in hidden:
            continue
        kept[version] = manifest
        message = edits.block_reason(version) if version in restricted else warned.get(version)
        if abbreviated:
            served = {k: v for k, v in manifest.items() if k in ABBREVIATED_VERSION_FIELDS}
        else:
            served = dict(manifest)
        if message is not None:
            served["deprecated"] = message
            if version in restricted:
                kept[version] = {**manifest, "deprecated": message}
        if abbreviated and "hasInstallScript" not in served and _has_install_script(manifest):
            served["hasInstallScript"] = True
        dist = served.get("dist")
        if isinstance(dist, dict):
            served["dist"] = {
                **dist,
                "tarball": _served_tarball(served, dist, base_url, package, edits),
            }
        versions[version] = served
    out: Doc = {**doc, "versions": versions}
    if edits:
        out["dist-tags"] = served_dist_tags(doc.get("dist-tags") or {}, kept, restricted)
        time = doc.get("time")
        if isinstance(time, dict):
            out["time"] = {k: t for k, t in time.items() if k not in hidden}
        listed = {v: abbreviate_manifest(kept[v]) for v in restricted if v in kept}
        if listed:
            out["policyRestrictions"] = {"message": edits.message, "versions": listed}
    if abbreviated:
        short: Doc = {"name": out.get("name"), "dist-tags": out.get("dist-tags") or {}}
        modified = _modified(out)
        if modified is not None:
            short["modified"] = modified
        short["versions"] = versions
        if isinstance(out.get("time"), dict):
            short["time"] = out["time"]
        if "policyRestrictions" in out:
            short["policyRestrictions"] = out["policyRestrictions"]
        out = short
    restrictions = out.get("policyRestrictions")
    if isinstance(restrictions, dict) and isinstance(restrictions.get("versions"), dict):
        listed = {
            v: rewrite_manifest(m, base_url, package, edits) if isinstance(m, dict) else m
            for v, m in restrictions["versions"].items()
        }
        out["policyRestrictions"] = {**restrictions, "versions": listed}
    return out


def _has_install_script(manifest: Doc) -> bool:
    scripts = manifest.get("scripts")
    return isinstance(scripts, dict) and any(s in scripts for s in INSTALL_SCRIPTS)


def _served_tarball(
    manifest: Doc, dist: Doc, base_url: str, package: PackageName, edits: Edits
) -> str:
    """Where the proxy serves this manifest's tarball (its blocked URL for a restricted one)."""
    url = _str(dist.get("tarball"))
    version = str(manifest.get("version", ""))
    filename = tarball_filename(url, package, version)
    if version in edits.restricted:
        return blocked_tarball_url(base_url, package, filename, edits.block_reason(version))
    return proxy_tarball_url(base_url, package, filename)


def etag_for(body: bytes, variant: Variant, salt: str) -> str:
    """A weak ETag over the served body, its representation and the policy salt."""
    h = hashlib.blake2b(body, digest_size=12)
    h.update(f"\0{variant}\0{salt}".encode())
    return f'W/"{h.hexdigest()}"'


def encode(doc: Doc, variant: Variant, salt: str) -> Rendered:
    """Serialize and gzip one representation."""
    body = orjson.dumps(doc)
    return Rendered(body, gzip.compress(body, GZIP_LEVEL, mtime=0), etag_for(body, variant, salt))


def render(
    raw: bytes | Doc,
    package: PackageName,
    variant: Variant,
    base_url: str,
    edits: Edits = NO_EDITS,
    salt: str = "",
) -> Rendered:
    """Upstream bytes (or the document they parse to, never modified) to served bytes: parse,
    apply edits, abbreviate if asked, rewrite tarballs."""
    parsed = parse(raw, package.name) if isinstance(raw, bytes) else raw
    return encode(served_document(parsed, package, variant, base_url, edits), variant, salt)


def render_version(
    raw: bytes, package: PackageName, version: str, base_url: str, edits: Edits = NO_EDITS
) -> bytes | None:
    """The served manifest of one version (by exact version or dist-tag), or None."""
    doc = apply_edits(parse(raw, package.name), edits)
    tags = doc.get("dist-tags") or {}
    versions = _versions(doc)
    manifest = versions.get(version) or versions.get(tags.get(version, ""))
    if manifest is None:
        return None
    return orjson.dumps(rewrite_manifest(manifest, base_url, package, edits))


def inspect(raw: bytes, package: PackageName) -> Summary:
    """Parse and summarize in one call (the worker-process entry point)."""
    return summarize(parse(raw, package.name), package)
