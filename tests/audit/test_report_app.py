"""The small app the report tests share, and checks that it is well-formed.

`my-app` (a package-lock.json v3) brings in express > body-parser > qs, a token-farming package
deep below qs (blocked by rule `token-farming`, tea-yaml finding), a hidden SEO-spam package, a
warned weak-signals package, a malicious one under a dry-run policy (monitor, would block), one
allowed by a waiver, a git dependency (not checkable), an `npm:` alias, a scoped package, one
the registry does not have (an error), and an integrity note on body-parser.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from proxy.audit.model import Audited, Location, LockedPackage, Lockfile, LockfileKind, Source
from proxy.detect.model import Confidence, Family, Finding, Label, Severity, Verdict
from proxy.policy.model import ALLOWED, Action, Decision, Severity as AuditSeverity

ROOT = "my-app"
LOCKFILE_PATH = Path("/srv/my-app/package-lock.json")
DETECTOR = "2026.11.1"
REGISTRY = "https://registry-host.invalid"


def tarball_bytes(name: str, version: str) -> bytes:
    """Stand-in tarball content, so the integrity values are real SRI strings."""
    return f"{name}-{version}.tgz".encode()


def sri(name: str, version: str) -> str:
    digest = hashlib.sha512(tarball_bytes(name, version)).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def locked(
    name: str,
    version: str,
    *path: str,
    line: int,
    dev: bool = False,
    optional: bool = False,
    alias: str | None = None,
) -> LockedPackage:
    """A registry package at `my-app > *path`, with the registry's resolved URL and integrity."""
    bare = name.rpartition("/")[2]
    return LockedPackage(
        name,
        version,
        (ROOT, *path),
        alias=alias,
        dev=dev,
        optional=optional,
        resolved=f"{REGISTRY}/{name}/-/{bare}-{version}.tgz",
        integrity=sri(name, version),
        location=Location(line, 5),
    )


def finding(
    signal: str,
    severity: Severity,
    confidence: Confidence,
    reason: str,
    family: Family = Family.SPAM,
) -> Finding:
    return Finding(signal, severity, confidence, reason, {}, family)


def verdict(p: LockedPackage, label: Label, score: int, *fs: Finding, osv: str = "") -> Verdict:
    return Verdict(p.name, p.version, score, label, fs, DETECTOR, (osv,) if osv else (), True)


def clean(p: LockedPackage, error: str | None = None) -> Audited:
    return Audited(p, verdict(p, Label.CLEAN, 0), ALLOWED, error)


SCOPED = locked("@babel/core", "7.24.0", "@babel/core", line=8, dev=True)
EXPRESS = locked("express", "4.19.2", "express", line=14)
BODY_PARSER = locked("body-parser", "1.20.2", "express", "body-parser", line=40)
QS = locked("qs", "6.11.0", "express", "body-parser", "qs", line=188)
TEA = locked("tea-farm-0042", "1.0.3", "express", "body-parser", "qs", "tea-farm-0042", line=260)
SEO = locked("free-robux-generator-2026", "1.0.0", "free-robux-generator-2026", line=100, dev=True)
WEAK = locked("left-padder", "0.0.2", "left-padder", line=150)
DRY = locked("evil-postinstall", "2.0.1", "left-padder", "evil-postinstall", line=96, optional=True)
WAIVED = locked("tiny-helpers", "1.0.0", "tiny-helpers", line=300)
ALIAS = locked("string-width", "4.2.3", "string-width-cjs", line=320, alias="string-width-cjs")
MISSING = locked("left-pad", "1.3.0", "left-pad", line=130)
GIT = LockedPackage(
    "internal-ui",
    "",
    (ROOT, "internal-ui"),
    source=Source.GIT,
    resolved="git+ssh://git@github.com/acme/internal-ui.git#5f1c2e0",
    location=Location(140, 5),
)

TEA_YAML = "ships a tea.yaml that registers the package with a tea.xyz wallet"
TEA_NAME = "the name follows a token-farm pattern (word-farm-NNNN)"
TEA_CODE = "no real code: index.js is 3 lines"
TEA_REASONS = (TEA_YAML, TEA_NAME, TEA_CODE)
SEO_REASON = "the name is search-engine bait (a free-robux generator lure)"
MAL_REASON = "the OSV malicious-packages feed lists evil-postinstall@2.0.1 (MAL-2025-4242)"
WAIVER_REASON = "waived until 2027-06-30 by alice@example.com: vetted by the platform team"
INTEGRITY_NOTE = (
    "the lockfile's integrity for body-parser@1.20.2 differs from the registry's: "
    "the lockfile or the registry changed the tarball"
)
MISSING_ERROR = "left-pad@1.3.0 is not in the registry"
GIT_ERROR = (
    "not checkable: a git dependency (git+ssh://git@github.com/acme/internal-ui.git#5f1c2e0)"
)

