"""Facts the detector works on: package metadata from a packument, plus tarball facts.

Everything is immutable and built defensively: a missing or malformed field is "unknown"
(`None`, or an empty mapping where the doc says so), never a crash. An empty `time` map and an
empty `maintainers` list are unknown too (abbreviated packuments and the evaluation corpus carry
them that way), not "published never" or "nobody".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from proxy.detect.campaigns import Cluster
from proxy.detect.code import CodeProfile, imports_any, profile as code_profile
from proxy.npm.names import PackageName
from proxy.npm.packument import (
    INSTALL_SCRIPTS,
    Doc,
    Summary,
    declares_platform,
    parse,
    summarize,
)
from proxy.npm.semver import Version
from proxy.npm.tarball import (
    SOURCE_SUFFIXES,
    EntryKind,
    TarballFacts,
    TarEntry,
    facts_from_texts,
)
from proxy.records import record

T = TypeVar("T")
ESTABLISHED_VERSIONS = 10  # versions that make a package established (see PackageFacts)

__all__ = [
    "Context",
    "OsvHit",
    "PackageFacts",
    "Subject",
    "TarballFacts",
    "VersionFacts",
    "facts_from_case",
    "read_packument",
    "tarball_from_manifest",
]

# Facts hold plain dicts typed as read-only `Mapping`s (not MappingProxyType): they must pickle,
# because large packuments are parsed into facts in a worker process.


def _empty() -> Mapping[str, Any]:
    return {}


_STR = frozenset({str})


def _str_map(value: Any) -> Mapping[str, str]:
    """The string-valued entries of a JSON object (its keys are strings); the object itself
    when all its values are (almost always: no copy for each of a packument's thousands of
    dependency maps)."""
    if type(value) is not dict:
        return {}
    if set(map(type, value.values())) <= _STR:
        return value
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _names(value: Any) -> tuple[str, ...]:
    """The names of a JSON object's string-valued entries, in order (a dependency map's)."""
    if type(value) is not dict or not value:
        return ()
    if set(map(type, value.values())) <= _STR:
        return tuple(value)
    return tuple(k for k, v in value.items() if isinstance(v, str))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp as the registry writes it, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class Shared:
    """Equal values of one packument's versions, kept once: thousands of versions mostly repeat
    their dependencies, scripts, repository and description, and facts are kept in memory for
    every cached packument."""

    def __init__(self) -> None:
        self._maps: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._texts: dict[str, str] = {}

    def names(self, value: tuple[str, ...]) -> tuple[str, ...]:
        return self._names.setdefault(value, value)

    def map(self, value: Mapping[str, str]) -> Mapping[str, str]:
        if not value:  # most versions have no optional dependencies, bin or scripts
            return self._maps.setdefault((), value)
        return self._maps.setdefault(tuple(value.items()), value)

    def text(self, value: str | None) -> str | None:
        return value if value is None else self._texts.setdefault(value, value)


@record
class VersionFacts:
    """One version's manifest as the packument gives it (full or abbreviated)."""

    version: str
    # Dependencies by name, in the manifest's order: no signal reads a range, and a package's
    # versions mostly differ in their ranges alone, so versions share one tuple of names.
    dependencies: Collection[str] = ()
    optional_dependencies: Collection[str] = ()
    scripts: Mapping[str, str] | None = None  # None: unknown (abbreviated packuments)
    has_install_script: bool | None = None
    bin: Mapping[str, str] = field(default_factory=_empty)
    file_count: int | None = None
    unpacked_size: int | None = None
    integrity: str | None = None  # the verdict store's key (with the version)
    published: datetime | None = None
    deprecated: bool = False
    repository: str | None = None
    description: str | None = None
    platform: bool = False  # declares `os`, `cpu` or `libc`: a platform build (often a binary)

    @classmethod
    def from_manifest(
        cls,
        manifest: Mapping[str, Any],
        published: datetime | None,
        shared: Shared | None = None,
        version: str | None = None,
    ) -> VersionFacts:
        """One version's facts; `shared` (one per packument) makes versions with the same
        dependency map, scripts, repository or description hold one copy of it. `version`: the
        packument's key for it, for a manifest without a `version` field."""
        shared = shared or Shared()
        get = manifest.get  # called ~20 times for each of thousands of versions
        dist = get("dist")
        dist = dist if type(dist) is dict else {}
        repo = get("repository")
        if type(repo) is dict:
            repo = repo.get("url")
        bin_ = get("bin")
        if type(bin_) is str:
            bin_ = {str(get("name") or "").rsplit("/", 1)[-1]: bin_}
        has_install = get("hasInstallScript")
        scripts = get("scripts")
        scripts_map = _str_map(scripts) if type(scripts) is dict else None
        if scripts_map is not None:
            has_install = any(s in scripts_map for s in INSTALL_SCRIPTS)
        desc = get("description")
        integrity = dist.get("integrity")
        named = get("version", version)
        if named == version:
            named = version  # the packument's key: one string for the version, not two
        return cls(
            str(named or ""),
            shared.names(_names(get("dependencies"))),
            shared.names(_names(get("optionalDependencies"))),
            None if scripts_map is None else shared.map(scripts_map),
            has_install if type(has_install) is bool else None,
            shared.map(_str_map(bin_)),
            _int(dist.get("fileCount")),
            _int(dist.get("unpackedSize")),
            integrity if type(integrity) is str else None,
            published,
            bool(get("deprecated")),
            shared.text(repo) if type(repo) is str else None,
            shared.text(desc) if type(desc) is str else None,
            declares_platform(manifest),
        )


