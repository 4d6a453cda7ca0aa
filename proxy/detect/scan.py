"""`floodgate scan`: resolve targets, fetch what the detector needs, assess, report.

The orchestration is here, not in the CLI: parse `NAME[@VERSION|@RANGE|@TAG]`, resolve it
against the packument (exact version, dist-tag, or every version a range allows), download each
tarball through the upstream client (integrity checked), read it with the safe reader and
assess. Nothing here imports httpx: the client is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from proxy.detect.evaluate import Detector
from proxy.detect.facts import PackageFacts, read_packument
from proxy.detect.model import Label, Verdict
from proxy.detect.store import VerdictStore
from proxy.errors import FloodgateError, NotFound, UpstreamBadResponse
from proxy.npm.integrity import Hasher
from proxy.npm.names import PackageName
from proxy.npm.packument import Summary, parse
from proxy.npm.semver import Range, SemverError, Version
from proxy.npm.tarball import TarballFacts, read_tarball

log = logging.getLogger(__name__)

MAX_RANGE_VERSIONS = 50  # versions scanned for one range, newest first


class Fetched(Protocol):
    body: bytes


class Upstream(Protocol):
    """What scanning needs from `UpstreamClient`."""

    async def get_packument(self, package: PackageName, etag: str | None = None) -> Any: ...

    async def download(self, url: str, sink: Callable[[bytes], object]) -> int: ...


@dataclass(frozen=True, slots=True)
class Target:
    package: PackageName
    spec: str  # version, range or dist-tag; "" means latest

    @classmethod
    def parse(cls, text: str) -> Target:
        """`name`, `name@spec`, `@scope/name@spec`; raise InvalidPackageName."""
        at = text.find("@", 1)
        name, spec = (text, "") if at < 0 else (text[:at], text[at + 1 :])
        return cls(PackageName.parse(name), spec.strip())

    def __str__(self) -> str:
        return f"{self.package.name}@{self.spec}" if self.spec else self.package.name


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scanned version: its verdict, or the error that stopped it."""

    target: str
    verdict: Verdict | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.verdict is not None:
            return {"target": self.target, **self.verdict.to_json()}
        return {"target": self.target, "error": self.error}


async def fetch_packument(upstream: Upstream, package: PackageName) -> dict[str, Any]:
    """The full packument of `package`, parsed and checked by `proxy.npm.packument.parse`
    (UpstreamBadResponse when it is not a packument of that name), its name filled in."""
    fetched = await upstream.get_packument(package)
    doc = parse(fetched.body, package.name)
    doc.setdefault("name", package.name)
    return doc


def resolve(package: PackageFacts, spec: str) -> list[str]:
    """The versions `spec` names in `package`, newest first; raise NotFound when none."""
    spec = spec or "latest"
    exact = package.version(spec)
    if exact is not None:
        return [exact.version]
    try:
        rng = Range.parse(spec)
    except SemverError as exc:
        raise NotFound(f"{package.name}: {spec!r} is no version, dist-tag or range") from exc
    found = sorted(
        (
            (v, text)
            for text in package.versions
            if (v := Version.try_parse(text)) and rng.contains(v)
        ),
        reverse=True,
    )
    if not found:
        raise NotFound(f"{package.name}: no version satisfies {spec!r}")
    return [text for _, text in found[:MAX_RANGE_VERSIONS]]


async def fetch_tarball(upstream: Upstream, summary: Summary, version: str) -> TarballFacts:
    """Download and read one version's tarball; raise NotFound or UpstreamBadResponse."""
    ref = summary.versions.get(version)
    if ref is None or not ref.tarball:
        raise NotFound(f"{summary.name}@{version} has no tarball URL in its packument")
    hasher = Hasher(ref.digest)
    chunks: list[bytes] = []

    def sink(chunk: bytes) -> None:
        hasher.update(chunk)
        chunks.append(chunk)

    await upstream.download(ref.tarball, sink)
    if not hasher.matches():
        raise UpstreamBadResponse(
            f"tarball of {summary.name}@{version} from {ref.tarball} does not match its integrity"
        )
    return read_tarball(b"".join(chunks))


async def scan_target(
    upstream: Upstream,
    detector: Detector,
    target: Target,
    store: VerdictStore | None = None,
    metadata_only: bool = False,
) -> list[Outcome]:
    """Assess every version `target` names. Errors for one version become its Outcome;
    an error resolving the target raises (FloodgateError)."""
    summary, package = read_packument(
        await fetch_packument(upstream, target.package), target.package
    )
    outcomes: list[Outcome] = []
    for version in resolve(package, target.spec):
        label = f"{package.name}@{version}"
        try:
            tarball = None if metadata_only else await fetch_tarball(upstream, summary, version)
        except FloodgateError as exc:
            outcomes.append(Outcome(label, error=str(exc)))
            continue
        verdict = detector.assess(package, version, tarball)
        if store is not None:
            store.put(verdict, package.versions[version].integrity)
        outcomes.append(Outcome(label, verdict))
    return outcomes


def scan_file(detector: Detector, path: Path) -> Outcome:
    """Assess a local `.tgz`; name and version come from its package.json (else the file name)."""
    tarball = read_tarball(path)
    pj = tarball.package_json or {}
    name = str(pj.get("name") or path.name.removesuffix(".tgz"))
    version = str(pj.get("version") or "")
    manifest = {**pj, "name": name, "version": version}
    doc = {"name": name, "versions": {version: manifest} if version else {}}
    verdict = detector.assess(PackageFacts.from_packument(doc), version, tarball)
    return Outcome(str(path), verdict)


def exit_code(outcomes: list[Outcome]) -> int:
    """0 when every verdict is clean or suspicious, 1 when any is flagged, else 2 on errors."""
    if any(o.verdict is not None and o.verdict.label.flagged for o in outcomes):
        return 1
    if any(o.error is not None for o in outcomes):
        return 2
    return 0


_MARK = {Label.CLEAN: "ok", Label.SUSPICIOUS: "??", Label.SPAM: "!!", Label.MALICIOUS: "XX"}


def render(outcome: Outcome) -> str:
    """Human output: a headline per version, then each finding with its evidence."""
    if outcome.verdict is None:
        return f"ERR {outcome.target}: {outcome.error}"
    v = outcome.verdict
    source = "tarball" if v.tarball_scanned else "metadata only"
    lines = [f"{_MARK[v.label]}  {v.name}@{v.version}: {v.label.value} (score {v.score}, {source})"]
    for f in v.findings:
        lines.append(f"    - {f.signal_id} [{f.severity.value}/{f.confidence.value}]: {f.reason}")
        for key, value in f.evidence.items():
            text = orjson.dumps(value).decode() if not isinstance(value, str) else value
            lines.append(f"        {key}: {text[:160]}")
    if v.osv_ids:
        lines.append(f"    osv: {', '.join(v.osv_ids)}")
    return "\n".join(lines)
