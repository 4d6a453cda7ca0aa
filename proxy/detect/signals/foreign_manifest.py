"""foreign-manifest: the package.json inside the tarball is not this package's manifest.

What it detects: the manifest the tarball ships names another package than the one published
(a template's `@metamask/template-snap-monorepo`, `my-app`, the root of a monorepo), or is
marked `"private": true`. `npm publish` packs the package's own package.json and refuses a
private one, as pnpm and yarn do, so neither reaches the registry that way: the tarball was
built and pushed by other tooling, or a repository was uploaded as it is. Farms publish
through their own automation, straight from cloned repositories and templates; the registry
does not check a tarball's manifest against the document it serves (the "manifest confusion"
gap), so this is also where a tarball that installs something else than its metadata says
shows.

Known false positives: packages published by custom release tooling that rewrites the
packument but not the tarball, and very old packages from before the registry's checks. So it
is medium severity with low confidence: alone it never warns; beside a tea.yaml, or with
other traits of no function, it is the publishing trait that makes spam.
"""

from __future__ import annotations

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "foreign-manifest", "tarball manifest of another package", Severity.MEDIUM, Confidence.LOW,
    role=Role.FARM,
)  # fmt: skip


def check(s: Subject) -> Finding | None:
    t = s.tarball
    pj = t.package_json if t is not None else None
    if pj is None:
        return None
    raw = pj.get("name")
    shipped = raw if isinstance(raw, str) else ""
    other = shipped != "" and shipped != s.package.name
    private = pj.get("private") is True
    if not (other or private):
        return None
    why = []
    if other:
        why.append(f"names another package, {shipped[:100]!r}")
    if private:
        why.append('is marked "private": true, which npm refuses to publish')
    return SPEC.finding(
        "the package.json in the tarball " + " and ".join(why) + ": it was not published with npm",
        {"shipped_name": shipped or None, "private": private},
    )