@dataclass(frozen=True, slots=True)
class PackageFacts:
    """A package across its versions. `versions` is keyed by version string."""

    name: str
    dist_tags: Mapping[str, str] = field(default_factory=_empty)
    versions: Mapping[str, VersionFacts] = field(default_factory=_empty)
    created: datetime | None = None
    modified: datetime | None = None
    maintainers: tuple[str, ...] | None = None  # None: unknown
    # Package-level analyses that signals compute once and reuse for every version (see `memo`).
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def memo(self, key: str, compute: Callable[[PackageFacts], T]) -> T:
        """`compute(self)`, computed once per facts object: for package-wide analyses that every
        version's assessment needs (a packument can have thousands of versions)."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        value: T = self._memo[key]
        return value

    @classmethod
    def from_packument(cls, doc: Mapping[str, Any]) -> PackageFacts:
        """Facts from a parsed packument (full or abbreviated); never raises on bad fields."""
        raw_time = doc.get("time")
        times = raw_time if isinstance(raw_time, dict) else {}
        if "created" not in times:
            # Registries always write `created` beside the per-version times; a map without it
            # was synthesised (some mirrors fill `time` with made-up dates), and publishing
            # signals read from it would be noise: the times count as unknown.
            times = {}
        raw_versions = doc.get("versions")
        versions: dict[str, VersionFacts] = {}
        shared = Shared()
        if isinstance(raw_versions, dict):
            for v, m in raw_versions.items():
                if isinstance(m, dict):
                    published = parse_time(times.get(v))
                    vf = VersionFacts.from_manifest(m, published, shared, str(v))
                    versions[str(v)] = vf
        people = doc.get("maintainers")
        maintainers: tuple[str, ...] | None = None
        if isinstance(people, list) and people:
            maintainers = tuple(
                str(p.get("name") or p.get("email") or "") if isinstance(p, dict) else str(p)
                for p in people
            )
        modified = parse_time(times.get("modified")) or parse_time(doc.get("modified"))
        return cls(
            name=str(doc.get("name") or ""),
            dist_tags=_str_map(doc.get("dist-tags")),
            versions=versions,
            created=parse_time(times.get("created")),
            modified=modified,
            maintainers=maintainers,
        )

    @classmethod
    def name_only(cls, name: str, version: str = "") -> PackageFacts:
        """What is known when only a name (and maybe a version) is."""
        versions = {version: VersionFacts(version)} if version else {}
        return cls(name=name, versions=versions)

    @property
    def established(self) -> bool:
        """A package with a release history (ESTABLISHED_VERSIONS versions or more). Token farms
        publish new packages with a version or two; a maintainer who registers a long-lived
        project with tea.xyz does it to an established one. (Age is no test: the 2024 flood is
        over a year old by now.)"""
        return len(self.versions) >= ESTABLISHED_VERSIONS

    def version(self, spec: str) -> VersionFacts | None:
        """A version by exact version or dist-tag."""
        found = self.versions.get(spec)
        if found is None and spec in self.dist_tags:
            found = self.versions.get(self.dist_tags[spec])
        return found

    @property
    def publish_times(self) -> tuple[tuple[datetime, str], ...]:
        """(publish time, version) pairs for the versions whose time is known, oldest first."""
        return tuple(
            sorted((v.published, k) for k, v in self.versions.items() if v.published is not None)
        )

    @property
    def sorted_versions(self) -> tuple[Version, ...]:
        return tuple(sorted(p for v in self.versions if (p := Version.try_parse(v)) is not None))


@dataclass(frozen=True, slots=True)
class OsvHit:
    """One OSV record that names this package version."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    category: str  # "malware", "spam", ... as the feed classes it ("" when it does not)


@record
class Context:
    """What the detector's indexes say about the subject, looked up before the signals run.

    Read-only: signals never query an index themselves, so they stay pure and testable.
    """

    osv: tuple[OsvHit, ...] = ()
    wallet_names: Mapping[str, tuple[str, ...]] = field(
        default_factory=_empty
    )  # wallet -> other names seen with it
    clone_names: tuple[str, ...] = ()  # other names whose code files match this one's
    clone_share: float = 0.0  # fraction of this package's code files seen under other names
    clone_files: int = 0  # code files considered
    flagged_dependencies: Mapping[str, str] = field(
        default_factory=_empty
    )  # dependency -> its label
    dependency_cycles: tuple[tuple[str, ...], ...] = ()  # name -> ... -> name paths
    campaign: Cluster | None = None  # the campaign cluster the package is a member of
    now: datetime | None = None


