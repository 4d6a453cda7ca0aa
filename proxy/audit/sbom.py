"""The lockfile's tree as a CycloneDX 1.5 JSON SBOM, with Floodgate's verdicts (`--sbom FILE`).

Every locked package is a `library` component. A registry package is identified by its purl
(`pkg:npm/%40scope/name@1.0.0`, the real package for an `npm:` alias); a git, file or link
dependency has no purl, since the registry name would point at another package. The verdict
and the policy's decision are component properties:

    floodgate:checkable  "true" | "false"
    floodgate:label      clean | suspicious | spam | malicious      (when checked)
    floodgate:score      0-100                                       (when checked)
    floodgate:action     allow | monitor | warn | hide | block       (when decided)
    floodgate:intended   the rule's action, when it differs (dry-run, waiver)
    floodgate:rule       the policy rule that decided
    floodgate:waiver     the waiver that allowed it
    floodgate:reasons    one property per reason, most telling first
    floodgate:osv        one property per OSV/MAL record
    floodgate:alias      the name an `npm:` alias installs it under
    floodgate:error      why it was not checked (not checkable, or not fetched)
    floodgate:note       a note on a checked package (the lockfile's integrity differs)

`dependencies` holds the edges the lockfile's dependency paths give: the root depends on the
first hops, and each package's parent on the path depends on it. A path is the shortest one to
the package, so a package that several others require shows one parent here.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from proxy.audit.model import Audited, LockedPackage, Lockfile, Source
from proxy.audit.report import installed_name, problem, reasons

SPEC_VERSION = "1.5"
SCHEMA_URI = "http://cyclonedx.org/schema/bom-1.5.schema.json"
# SRI algorithm (https://www.w3.org/TR/SRI/) -> CycloneDX hash algorithm.
SRI_ALGORITHMS = {"sha1": "SHA-1", "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}
REFERENCE_TYPE = {Source.REGISTRY: "distribution", Source.OTHER: "distribution", Source.GIT: "vcs"}


def split_name(name: str) -> tuple[str | None, str]:
    """`@scope/name` -> ("@scope", "name"); `name` -> (None, "name")."""
    if name.startswith("@") and "/" in name:
        scope, _, bare = name.partition("/")
        return scope, bare
    return None, name


def purl(name: str, version: str) -> str:
    """The package URL of an npm package (purl-spec, type npm): the scope is the namespace, its
    `@` percent-encoded; namespace and name are lower-cased; each part is percent-encoded."""
    scope, bare = split_name(name)
    parts = [quote(scope.lower(), safe="")] if scope else []
    parts.append(quote(bare.lower(), safe=""))
    return "pkg:npm/" + "/".join(parts) + (f"@{quote(version, safe='')}" if version else "")


def hashes(integrity: str | None) -> list[dict[str, str]]:
    """CycloneDX hashes from an SRI string (`sha512-<base64> sha1-<base64>`), hex-encoded;
    unknown algorithms and malformed entries are skipped."""
    out: list[dict[str, str]] = []
    for entry in (integrity or "").split():
        algorithm, _, digest = entry.partition("-")
        alg = SRI_ALGORITHMS.get(algorithm.lower())
        if alg is None:
            continue
        try:
            raw = base64.b64decode(digest.partition("?")[0], validate=True)
        except (binascii.Error, ValueError):
            continue
        if raw and alg not in {h["alg"] for h in out}:
            out.append({"alg": alg, "content": raw.hex()})
    return out


def serial_number(serial: str | None = None) -> str:
    """`urn:uuid:<uuid>`: of `serial` (a UUID, with or without the prefix), else a new one.
    Raises ValueError when `serial` is not a UUID."""
    value = uuid.UUID(serial.removeprefix("urn:uuid:")) if serial else uuid.uuid4()
    return f"urn:uuid:{value}"


def _unique(ref: str, taken: set[str]) -> str:
    candidate, n = ref, 1
    while candidate in taken:
        n += 1
        candidate = f"{ref}|{n}"
    taken.add(candidate)
    return candidate


def _properties(package: LockedPackage, result: Audited | None) -> list[dict[str, str]]:
    props = [("floodgate:checkable", str(package.checkable).lower())]
    if result is not None and result.verdict is not None:
        props += [
            ("floodgate:label", str(result.verdict.label)),
            ("floodgate:score", str(result.verdict.score)),
        ]
    d = result.decision if result is not None else None
    if d is not None:
        props.append(("floodgate:action", str(d.action)))
        if d.intended is not d.action:
            props.append(("floodgate:intended", str(d.intended)))
        if d.rule:
            props.append(("floodgate:rule", d.rule))
        if d.waiver:
            props.append(("floodgate:waiver", d.waiver))
    if result is not None:
        props += [("floodgate:reasons", r) for r in reasons(result)]
        props += [("floodgate:osv", i) for i in (result.verdict.osv_ids if result.verdict else ())]
    if package.alias and package.alias != package.name:
        props.append(("floodgate:alias", package.alias))
    if package.dev:
        props.append(("cdx:npm:package:development", "true"))
    if result is not None and d is None:
        props.append(("floodgate:error", problem(result)))
    elif result is not None and result.error:
        props.append(("floodgate:note", result.error))
    return [{"name": n, "value": v} for n, v in props]


def _component(package: LockedPackage, ref: str, result: Audited | None) -> dict[str, Any]:
    group, name = split_name(package.name)
    component: dict[str, Any] = {"type": "library", "bom-ref": ref}
    if group:
        component["group"] = group
    component["name"] = name
    if package.version:
        component["version"] = package.version
    if package.optional:
        component["scope"] = "optional"
    if found := hashes(package.integrity):
        component["hashes"] = found
    if package.source is Source.REGISTRY and package.version:
        component["purl"] = purl(package.name, package.version)
    kind = REFERENCE_TYPE.get(package.source)
    if package.resolved and kind:
        component["externalReferences"] = [{"type": kind, "url": package.resolved}]
    component["properties"] = _properties(package, result)
    return component


def _packages(lockfile: Lockfile, results: Sequence[Audited]) -> Iterator[LockedPackage]:
    """The lockfile's packages, then any audited package the lockfile does not list."""
    yield from lockfile.packages
    known = set(lockfile.packages)
    yield from (r.package for r in results if r.package not in known)


