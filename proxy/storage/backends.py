"""Settings to storage: the embedded default, or the shared database and object store.

Nothing here runs for the embedded default but the `if`: `database_url` and `blob_store`
unset, every store is the SQLite file or local folder it always was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.cache.store import PackumentSaver, PackumentStore, TarballCache, TarballStore
from proxy.decisions import DecisionRecord, DecisionWriter
from proxy.errors import SettingsError
from proxy.hosted.store import HostedStore
from proxy.settings import Settings
from proxy.storage.cluster import Lease, NoLeases
from proxy.tokens import TokenStorage, TokenStore

if TYPE_CHECKING:
    from proxy.storage.blobs import S3Bucket
    from proxy.storage.sql import PgDatabase

log = logging.getLogger(__name__)

MB = 1024 * 1024
DECISIONS_FILE = "decisions.sqlite3"
LEASE_POOL_MAX = 16  # leases held at once per replica (each holds a connection)


def open_database(
    settings: Settings, *, run_migrations: bool = True, degrade: bool = False
) -> PgDatabase | None:
    """The shared database (migrated first), or None for the embedded default. Raises
    SettingsError naming the problem when it cannot be reached or migrated; but with `degrade`
    (serving, see `PgDatabase`) a database that cannot be reached is only logged: the replica
    starts without it and migrates it when it answers."""
    url = settings.database_url
    if url is None:
        return None
    try:
        import psycopg

        from proxy.storage.sql import PgDatabase
    except ImportError as exc:
        raise SettingsError(
            f"database_url needs the shared-storage extra: pip install 'floodgate[shared]' ({exc})"
        ) from None
    db = PgDatabase(url, degrade=degrade)
    db.migrated = not run_migrations  # a reader does not change the schema
    if run_migrations:
        try:
            db.migrate()
        except psycopg.OperationalError as exc:
            if not degrade:
                db.close()
                raise SettingsError(f"the shared database cannot be reached: {exc}") from None
            db.health.failed(exc)  # logged; migrated when it answers
        except psycopg.Error as exc:
            db.close()
            raise SettingsError(f"the shared database cannot be migrated: {exc}") from None
    return db


def open_leases(db: PgDatabase | None) -> Lease:
    if db is None:
        return NoLeases()
    from proxy.storage.cluster import PgLeases
    from proxy.storage.sql import open_pool

    pool = open_pool(db.url, max_size=LEASE_POOL_MAX, name="floodgate-leases")
    return PgLeases(pool, db.health)


def open_decision_log(settings: Settings, db: PgDatabase | None) -> DecisionWriter:
    if db is None:
        from proxy.decisions import DecisionLog

        return DecisionLog(settings.cache_dir / DECISIONS_FILE)
    from proxy.storage.decisions import SharedDecisionLog

    return SharedDecisionLog(db)


def open_token_store(settings: Settings, db: PgDatabase | None) -> TokenStorage:
    """The client tokens: `tokens.sqlite3` in the cache folder, or the shared database's."""
    if db is None:
        return TokenStore.in_cache(settings.cache_dir)
    from proxy.storage.tokens import SharedTokenStore

    return SharedTokenStore(db)


def open_hosted_store(
    settings: Settings, db: PgDatabase | None, bucket: S3Bucket | None = None
) -> HostedStore:
    """The hosted packages: `hosted/registry.sqlite3` in the cache folder (never evicted), or
    the shared database's `hosted_*` tables, their tarballs in the object store (under
    `hosted/`) when `blob_store` is set (`bucket`: the one the tarball cache uses, else one
    opened here) and in the database when it is not."""
    if db is None:
        return HostedStore.in_cache(settings.cache_dir)
    if settings.blob_store is None:
        return HostedStore(db, "the shared database")
    from proxy.storage.blobs import BlobLocation, HostedBlobs, S3Bucket

    if bucket is None:
        bucket = S3Bucket(BlobLocation.parse(settings.blob_store))
    return HostedStore(db, "the shared database and object store", HostedBlobs(bucket))


@contextmanager
def token_store(settings: Settings) -> Iterator[TokenStorage]:
    """The token store the settings name, with a database handle of its own (the shared one
    migrated first, so that the first token can be made before any replica has started),
    closed after use: what the `token` commands use."""
    db = open_database(settings)
    store = open_token_store(settings, db)
    try:
        yield store
    finally:
        store.close()
        if db is not None:
            db.close()


def query_decisions(
    settings: Settings,
    *,
    package: str | None = None,
    actions: Sequence[str] = (),
    since: float | None = None,
    limit: int | None = None,
    group: str | None = None,
    token: str | None = None,
) -> Iterator[DecisionRecord]:
    """`proxy.decisions.query` on whichever log the settings name."""
    if settings.database_url is None:
        from proxy.decisions import query

        yield from query(
            decisions_path(settings),
            package=package,
            actions=actions,
            since=since,
            limit=limit,
            group=group,
            token=token,
        )
        return
    from proxy.storage.decisions import SharedDecisionLog

    db = open_database(settings, run_migrations=False)
    assert db is not None
    log_ = SharedDecisionLog(db)
    try:
        yield from log_.query(
            package=package, actions=actions, since=since, limit=limit, group=group, token=token
        )
    finally:
        log_.close()
        db.close()


def decisions_path(settings: Settings) -> Path:
    return settings.cache_dir / DECISIONS_FILE


def open_blob_stores(settings: Settings, leases: Lease) -> tuple[TarballCache, PackumentSaver]:
    """The tarball store and the saved-packument store the settings name."""
    cache_dir = settings.cache_dir
    tarballs = TarballStore(
        cache_dir / "tarballs", settings.tarball_cache_mb * MB, settings.tarball_memory_mb * MB
    )
    saved = PackumentStore(cache_dir / "packuments", settings.tarball_cache_mb * MB // 4)
    if settings.blob_store is None:
        return tarballs, saved
    try:
        from proxy.storage.blobs import (
            BlobLocation,
            S3Bucket,
            SharedPackumentStore,
            SharedTarballStore,
        )
    except ImportError as exc:  # pragma: no cover - the shared extra is not installed
        raise SettingsError(
            f"blob_store needs the shared-storage extra: pip install 'floodgate[shared]' ({exc})"
        ) from None
    bucket = S3Bucket(BlobLocation.parse(settings.blob_store))
    return SharedTarballStore(tarballs, bucket, leases), SharedPackumentStore(saved, bucket)
