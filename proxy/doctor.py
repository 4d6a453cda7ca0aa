"""`floodgate doctor`: is this Floodgate set up to work? One line per check, problems counted.

Checks: the upstream (configured, and answering a ping within a short timeout), the cache folder
(writable, its size), the policy in force (name, digest, rules, expired waivers), the OSV feed
(source, records, last update and age), the detector's index and the hosted packages. Each
check is a `Check`; the command prints them and exits 1 when any failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from proxy.errors import FloodgateError
from proxy.settings import Settings, ensure_cache_dir, resolve_upstream


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def render(self) -> str:
        return f"{'ok' if self.ok else 'PROBLEM':<8} {self.name:<9} {self.detail}"


def folder_size(path: Path) -> int:
    """Bytes of the files under `path` (files that vanish meanwhile count 0)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def check_upstream(settings: Settings, ping: Callable[[str], str | None]) -> Check:
    try:
        url = resolve_upstream(settings).upstream_url
    except FloodgateError as exc:
        return Check("upstream", False, str(exc))
    problem = ping(url.rstrip("/") + "/-/ping")
    if problem is not None:
        return Check("upstream", False, f"{url} does not answer: {problem}")
    return Check("upstream", True, f"{url} answers")


def check_cache(settings: Settings) -> Check:
    try:
        ensure_cache_dir(settings.cache_dir)
    except FloodgateError as exc:
        return Check("cache", False, str(exc))
    size = folder_size(settings.cache_dir)
    return Check("cache", True, f"{settings.cache_dir} writable, {_mb(size)}")


def check_policy(settings: Settings, today: date) -> Check:
    from proxy.policy.holder import resolve_policy_path
    from proxy.policy.loader import load_policy, policy_warnings

    try:
        policy = load_policy(resolve_policy_path(settings.policy))
    except FloodgateError as exc:
        return Check("policy", False, str(exc))
    expired = policy_warnings(policy, today)
    detail = (
        f"{policy.name} ({policy.source}), digest {policy.digest}, {len(policy.rules)} rules, "
        f"{len(policy.waivers)} waivers, {len(expired)} expired"
    )
    return Check("policy", not expired, detail + "".join(f"; {w}" for w in expired))


def check_feed(settings: Settings) -> Iterator[Check]:
    from proxy.detect.evaluate import INDEX_FILE
    from proxy.inspect import detector_dir, open_feed

    feed = open_feed(settings)
    if feed is None:
        yield Check("osv feed", True, "off (osv_feed is off: no OSV records are enforced)")
    else:
        loaded = feed.refresh()
        detail = feed.describe() + ("" if loaded else f"; not updated: {feed.error}")
        yield Check("osv feed", loaded, detail)
    index = detector_dir(settings) / INDEX_FILE
    where = "present" if index.exists() else "not created yet (nothing scanned)"
    yield Check("detector", True, f"index {index} {where}")


def check_storage(settings: Settings) -> Iterator[Check]:
    """The shared storage's checks (`floodgate storage check`), when it is set."""
    if settings.database_url is None and settings.blob_store is None:
        return
    from proxy.storage.ops import check

    for line in check(settings):
        yield Check(line.what, line.ok, line.detail)


def check_hosted(settings: Settings) -> Iterator[Check]:
    """The hosted packages (internal names without an internal registry): how many, and who
    may publish them."""
    if not (settings.internal_scopes or settings.internal_names) or settings.internal_upstream:
        return
    from proxy.hosted.document import live_versions
    from proxy.hosted.store import doc_json
    from proxy.storage.backends import open_database, open_hosted_store

    try:
        db = open_database(settings, run_migrations=False)
        store = open_hosted_store(settings, db)
    except FloodgateError as exc:
        yield Check("hosted", False, str(exc))
        return
    try:
        packages = versions = 0
        for _name, doc in store.documents():
            live = len(live_versions(doc_json(doc)))
            packages += live > 0
            versions += live
    except Exception as exc:  # a damaged or unreachable store is what doctor is for
        yield Check("hosted", False, f"{store.where} cannot be read: {exc}")
        return
    finally:
        store.close()
    publishers = ", ".join(f"{k}={v}" for k, v in settings.internal_publishers)
    who = publishers or f"the admin groups only ({', '.join(settings.admin_groups)})"
    yield Check(
        "hosted",
        True,
        f"{packages} packages, {versions} versions in {store.where}; publishers: {who}",
    )


def run_checks(settings: Settings, ping: Callable[[str], str | None], today: date) -> list[Check]:
    return [
        check_upstream(settings, ping),
        check_cache(settings),
        check_policy(settings, today),
        *check_feed(settings),
        *check_storage(settings),
        *check_hosted(settings),
    ]
