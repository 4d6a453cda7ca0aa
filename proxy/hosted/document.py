"""The write side of the registry protocol as pure functions over a hosted package's document.

A hosted document is a full packument (`_id`, `_rev`, `name`, `dist-tags`, `versions`,
`time`, plus `description`/`readme` and the like copied from the newest publish). Each
function here takes the stored document (a dict; never modified) and what a client sent, and
returns the new document and the changes made, or raises a `BadRequest` (or `Forbidden`,
`NotFound`, `RequestTooLarge`) whose message is what the client prints. No I/O: the service
loads, checks access, inspects and stores around them.

The rules, as the npm registry applies them:
- `npm publish` sends one version with its tarball in `_attachments` (base64). The tarball must
  be a packed npm package whose `package.json` names the same package and version; integrity
  and shasum are computed here, and a client-sent one that differs is refused.
- A version, once published, is immutable and never reused, even after it is unpublished
  (`time` keeps it): publishing it again is refused with npm's wording.
- `npm deprecate` and `npm unpublish <pkg>@<version>` send the whole document back (`PUT`),
  based on a revision (`_rev`, or `/-rev/<rev>` in the URL for an unpublish): a version's
  `deprecated` and the dist-tags may change, and on `/-rev/` versions may be removed; other
  edits of a version are ignored; a version added without a tarball, or a document without
  `versions` (npm star, npm owner), is refused.
- Tags are not versions: a tag that parses as a version is refused, `latest` cannot be removed,
  and a tag must point at a published version.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.errors import BadRequest, Forbidden, NotFound, RequestTooLarge
from proxy.npm.names import PackageName
from proxy.npm.semver import Version
from proxy.npm.tarball import ProblemKind, TarballFacts

HOSTED_SCHEME = "floodgate-hosted:"  # stored tarball URLs; every render rewrites them
TAG = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
# Top-level fields copied from the manifest of the version `latest` points at, as npm does.
COPIED_FIELDS = (
    "description",
    "keywords",
    "license",
    "homepage",
    "repository",
    "bugs",
    "author",
    "contributors",
)
MAX_README = 64 * 1024  # characters of readme kept at the top level, as the registry does
UNREADABLE = frozenset(
    {ProblemKind.NOT_GZIP, ProblemKind.BAD_GZIP, ProblemKind.BAD_TAR, ProblemKind.TRUNCATED}
)


@dataclass(frozen=True, slots=True)
class Publication:
    """One version a client asks to publish, checked: its manifest (with `dist` filled in),
    tarball bytes, the tags to point at it and the top-level fields the client sent."""

    name: str
    version: str
    manifest: dict[str, Any]
    tarball: bytes
    filename: str
    tags: tuple[str, ...]
    readme: str | None
    sha512_hex: str

    @property
    def integrity(self) -> str:
        return "sha512-" + base64.b64encode(bytes.fromhex(self.sha512_hex)).decode()


@dataclass(frozen=True, slots=True)
class Change:
    """One change to a hosted document, for the audit log."""

    event: str  # publish, unpublish, deprecate, dist-tag
    version: str
    detail: str


def tarball_url(package: PackageName, filename: str) -> str:
    return f"{HOSTED_SCHEME}/{package.path}/-/{filename}"


def next_rev(rev: str | None, body: bytes) -> str:
    """CouchDB-style `<n>-<hash>` revision after `rev` (pure)."""
    n = 0
    if rev:
        head, _, _ = rev.partition("-")
        n = int(head) if head.isdigit() else 0
    return f"{n + 1}-{hashlib.sha256(body).hexdigest()[:32]}"


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    return _object(data, "the request body")


def is_publish(doc: Mapping[str, Any]) -> bool:
    """A `PUT /<name>` with a tarball attached is a publish; without, a metadata update."""
    attachments = doc.get("_attachments")
    return isinstance(attachments, dict) and bool(attachments)


def parse_publication(
    doc: Mapping[str, Any], package: PackageName, max_bytes: int
) -> tuple[Publication, bytes]:
    """The one version and tarball of a publish body, checked against the URL's name (pure
    but for base64 decoding). Returns the publication (its manifest's `dist` not yet checked
    against the tarball: see `check_tarball`)."""
    name = package.name
    if doc.get("name") != name or doc.get("_id", name) != name:
        raise BadRequest(f"the document names {doc.get('name')!r} but was sent to {name!r}")
    versions = _object(doc.get("versions"), "versions")
    if len(versions) != 1:
        raise BadRequest(f"a publish carries exactly one version; this one has {len(versions)}")
    ((version, manifest),) = versions.items()
    manifest = copy.deepcopy(_object(manifest, f"versions[{version!r}]"))
    parsed = Version.try_parse(version) if isinstance(version, str) else None
    if parsed is None or str(parsed) != version:
        raise BadRequest(f"{version!r} is not a valid semver version")
    if manifest.get("name") != name or manifest.get("version") != version:
        raise BadRequest(
            f"versions[{version!r}] says it is {manifest.get('name')!r}@"
            f"{manifest.get('version')!r}, not {name}@{version}"
        )
    attachments = _object(doc.get("_attachments"), "_attachments")
    if len(attachments) != 1:
        raise BadRequest(f"a publish carries exactly one tarball; this one has {len(attachments)}")
    ((filename, attachment),) = attachments.items()
    attachment = _object(attachment, "the attachment")
    expected_file = f"{package.bare}-{version}.tgz"
    if filename != expected_file and filename != f"{name}-{version}.tgz":
        raise BadRequest(f"the tarball is named {filename!r}; expected {expected_file!r}")
    data = attachment.get("data")
    if not isinstance(data, str):
        raise BadRequest("the attachment has no base64 `data`")
    if len(data) > (max_bytes * 4) // 3 + 4:
        raise RequestTooLarge(f"the tarball is over {max_bytes // (1024 * 1024)} MB")
    try:
        tarball = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the attachment's data is not valid base64: {exc}") from None
    length = attachment.get("length")
    if length is not None and length != len(tarball):
        raise BadRequest(
            f"the attachment says it is {length} bytes; its data is {len(tarball)} bytes"
        )
    tags = _object(doc.get("dist-tags", {}), "dist-tags")
    for tag, target in tags.items():
        if target != version:
            raise BadRequest(f"dist-tag {tag!r} points at {target!r}, not at {version}")
        check_tag(tag)
    digest = hashlib.sha512(tarball).hexdigest()
    readme = doc.get("readme")
    pub = Publication(
        name,
        version,
        manifest,
        tarball,
        expected_file,
        tuple(tags) or ("latest",),
        readme if isinstance(readme, str) else None,
        digest,
    )
    _check_dist(pub)
    return pub, tarball


def _check_dist(pub: Publication) -> None:
    """Fill in `dist` (integrity, shasum, tarball URL); a client-sent value must match."""
    dist = pub.manifest.get("dist")
    dist = dict(dist) if isinstance(dist, dict) else {}
    shasum = hashlib.sha1(pub.tarball, usedforsecurity=False).hexdigest()
    sent_integrity = dist.get("integrity")
    if sent_integrity is not None and sent_integrity != pub.integrity:
        raise BadRequest(
            "the tarball's sha512 integrity does not match dist.integrity: it was changed in "
            "transit or the document was built for another tarball"
        )
    if dist.get("shasum") is not None and dist.get("shasum") != shasum:
        raise BadRequest("the tarball's sha1 does not match dist.shasum")
    dist.update(integrity=pub.integrity, shasum=shasum)
    pub.manifest["dist"] = dist


def check_tarball(pub: Publication, facts: TarballFacts) -> None:
    """Refuse a tarball that is not a packed npm package of this very version (pure)."""
    for problem in facts.problems:
        if problem.kind in UNREADABLE or problem.kind.hostile:
            raise BadRequest(
                f"the tarball is not a safe npm package: {problem.kind.value} at "
                f"{problem.path!r} ({problem.detail})"
            )
    pj = facts.package_json
    if pj is None:
        raise BadRequest("the tarball has no package/package.json")
    if pj.get("name") != pub.name or pj.get("version") != pub.version:
        raise BadRequest(
            f"the tarball's package.json is {pj.get('name')!r}@{pj.get('version')!r}; the "
            f"document publishes {pub.name}@{pub.version}"
        )
    confused = manifest_confusion(pub.manifest, pj)
    if confused:
        raise BadRequest(
            f"the document's {confused} differs from the tarball's package.json (manifest "
            "confusion: installers would follow the document, reviewers read the tarball)"
        )


DEPENDENCY_MAPS = ("dependencies", "optionalDependencies", "peerDependencies")
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")


def manifest_confusion(manifest: Mapping[str, Any], pj: Mapping[str, Any]) -> str:
    """What an install would read from the document that the tarball's package.json does not
    say ("" when nothing, pure): a dependency (name and range) or an install script. Clients
    normalise when they publish (optional dependencies also listed as dependencies, npm's
    `install: node-gyp rebuild` for a binding.gyp), so the document may repeat what the
    package.json says elsewhere, never add to it."""
    declared: dict[str, set[object]] = {}
    for key in DEPENDENCY_MAPS:
        deps = pj.get(key)
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                declared.setdefault(dep, set()).add(spec)
    for key in DEPENDENCY_MAPS:
        deps = manifest.get(key)
        if not isinstance(deps, dict):
            continue
        for dep, spec in deps.items():
            if spec not in declared.get(dep, set()):
                return f"{key} entry {dep}@{spec}"
    scripts = manifest.get("scripts")
    own = pj.get("scripts")
    own = own if isinstance(own, dict) else {}
    if isinstance(scripts, dict):
        for key in INSTALL_SCRIPTS:
            script = scripts.get(key)
            if script is None or script == own.get(key):
                continue
            if key == "install" and script == "node-gyp rebuild":
                continue
            return f"scripts.{key}"
    return ""


def check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not TAG.match(tag):
        raise BadRequest(f"{tag!r} is not a valid dist-tag (a letter, then letters, digits, . _ -)")
    if Version.try_parse(tag) is not None:
        raise BadRequest(f"{tag!r} looks like a version: a dist-tag must not")
    return tag


def _copy(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a document that the functions here may change: the top level and the
    `versions`, `time` and `dist-tags` maps are new; the manifests are shared (a function that
    changes one copies it first). A deep copy of a 1,000-version document costs ~17 ms."""
    doc = dict(stored) if stored else {}
    for key in ("versions", "time", "dist-tags"):
        if isinstance(doc.get(key), dict):
            doc[key] = dict(doc[key])
    return doc


