"""`floodgate audit --sbom`: CycloneDX 1.5 JSON, checked against the official schema offline."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, ValidationError  # type: ignore[import-untyped]
from referencing import Registry, Resource

from proxy.audit import sbom
from proxy.audit.model import Audited, LockedPackage
from tests.audit.test_report_app import (
    ALIAS,
    DRY,
    GIT,
    LOCKFILE,
    MISSING,
    MISSING_ERROR,
    PACKAGES,
    QS,
    RESULTS,
    ROOT,
    SCOPED,
    SEO,
    TEA,
    TEA_REASONS,
    WAIVED,
    tarball_bytes,
)

SCHEMAS = Path(__file__).resolve().parent.parent / "fixtures" / "schemas"
VERSION = "0.1.0"
SERIAL = "3e671687-395b-41f5-a30f-a58921a69b79"
TIMESTAMP = "2026-11-25T18:30:00Z"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


@cache
def validator() -> Any:
    """The 1.5 schema, its `spdx.schema.json` and `jsf-0.82.schema.json` references served
    from the local copies (registered under their `$id`s; nothing is retrieved)."""
    refs = [_schema(n) for n in ("spdx.schema.json", "jsf-0.82.schema.json")]
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in refs
    )
    return Draft7Validator(_schema("bom-1.5.schema.json"), registry=registry)


def bom(results: tuple[Audited, ...] = RESULTS, **kw: Any) -> dict[str, Any]:
    kw = {"serial": SERIAL, "timestamp": TIMESTAMP, **kw}
    return sbom.to_cyclonedx(LOCKFILE, results, tool_version=VERSION, **kw)


def component(doc: dict[str, Any], package: LockedPackage) -> dict[str, Any]:
    group, name = sbom.split_name(package.name)
    return next(
        c
        for c in doc["components"]
        if (c.get("group"), c["name"], c.get("version", "")) == (group, name, package.version)
    )


def properties(c: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in c["properties"]:
        out.setdefault(p["name"], []).append(p["value"])
    return out


# ---- schema ---------------------------------------------------------------------------------


def test_bom_validates_against_the_cyclonedx_1_5_schema() -> None:
    validator().validate(bom())


def test_bom_without_serial_or_timestamp_validates_too() -> None:
    validator().validate(sbom.to_cyclonedx(LOCKFILE, RESULTS, tool_version=VERSION))


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        (lambda d: d.update(serialNumber="3e671687"), False),  # not urn:uuid
        (lambda d: d.update(specVersion=1.5), False),
        (lambda d: d["components"][0].update(type="npm-package"), False),
        (lambda d: d["components"][0]["hashes"][0].update(content="not hex"), False),
        (lambda d: d["dependencies"][0].update(dependsOn="express"), False),
        # the licence ids come from spdx.schema.json: both outcomes prove the $ref resolves
        (lambda d: d["components"][0].update(licenses=[{"license": {"id": "MIT"}}]), True),
        (lambda d: d["components"][0].update(licenses=[{"license": {"id": "NOT-MIT"}}]), False),
    ],
    ids=["serial", "spec-version", "type", "hash", "depends-on", "spdx-ok", "spdx-unknown"],
)
def test_schema_accepts_and_rejects(change: Any, valid: bool) -> None:
    doc = copy.deepcopy(bom())
    change(doc)
    if valid:
        validator().validate(doc)
    else:
        with pytest.raises(ValidationError):
            validator().validate(doc)


# ---- the document ---------------------------------------------------------------------------


def test_header_and_metadata() -> None:
    doc = bom()
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.5", 1)
    assert doc["serialNumber"] == f"urn:uuid:{SERIAL}"
    meta = doc["metadata"]
    assert meta["timestamp"] == TIMESTAMP
    assert meta["tools"]["components"] == [
        {"type": "application", "name": "floodgate", "version": VERSION}
    ]
    assert meta["component"] == {"type": "application", "bom-ref": ROOT, "name": ROOT}


def test_every_locked_package_is_a_component() -> None:
    doc = bom()
    assert len(doc["components"]) == len(PACKAGES)
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(set(refs) | {ROOT}) == len(refs) + 1  # unique, the root's too
    assert {c["type"] for c in doc["components"]} == {"library"}


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("qs", "6.11.0", "pkg:npm/qs@6.11.0"),
        ("@babel/core", "7.24.0", "pkg:npm/%40babel/core@7.24.0"),
        ("JSONStream", "1.3.5", "pkg:npm/jsonstream@1.3.5"),  # npm purls are lower-case
        ("@Types/Node", "20.1.0", "pkg:npm/%40types/node@20.1.0"),
        ("semver", "7.6.0-rc.1+build.5", "pkg:npm/semver@7.6.0-rc.1%2Bbuild.5"),
        ("left-pad", "", "pkg:npm/left-pad"),
    ],
)
def test_purl(name: str, version: str, expected: str) -> None:
    assert sbom.purl(name, version) == expected


@pytest.mark.parametrize(
    ("package", "group", "name", "purl"),
    [
        (SCOPED, "@babel", "core", "pkg:npm/%40babel/core@7.24.0"),
        (ALIAS, None, "string-width", "pkg:npm/string-width@4.2.3"),  # the real package
        (TEA, None, "tea-farm-0042", "pkg:npm/tea-farm-0042@1.0.3"),
        (GIT, None, "internal-ui", None),  # no registry identity
    ],
    ids=["scoped", "alias", "plain", "git"],
)
def test_component_identity(
    package: LockedPackage, group: str | None, name: str, purl: str | None
) -> None:
    c = component(bom(), package)
    assert (c.get("group"), c["name"], c.get("purl")) == (group, name, purl)
    if purl:
        assert c["bom-ref"] == purl


def test_alias_is_recorded_as_a_property() -> None:
    assert properties(component(bom(), ALIAS))["floodgate:alias"] == ["string-width-cjs"]


def test_git_dependency_points_at_its_repository() -> None:
    c = component(bom(), GIT)
    assert "version" not in c
    assert c["externalReferences"] == [{"type": "vcs", "url": GIT.resolved}]
    assert properties(c)["floodgate:checkable"] == ["false"]


def test_hashes_come_from_the_integrity() -> None:
    c = component(bom(), TEA)
    assert c["hashes"] == [
        {"alg": "SHA-512", "content": hashlib.sha512(tarball_bytes(TEA.name, "1.0.3")).hexdigest()}
    ]


def _sri(alg: str, data: bytes) -> str:
    return f"{alg}-" + base64.b64encode(hashlib.new(alg, data).digest()).decode()


@pytest.mark.parametrize(
    ("integrity", "algorithms"),
    [
        (_sri("sha512", b"x"), ["SHA-512"]),
        (f"{_sri('sha512', b'x')} {_sri('sha1', b'x')}", ["SHA-512", "SHA-1"]),  # yarn's pair
        (_sri("sha256", b"x") + "?opt", ["SHA-256"]),  # SRI options are ignored
        ("md5-rL0Y20zC+Fzt72VPzMSk2A==", []),  # not an algorithm CycloneDX takes from SRI
        ("sha512-not*base64", []),
        ("", []),
        (None, []),
    ],
)
def test_hashes_from_sri(integrity: str | None, algorithms: list[str]) -> None:
    assert [h["alg"] for h in sbom.hashes(integrity)] == algorithms


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (
            TEA,
            {
                "floodgate:checkable": ["true"],
                "floodgate:label": ["spam"],
                "floodgate:score": ["95"],
                "floodgate:action": ["block"],
                "floodgate:rule": ["token-farming"],
                "floodgate:reasons": list(TEA_REASONS),
            },
        ),
        (DRY, {"floodgate:action": ["monitor"], "floodgate:intended": ["block"]}),
        (DRY, {"floodgate:osv": ["MAL-2025-4242"]}),
        (SEO, {"floodgate:action": ["hide"], "cdx:npm:package:development": ["true"]}),
        (WAIVED, {"floodgate:action": ["allow"], "floodgate:waiver": ["tiny-helpers@1.0.0"]}),
        (MISSING, {"floodgate:checkable": ["true"], "floodgate:error": [MISSING_ERROR]}),
    ],
)
def test_verdict_properties(package: LockedPackage, expected: dict[str, list[str]]) -> None:
    found = properties(component(bom(), package))
    assert {k: found.get(k) for k in expected} == expected


def test_optional_dependency_scope() -> None:
    assert component(bom(), DRY)["scope"] == "optional"
    assert "scope" not in component(bom(), TEA)


# ---- dependencies ---------------------------------------------------------------------------


def test_dependency_edges_match_the_paths() -> None:
    doc = bom()
    ref_of = {p.path: component(doc, p)["bom-ref"] for p in PACKAGES}
    ref_of[(ROOT,)] = ROOT
    expected = {(ref_of[p.path[:-1]], ref_of[p.path]) for p in PACKAGES}
    edges = {(d["ref"], child) for d in doc["dependencies"] for child in d["dependsOn"]}
    assert edges == expected
    assert doc["dependencies"][0]["ref"] == ROOT
    first_hops = {ref_of[p.path] for p in PACKAGES if len(p.path) == 2}
    assert set(doc["dependencies"][0]["dependsOn"]) == first_hops


def test_parent_reached_by_another_path_is_found_by_name() -> None:
    # qs's shortest path runs through express, but the lockfile chose another of equal length
    detour = dataclasses.replace(TEA, path=(ROOT, "other", "body-parser", "qs", TEA.name))
    packages = tuple(detour if p == TEA else p for p in PACKAGES)
    doc = sbom.to_cyclonedx(
        dataclasses.replace(LOCKFILE, packages=packages),
        [dataclasses.replace(r, package=detour) if r.package == TEA else r for r in RESULTS],
        tool_version=VERSION,
    )
    validator().validate(doc)
    qs = next(d for d in doc["dependencies"] if d["ref"] == "pkg:npm/qs@6.11.0")
    assert qs["dependsOn"] == ["pkg:npm/tea-farm-0042@1.0.3"]


def test_hop_that_is_no_package_is_skipped_upwards() -> None:
    # a workspace folder sits on the path but is not a locked package
    nested = dataclasses.replace(QS, path=(ROOT, "packages/web", "express", "qs"))
    deeper = dataclasses.replace(SEO, path=(ROOT, "packages/web", SEO.name))
    packages = tuple({QS: nested, SEO: deeper}.get(p, p) for p in PACKAGES)
    doc = sbom.to_cyclonedx(
        dataclasses.replace(LOCKFILE, packages=packages), [], tool_version=VERSION
    )
    validator().validate(doc)
    depends = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert "pkg:npm/qs@6.11.0" in depends["pkg:npm/express@4.19.2"]
    assert "pkg:npm/free-robux-generator-2026@1.0.0" in depends[ROOT]


def test_duplicate_packages_get_unique_refs() -> None:
    twin = dataclasses.replace(TEA, path=(ROOT, TEA.name), location=None)
    doc = sbom.to_cyclonedx(
        dataclasses.replace(LOCKFILE, packages=(*PACKAGES, twin)),
        RESULTS,
        tool_version=VERSION,
        serial=SERIAL,
        timestamp=TIMESTAMP,
    )
    validator().validate(doc)
    refs = [c["bom-ref"] for c in doc["components"] if c["name"] == TEA.name]
    assert refs == ["pkg:npm/tea-farm-0042@1.0.3", "pkg:npm/tea-farm-0042@1.0.3|2"]


# ---- determinism ----------------------------------------------------------------------------


def test_deterministic_given_serial_and_timestamp() -> None:
    assert json.dumps(bom()) == json.dumps(bom())


def test_fresh_serial_and_timestamp_by_default() -> None:
    a = sbom.to_cyclonedx(LOCKFILE, RESULTS, tool_version=VERSION)
    b = sbom.to_cyclonedx(LOCKFILE, RESULTS, tool_version=VERSION)
    assert a["serialNumber"] != b["serialNumber"]
    assert a["serialNumber"].startswith("urn:uuid:")
    assert a["metadata"]["timestamp"].endswith("Z")
    assert {**a, "serialNumber": "", "metadata": {}} == {**b, "serialNumber": "", "metadata": {}}


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (SERIAL, f"urn:uuid:{SERIAL}"),
        (f"urn:uuid:{SERIAL}", f"urn:uuid:{SERIAL}"),
        (SERIAL.upper(), f"urn:uuid:{SERIAL}"),
    ],
)
def test_serial_number(serial: str, expected: str) -> None:
    assert sbom.serial_number(serial) == expected


def test_bad_serial_is_refused() -> None:
    with pytest.raises(ValueError, match="badly formed"):
        bom(serial="not-a-uuid")
