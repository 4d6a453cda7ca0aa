"""The policy's values: actions, rules with their match conditions, waivers, and decisions."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from proxy.detect.model import Label
from proxy.npm.semver import Range


class Action(StrEnum):
    """What happens to a version. `monitor` serves silently and logs what would have happened."""

    ALLOW = "allow"
    MONITOR = "monitor"
    WARN = "warn"
    HIDE = "hide"
    BLOCK = "block"


class Severity(StrEnum):
    """How `npm audit` reports a decision (the advisory severities npm knows)."""

    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    CRITICAL = "critical"


# A rule without `severity` reports its action at this level in `npm audit`.
ACTION_SEVERITY = {
    "block": Severity.HIGH,
    "hide": Severity.HIGH,
    "warn": Severity.MODERATE,
    "monitor": Severity.LOW,
    "allow": Severity.LOW,
}


class Mode(StrEnum):
    ENFORCE = "enforce"
    DRY_RUN = "dry-run"


class FailMode(StrEnum):
    """What a rule does while the tarball verdict it needs is not ready (not scanned in time)."""

    OPEN = "open"  # decide on the metadata verdict; the tarball scan catches up later
    CLOSED = "closed"  # refuse until the tarball has been scanned


class ScanState(StrEnum):
    """What the verdict rests on."""

    TARBALL = "tarball"  # the tarball was scanned
    METADATA = "metadata"  # the packument only (packument requests, before any tarball scan)
    UNAVAILABLE = "unavailable"  # a tarball request whose scan did not finish in time


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions of a rule; all given conditions must hold (a list matches any of its items).

    Empty conditions match everything. Ages compare with the upstream's publish times; when a
    time is unknown an age condition does not match.
    """

    names: tuple[str, ...] = ()  # globs: "left-pad", "@corp/*", "*-sdk"
    scopes: tuple[str, ...] = ()  # "@corp"
    versions: Range | None = None
    labels: tuple[Label, ...] = ()
    min_score: int | None = None
    max_score: int | None = None
    signals: tuple[str, ...] = ()  # any of these signal ids fired
    osv: tuple[str, ...] = ()  # OSV/MAL ids, or "*" for any record
    min_campaign_size: int | None = None  # the version is in a campaign of this many or more
    version_younger_than: timedelta | None = None
    package_younger_than: timedelta | None = None
    install_scripts: bool | None = None
    shadows_internal: bool | None = None  # the name is a twin of an internal one (see internal)

    @property
    def needs_package_facts(self) -> bool:
        """True when the outcome depends on the packument (publish times, install scripts)."""
        return (
            self.version_younger_than is not None
            or self.package_younger_than is not None
            or self.install_scripts is not None
        )

    @property
    def needs_verdict(self) -> bool:
        """True when the outcome depends on what the detector says (and so on the tarball)."""
        return bool(
            self.labels
            or self.min_score is not None
            or self.max_score is not None
            or self.signals
            or self.osv
            or self.min_campaign_size is not None
        )


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    match: Match
    action: Action
    message: str = ""  # shown to users; default: the verdict's reasons
    unscanned: FailMode | None = None  # None: the policy's default
    severity: Severity | None = None  # in npm audit; None: by action (ACTION_SEVERITY)

    @property
    def audit_severity(self) -> Severity:
        return self.severity or ACTION_SEVERITY[self.action.value]


@dataclass(frozen=True, slots=True)
class Waiver:
    """An exception: `package@range` is allowed until `expires` (inclusive), for `reason`."""

    name: str  # a name or glob
    versions: Range | None
    reason: str
    owner: str
    expires: date

    def covers(self, name: str, version: str) -> bool:
        if not fnmatch.fnmatchcase(name, self.name):
            return False
        return self.versions is None or self.versions.contains(version)

    def active(self, today: date) -> bool:
        return today <= self.expires

    @property
    def spec(self) -> str:
        return self.name + (f"@{self.versions}" if self.versions is not None else "")


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered rule list (first match wins), waivers, and how to apply them."""

    rules: tuple[Rule, ...]
    waivers: tuple[Waiver, ...] = ()
    mode: Mode = Mode.ENFORCE
    unscanned: FailMode = FailMode.OPEN
    name: str = ""
    digest: str = ""
    source: Path | None = None

    @property
    def needs_package_facts(self) -> bool:
        """True when some rule reads publish times or install scripts from the packument."""
        return any(r.match.needs_package_facts for r in self.rules)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy says about one version, and why.

    `action` is what is enforced; `intended` is what the matching rule asked for (they differ in
    dry-run mode, where everything is served and `intended` is logged as would-have-acted).
    """

    action: Action
    rule: str  # rule id, "waiver:<spec>", or "" when no rule matched
    reason: str
    intended: Action = Action.ALLOW
    waiver: str = ""
    pending: bool = False  # decided while the tarball scan was still pending
    details: tuple[str, ...] = field(default_factory=tuple)  # the verdict's reasons
    severity: Severity = Severity.LOW  # how npm audit reports it

    @property
    def acted(self) -> bool:
        """True when the policy did or would have done something other than allow."""
        return self.intended is not Action.ALLOW or self.action is not Action.ALLOW


ALLOWED = Decision(Action.ALLOW, "", "no rule matched")


def age(now: datetime, then: datetime | None) -> timedelta | None:
    return None if then is None else now - then
