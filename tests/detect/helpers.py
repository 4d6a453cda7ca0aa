"""Real-shaped facts for signal tests: corpus cases copied into tests/fixtures/detect."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.detect.facts import Context, PackageFacts, Subject, facts_from_case
from proxy.npm.tarball import TarballFacts

if TYPE_CHECKING:
    from tests.fakes.packages import FakeVersion

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@cache
def _cases() -> dict[str, dict[str, Any]]:
    lines = (FIXTURES / "detect" / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    return {c["name"]: c for c in map(json.loads, lines)}


def case(name: str) -> dict[str, Any]:
    """A copy of the corpus case for `name` (tea: xcho, kopiliong, uniset, stankpoll,
    constitution, nomind-big-integer; benign: @babel/code-frame, client-only)."""
    copy: dict[str, Any] = json.loads(json.dumps(_cases()[name]))
    return copy


def subject(name: str, context: Context | None = None, **case_changes: Any) -> Subject:
    """The Subject a signal sees for a fixture case, with case fields replaced."""
    c = {**case(name), **case_changes}
    package, version, tarball = facts_from_case(c)
    vf = package.version(version) if version else None
    return Subject(package, vf, tarball, context or Context())


def with_tarball(s: Subject, **changes: Any) -> Subject:
    assert s.tarball is not None
    t: TarballFacts = dataclasses.replace(s.tarball, **changes)
    return dataclasses.replace(s, tarball=t)


def renamed(s: Subject, name: str) -> Subject:
    return dataclasses.replace(s, package=dataclasses.replace(s.package, name=name))


def name_only(name: str, version: str = "", context: Context | None = None) -> Subject:
    package = PackageFacts.name_only(name, version)
    return Subject(
        package, package.version(version) if version else None, None, context or Context()
    )


def fake_version(name: str, fv: FakeVersion) -> tuple[PackageFacts, str, TarballFacts]:
    """(facts, version, tarball facts) of a fake package with one version, as the proxy reads
    them: the packument through the proxy's parser, the tarball through its reader."""
    import orjson

    from proxy.npm.names import PackageName
    from proxy.npm.packument import parse
    from proxy.npm.tarball import read_tarball
    from tests.fakes.packages import build_version

    entry, tgz = build_version(name, fv)
    doc = {"name": name, "dist-tags": {"latest": fv.version}, "versions": {fv.version: entry}}
    facts = PackageFacts.from_packument(parse(orjson.dumps(doc), PackageName.parse(name).name))
    return facts, fv.version, read_tarball(tgz)
