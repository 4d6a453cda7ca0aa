"""The package.json beside a lockfile: the project's name and its direct dependencies.

Some lockfiles (package-lock v1, yarn classic) do not record which packages the project itself
depends on; the manifest supplies those edges so dependency paths start at the right place.
It is read leniently: a field of the wrong type is ignored, never an error, because the audit
is about the lockfile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from proxy.audit.lockfiles.graph import EdgeKind

# npm installs a name listed in both dependencies and optionalDependencies as optional, and one
# in both dependencies and devDependencies as a production dependency
_FIELDS = (
    ("dependencies", EdgeKind.PROD),
    ("optionalDependencies", EdgeKind.OPTIONAL),
    ("devDependencies", EdgeKind.DEV),
)


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    spec: str
    kind: EdgeKind


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str | None = None
    dependencies: tuple[Dependency, ...] = ()
    workspaces: tuple[str, ...] = ()  # the `workspaces` globs
    folder: str = "."  # where the package.json is, relative to the project's
    members: tuple[Manifest, ...] = ()  # the workspaces' manifests, where the reader needs them

    def kind_of(self, name: str) -> EdgeKind | None:
        return next((dep.kind for dep in self.dependencies if dep.name == name), None)


def parse_manifest(text: str, folder: str = ".") -> Manifest:
    """The name, dependencies and workspace globs of package.json text (an empty Manifest if
    it is not JSON). `folder` is where it is, relative to the project."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return Manifest(folder=folder)
    if not isinstance(data, dict):
        return Manifest(folder=folder)
    found: dict[str, Dependency] = {}
    for field, kind in _FIELDS:
        deps = data.get(field)
        if isinstance(deps, dict):
            for name, spec in deps.items():
                if isinstance(spec, str) and not (kind is EdgeKind.DEV and name in found):
                    found[name] = Dependency(name, spec, kind)
    name = data.get("name")
    return Manifest(
        name=name if isinstance(name, str) and name else None,
        dependencies=tuple(found.values()),
        workspaces=_globs(data.get("workspaces")),
        folder=folder,
    )


def _globs(value: object) -> tuple[str, ...]:
    """`workspaces` is a list of globs, or (yarn 1) a mapping with them under `packages`."""
    if isinstance(value, dict):
        value = value.get("packages")
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)