def _versions(doc: Mapping[str, Any]) -> dict[str, Any]:
    versions = doc.get("versions")
    return versions if isinstance(versions, dict) else {}


def _times(doc: Mapping[str, Any]) -> dict[str, Any]:
    times = doc.get("time")
    return times if isinstance(times, dict) else {}


def _highest(versions: Mapping[str, Any]) -> str | None:
    parsed = [(v, text) for text in versions if (v := Version.try_parse(text)) is not None]
    releases = [p for p in parsed if not p[0].is_prerelease] or parsed
    return max(releases)[1] if releases else None


def published_at(doc: Mapping[str, Any], version: str) -> str | None:
    value = _times(doc).get(version)
    return value if isinstance(value, str) else None


def apply_publish(
    stored: Mapping[str, Any] | None, pub: Publication, package: PackageName, now: str
) -> tuple[dict[str, Any], list[Change]]:
    """The document after publishing `pub` (`now`: ISO time)."""
    doc = _copy(stored)
    versions = _versions(doc)
    times = _times(doc)
    if pub.version in versions or pub.version in times:
        raise Forbidden(
            f"You cannot publish over the previously published versions: {pub.version}.",
        )
    manifest = dict(pub.manifest)
    manifest["_id"] = f"{pub.name}@{pub.version}"
    manifest["dist"] = {**manifest["dist"], "tarball": tarball_url(package, pub.filename)}
    for private in ("_attachments", "readme"):
        manifest.pop(private, None)
    versions[pub.version] = manifest
    times.setdefault("created", now)
    times[pub.version] = now
    times["modified"] = now
    times.pop("unpublished", None)
    tags = doc.get("dist-tags")
    tags = dict(tags) if isinstance(tags, dict) else {}
    for tag in pub.tags:
        tags[tag] = pub.version
    if "latest" not in tags:  # a first publish under another tag: latest is still required
        tags["latest"] = pub.version
    doc.update(_id=pub.name, name=pub.name, versions=versions, time=times)
    doc["dist-tags"] = tags
    if tags["latest"] == pub.version:
        for key in COPIED_FIELDS:
            if key in manifest:
                doc[key] = manifest[key]
            else:
                doc.pop(key, None)
        if pub.readme is not None:
            doc["readme"] = pub.readme[:MAX_README]
    changes = [Change("publish", pub.version, f"tags: {', '.join(pub.tags)}")]
    return doc, changes