def _dependencies(root: str, packages: Sequence[tuple[LockedPackage, str]]) -> list[dict[str, Any]]:
    """Edges from the dependency paths: each package hangs off the nearest package above it.

    The parent is the package whose own path is `path[:-1]`; failing that (it is reached by
    another path of the same length), the nearest package installed under that name (or so
    named). A hop that is no package (a workspace folder) is skipped upwards, and the first hops
    hang off the root. A package without a path gets no edge.
    """
    by_path: dict[tuple[str, ...], str] = {}
    by_name: dict[str, list[tuple[int, str]]] = {}
    for package, ref in packages:
        by_path.setdefault(package.path, ref)
        for name in {installed_name(package), package.name}:
            by_name.setdefault(name, []).append((len(package.path), ref))
    edges: dict[str, set[str]] = {root: set()}
    for package, ref in packages:
        parent: str | None = None
        for depth in range(len(package.path) - 1, 0, -1):
            above = package.path[:depth]
            if depth == 1:
                parent = root
            elif above in by_path:
                parent = by_path[above]
            elif above[-1] in by_name:
                parent = min(by_name[above[-1]])[1]
            if parent is not None:
                break
        if parent is not None and parent != ref:
            edges.setdefault(parent, set()).add(ref)
    order = [root] + [ref for _, ref in packages]
    return [{"ref": ref, "dependsOn": sorted(edges[ref])} for ref in order if ref in edges]


def to_cyclonedx(
    lockfile: Lockfile,
    results: Sequence[Audited],
    *,
    tool_version: str,
    serial: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The lockfile's tree as a CycloneDX 1.5 BOM (a JSON-able dict); see the module docstring.

    `serial` (a UUID) and `timestamp` (ISO 8601) default to a new UUID and the current time;
    given both, the output depends on the arguments only. Raises ValueError for a bad serial.
    """
    by_package = {r.package: r for r in results}
    taken: set[str] = set()
    root_group, root_name = split_name(lockfile.root)
    root_ref = _unique(lockfile.root or "root", taken)
    packages = []
    for p in _packages(lockfile, results):
        base = purl(p.name, p.version) if p.source is Source.REGISTRY and p.version else None
        ref = base or f"{installed_name(p)}@{p.resolved or p.source}"
        packages.append((p, _unique(ref, taken)))
    root: dict[str, Any] = {"type": "application", "bom-ref": root_ref}
    if root_group:
        root["group"] = root_group
    root["name"] = root_name
    when = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tool = {"type": "application", "name": "floodgate", "version": tool_version}
    return {
        "$schema": SCHEMA_URI,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(serial),
        "version": 1,
        "metadata": {
            "timestamp": when,
            "tools": {"components": [tool]},  # 1.5's form; the bare list is deprecated
            "component": root,
            "properties": [
                {"name": "floodgate:lockfile", "value": lockfile.path.name},
                {"name": "floodgate:lockfile-kind", "value": str(lockfile.kind)},
                {"name": "floodgate:lockfile-version", "value": lockfile.version},
            ],
        },
        "components": [_component(p, ref, by_package.get(p)) for p, ref in packages],
        "dependencies": _dependencies(root_ref, packages),
    }