_tea = verdict(
    TEA,
    Label.SPAM,
    95,
    finding("tea-yaml", Severity.HIGH, Confidence.HIGH, TEA_YAML),
    finding("generated-name", Severity.MEDIUM, Confidence.MEDIUM, TEA_NAME),
    finding("trivial-code", Severity.MEDIUM, Confidence.MEDIUM, TEA_CODE),
)
_seo = verdict(
    SEO, Label.SPAM, 80, finding("spam-name", Severity.HIGH, Confidence.HIGH, SEO_REASON)
)
_weak = verdict(
    WEAK,
    Label.SUSPICIOUS,
    40,
    finding("young-package", Severity.LOW, Confidence.HIGH, "created 2 days ago", Family.RISK),
    finding("trivial-code", Severity.MEDIUM, Confidence.MEDIUM, "no real code: an empty module"),
)
_dry = verdict(  # the detector lists install-scripts first here; reports put the feed first
    DRY,
    Label.MALICIOUS,
    100,
    finding(
        "install-scripts", Severity.LOW, Confidence.HIGH, "runs a postinstall script", Family.RISK
    ),
    finding("known-malicious", Severity.CRITICAL, Confidence.HIGH, MAL_REASON, Family.MALWARE),
    osv="MAL-2025-4242",
)
_waived = verdict(
    WAIVED,
    Label.SUSPICIOUS,
    35,
    finding("publish-burst", Severity.MEDIUM, Confidence.MEDIUM, "12 versions in 4 minutes"),
)


def decision(v: Verdict, action: Action, rule: str, intended: Action | None = None) -> Decision:
    """What the engine decides for `v` when `rule` matches (and the mode or a waiver applies)."""
    severity = {Action.WARN: AuditSeverity.MODERATE}.get(intended or action, AuditSeverity.HIGH)
    return Decision(
        action,
        rule,
        "; ".join(v.reasons[:3]),
        intended or action,
        details=v.reasons,
        severity=severity,
    )


RESULTS: tuple[Audited, ...] = (
    clean(SCOPED),
    clean(EXPRESS),
    clean(BODY_PARSER, INTEGRITY_NOTE),
    clean(QS),
    Audited(TEA, _tea, decision(_tea, Action.BLOCK, "token-farming")),
    Audited(SEO, _seo, decision(_seo, Action.HIDE, "spam")),
    Audited(WEAK, _weak, decision(_weak, Action.WARN, "weak-signals")),
    Audited(DRY, _dry, decision(_dry, Action.MONITOR, "malicious", Action.BLOCK)),
    Audited(
        WAIVED,
        _waived,
        Decision(
            Action.ALLOW,
            "weak-signals",
            WAIVER_REASON,
            Action.WARN,
            waiver="tiny-helpers@1.0.0",
            details=_waived.reasons,
            severity=AuditSeverity.MODERATE,
        ),
    ),
    Audited(GIT, error=GIT_ERROR),
    clean(ALIAS),
    Audited(MISSING, error=MISSING_ERROR),
)
PACKAGES = tuple(r.package for r in RESULTS)
LOCKFILE = Lockfile(LOCKFILE_PATH, LockfileKind.PACKAGE_LOCK, "3", ROOT, PACKAGES)
FLAGGED = {TEA.name, SEO.name, WEAK.name, DRY.name}


def result_of(name: str) -> Audited:
    return next(r for r in RESULTS if r.package.name == name)


# ---- the app is well-formed -----------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_paths_run_from_the_root_to_the_installed_name(package: LockedPackage) -> None:
    assert package.path[0] == ROOT
    assert package.path[-1] == (package.alias or package.name)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_parent_on_a_path_is_locked(package: LockedPackage) -> None:
    paths = {p.path for p in PACKAGES}
    for depth in range(2, len(package.path)):
        assert package.path[:depth] in paths


def test_names_and_lines_are_unique() -> None:
    assert len({p.name for p in PACKAGES}) == len(PACKAGES)
    assert len({p.location for p in PACKAGES}) == len(PACKAGES)


def test_integrity_is_sri_sha512() -> None:
    digest = base64.b64decode(sri("qs", "6.11.0").removeprefix("sha512-"))
    assert digest == hashlib.sha512(tarball_bytes("qs", "6.11.0")).digest()