def written_rev(incoming: Mapping[str, Any], path_rev: str | None) -> str:
    """The revision a document write was based on: the URL's (`/-rev/<rev>`), else the
    document's `_rev` (npm deprecate sends it there). A write without one is refused: applied
    to whatever is stored now, a stale copy would undo other people's changes."""
    rev = path_rev or incoming.get("_rev")
    if not isinstance(rev, str) or not rev:
        raise BadRequest(
            "the document has no _rev: read it with ?write=true and send it back with its _rev"
        )
    return rev


def apply_update(
    stored: Mapping[str, Any], incoming: Mapping[str, Any], now: str, *, unpublish: bool
) -> tuple[dict[str, Any], list[Change]]:
    """The document after a client's `PUT` of the whole document without a tarball: changes
    of `deprecated` (npm deprecate), removed versions (npm unpublish of one version, which
    writes to `/-rev/<rev>`: `unpublish`) and dist-tags. Other differences in a version are
    ignored; a body without `versions` (npm star, npm owner) is refused, never read as
    "remove every version"."""
    doc = _copy(stored)
    versions = _versions(doc)
    if not isinstance(incoming.get("versions"), dict):
        raise BadRequest(
            "Floodgate takes publishes, deprecations, unpublishes and dist-tags for hosted "
            "packages; this document write has no versions (npm star and npm owner are not "
            "supported)"
        )
    sent = _object(incoming["versions"], "versions")
    removed_versions = sorted(set(versions) - set(sent))
    if removed_versions and not unpublish:
        raise BadRequest(
            f"{', '.join(removed_versions)}: versions are removed with npm unpublish "
            "(PUT /<name>/-rev/<rev>), not by a document write"
        )
    added = sorted(set(sent) - set(versions))
    if added:
        raise BadRequest(
            f"{', '.join(added)}: a new version is published with its tarball (npm publish), "
            "not by editing the document"
        )
    changes: list[Change] = []
    for version in removed_versions:
        doc, removed = remove_version(doc, version, now)
        changes.extend(removed)
        versions = _versions(doc)
    for version, manifest in sent.items():
        manifest = _object(manifest, f"versions[{version!r}]")
        before = versions[version].get("deprecated")
        after = manifest.get("deprecated")
        if after is not None and not isinstance(after, str):
            raise BadRequest(f"versions[{version!r}].deprecated must be a string")
        if (before or "") == (after or ""):
            continue
        versions[version] = dict(versions[version])  # shared with the stored document
        if after:
            versions[version]["deprecated"] = after
            changes.append(Change("deprecate", version, after))
        else:
            versions[version].pop("deprecated", None)
            changes.append(Change("deprecate", version, "undeprecated"))
    sent_tags = incoming.get("dist-tags")
    if isinstance(sent_tags, dict):
        for tag, target in sent_tags.items():
            if _object(doc["dist-tags"], "dist-tags").get(tag) != target:
                doc, tagged = set_tag(doc, tag, target, now)
                changes.extend(tagged)
    if changes:
        _times(doc)["modified"] = now
    return doc, changes