@record
class Subject:
    """What each signal's `check` receives: the package, the version assessed, the tarball
    facts when the tarball was read, and the indexes' answers."""

    package: PackageFacts
    version: VersionFacts | None
    tarball: TarballFacts | None = None
    context: Context = field(default_factory=Context)
    _memo: dict[tuple[str | int, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def profile(self) -> CodeProfile | None:
        """The tarball's code profile (computed once per subject); None without a tarball."""
        if self.tarball is None:
            return None
        # keyed by the tarball: `dataclasses.replace` carries the memo to a changed copy
        key = ("profile", id(self.tarball))
        if key not in self._memo:
            self._memo[key] = code_profile(self.tarball)
        found: CodeProfile = self._memo[key]
        return found

    @property
    def imports_any_dependency(self) -> bool:
        """True when the tarball's sources import a declared dependency (computed once)."""
        key = ("imports", id(self.tarball), id(self.version))
        if key not in self._memo:
            sources = self.tarball.sources if self.tarball is not None else {}
            self._memo[key] = imports_any(sources, self.dependencies)
        found: bool = self._memo[key]
        return found

    @property
    def dependencies(self) -> Collection[str]:
        """Names of the runtime dependencies: the tarball's package.json when read, else the
        packument's."""
        if self.tarball is not None and self.tarball.package_json is not None:
            return _names(self.tarball.package_json.get("dependencies"))
        return self.version.dependencies if self.version is not None else ()


CASE_CODE_BYTES = 4096  # the corpus keeps each source file's first 4,096 bytes


def tarball_from_manifest(
    files: list[Mapping[str, Any]],
    texts: Mapping[str, str],
    code: Mapping[str, str] | None = None,
) -> TarballFacts:
    """Tarball facts from a manifest (`path`, `size`, `sha256` per file), some file texts and
    the source files' texts (`code`, cut as the corpus cuts them).

    `sources_complete` is True only when every source file of the manifest is in `code` whole
    (at most CASE_CODE_BYTES): only then can "never imported" be concluded.
    """
    entries = tuple(
        TarEntry(
            str(f["path"]), EntryKind.FILE, int(f.get("size") or 0), str(f.get("sha256") or "")
        )
        for f in files
    )
    facts = facts_from_texts(entries, texts, unpacked_size=sum(e.size for e in entries))
    if not code:
        return facts
    sources = {str(p): str(t) for p, t in code.items() if isinstance(t, str)}
    whole = all(
        e.path in sources and e.size <= CASE_CODE_BYTES
        for e in entries
        if e.path.lower().endswith(SOURCE_SUFFIXES) and "/node_modules/" not in e.path
    )
    return dataclasses.replace(facts, sources=sources, sources_complete=whole)


def facts_from_case(case: Mapping[str, Any]) -> tuple[PackageFacts, str, TarballFacts | None]:
    """(package facts, version, tarball facts) from an evaluation-corpus case.

    Reads only what a detector may see: name, version, packument, files, texts and code.
    """
    name = str(case["name"])
    version = str(case.get("version") or "")
    doc = case.get("packument")
    if isinstance(doc, dict):
        package = PackageFacts.from_packument(doc)
        if not version:
            version = package.dist_tags.get("latest", "")
    else:
        package = PackageFacts.name_only(name, version)
    files = case.get("files")
    tarball = None
    if isinstance(files, list):
        code = case.get("code")
        tarball = tarball_from_manifest(
            files, case.get("texts") or {}, code if isinstance(code, dict) else None
        )
    return package, version, tarball


def inspect(raw: bytes, package: PackageName) -> tuple[Summary, PackageFacts]:
    """Parse upstream packument bytes once into the proxy's summary and the detector's facts.

    The entry point of the render worker process for large documents (picklable in and out).
    """
    summary, facts, _ = inspect_keeping(raw, package)
    return summary, facts


def inspect_keeping(raw: bytes, package: PackageName) -> tuple[Summary, PackageFacts, Doc]:
    """`inspect`, also returning the parsed document, so that a fresh packument's first render
    need not parse it again (in-process only: the document is large to pickle)."""
    doc = parse(raw, package.name)
    return *read_packument(doc, package), doc


def read_packument(doc: Doc, package: PackageName) -> tuple[Summary, PackageFacts]:
    """A parsed packument as the proxy reads it (where each version's tarball is, and how it
    is verified) and as the detector does."""
    return summarize(doc, package), PackageFacts.from_packument(doc)