def remove_version(
    stored: Mapping[str, Any], version: str, now: str
) -> tuple[dict[str, Any], list[Change]]:
    """The document without `version` (its `time` entry stays: the number is never reused);
    tags that pointed at it are dropped, `latest` moves to the highest version left."""
    doc = _copy(stored)
    versions = _versions(doc)
    if version not in versions:
        raise NotFound(f"{doc.get('name')}@{version} is not published")
    del versions[version]
    tags = {t: v for t, v in _object(doc.get("dist-tags", {}), "dist-tags").items() if v != version}
    highest = _highest(versions)
    if "latest" not in tags and highest is not None:
        tags["latest"] = highest
    doc["dist-tags"] = tags
    times = _times(doc)
    times["modified"] = now
    if not versions:
        times["unpublished"] = {"time": now, "versions": [version]}
    return doc, [Change("unpublish", version, "version unpublished")]


def set_tag(
    stored: Mapping[str, Any], tag: object, version: object, now: str
) -> tuple[dict[str, Any], list[Change]]:
    tag = check_tag(tag)
    doc = _copy(stored)
    if not isinstance(version, str) or version not in _versions(doc):
        raise BadRequest(f"{doc.get('name')}@{version} is not published: cannot tag it {tag}")
    tags = dict(_object(doc.get("dist-tags", {}), "dist-tags"))
    tags[tag] = version
    doc["dist-tags"] = tags
    _times(doc)["modified"] = now
    return doc, [Change("dist-tag", version, f"{tag} -> {version}")]


def remove_tag(
    stored: Mapping[str, Any], tag: str, now: str
) -> tuple[dict[str, Any], list[Change]]:
    doc = _copy(stored)
    tags = dict(_object(doc.get("dist-tags", {}), "dist-tags"))
    if tag == "latest":
        raise BadRequest("the latest tag cannot be removed; point it at another version")
    if tag not in tags:
        raise NotFound(f"{doc.get('name')} has no dist-tag {tag!r}")
    version = tags.pop(tag)
    doc["dist-tags"] = tags
    _times(doc)["modified"] = now
    return doc, [Change("dist-tag", str(version), f"{tag} removed")]


def live_versions(doc: Mapping[str, Any]) -> dict[str, Any]:
    return _versions(doc)
