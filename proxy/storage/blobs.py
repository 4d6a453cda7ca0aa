"""The object side of shared storage: tarballs and saved packuments in an S3-compatible bucket.

`blob_store = s3://bucket/prefix`; the endpoint and credentials come from the environment as
every S3 tool reads them (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_DEFAULT_REGION`, or a profile). The client is boto3 (the reference S3 client, maintained
by AWS, works against any S3-compatible engine); its sync calls run in worker threads, as the
local file store's do.

Each replica keeps its own local folder (`proxy.cache.store`) as a cache in front of the
bucket: a tarball is looked for in memory, on the local disk, then in the bucket (streamed
into a local temporary file and verified against its integrity before it is used), and only
then fetched from the upstream (under a cluster-wide lease, so that one replica fetches it)
and uploaded. An upload is one PUT of the verified bytes with a checksum the server checks,
to a content-addressed key, conditional (`If-None-Match: *`: an object already there is never
rewritten): S3 makes an object visible whole or not at all, so a reader never sees half a
tarball; its size is checked after. When the bucket cannot be reached the replica
goes on with its local folder and the upstream, logs it once, and says so in readiness.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from proxy.cache.store import (
    CachedTarball,
    FileIndex,
    PackumentStore,
    Sink,
    TarballStore,
    parse_saved,
    saved_header,
)
from proxy.errors import HostedUnavailable, SettingsError, UpstreamBadResponse
from proxy.npm.integrity import Digest
from proxy.storage.cluster import Lease
from proxy.storage.health import Health

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

CHUNK = 256 * 1024  # bytes per read of a streamed object
S3_TIMEOUT = 10.0  # seconds to connect / per read
HOSTED_PREFIX = "hosted"  # the hosted packages' tarballs: never the cache's `tarballs/`


class BlobUnavailable(Exception):
    """The object store cannot be reached or refused the request."""


class BlobMissing(Exception):
    """No such object."""


class BlobExists(Exception):
    """A create-only write found the object there already."""


@dataclass(frozen=True, slots=True)
class BlobLocation:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> BlobLocation:
        """`s3://bucket/prefix` (pure); SettingsError for anything else."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or len(parts.netloc) < 3:
            raise SettingsError(
                f"blob_store {url!r} is not s3://BUCKET[/PREFIX] (bucket names have 3 or "
                "more characters)"
            )
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)


class S3Bucket:
    """The few S3 calls Floodgate makes, blocking (call from a thread)."""

    def __init__(self, location: BlobLocation, client: S3Client | None = None):
        self.location = location
        self.health = Health(f"the object store (s3://{location.bucket})", probe=self._probe)
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=S3_TIMEOUT,
                read_timeout=S3_TIMEOUT,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            self._client = boto3.client("s3", config=config)
        return self._client

    def _call(self, fn: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.health.fail_fast():
            raise BlobUnavailable(f"{self.health.what} is down: {self.health.error}")
        try:
            out = fn()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                self.health.succeeded()
                raise BlobMissing(code) from None
            if code in ("PreconditionFailed", "412", "NotImplemented", "501"):
                self.health.succeeded()
                raise BlobExists(code) from None
            self.health.failed(exc)
            raise BlobUnavailable(str(exc)) from exc
        except (BotoCoreError, OSError) as exc:
            self.health.failed(exc)
            raise BlobUnavailable(str(exc)) from exc
        self.health.succeeded()
        return out

    def _probe(self) -> None:
        self._call(lambda: self.client.head_bucket(Bucket=self.location.bucket))

    def stream(self, key: str, sink: Sink) -> int:
        """Feed the object's bytes to `sink` as they arrive; their count."""
        from botocore.exceptions import BotoCoreError

        body = self._call(lambda: self.client.get_object(Bucket=self.location.bucket, Key=key))[
            "Body"
        ]
        total = 0
        try:
            for chunk in body.iter_chunks(CHUNK):
                sink(chunk)
                total += len(chunk)
        except (BotoCoreError, OSError) as exc:
            self.health.failed(exc)
            raise BlobUnavailable(f"reading {key}: {exc}") from exc
        finally:
            body.close()
        return total

    def get(self, key: str) -> bytes:
        chunks: list[bytes] = []
        self.stream(key, chunks.append)
        return b"".join(chunks)

    def size(self, key: str) -> int:
        head = self._call(lambda: self.client.head_object(Bucket=self.location.bucket, Key=key))
        return int(head["ContentLength"])

    def put(self, key: str, body: bytes | Any, size: int, *, create_only: bool = False) -> None:
        """Upload `size` bytes (bytes or a binary file) in one PUT with a SHA-256 the server
        verifies (a PUT is visible whole or not at all), then check the stored size.

        `create_only` (content-addressed keys) is a conditional PUT (`If-None-Match: *`): an
        object already there is kept, never rewritten; a store without conditional writes
        gets a plain PUT of the same bytes."""
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}

        def put() -> None:
            self._call(
                lambda: self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ChecksumAlgorithm="SHA256",
                    **extra,
                )
            )

        try:
            put()
        except BlobExists as exc:
            if "NotImplemented" in str(exc) or "501" in str(exc):
                extra.clear()
                if hasattr(body, "seek"):
                    body.seek(0)
                put()
        stored = self.size(key)
        if stored != size:
            raise BlobUnavailable(f"{key}: stored {stored} bytes of {size}")

    def delete(self, key: str) -> None:
        self._call(lambda: self.client.delete_object(Bucket=self.location.bucket, Key=key))

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.location.key(prefix) + "/"
        )
        for page in self._call(lambda: list(pages)):
            out.extend(str(o["Key"]) for o in page.get("Contents", []))
        return out


class SharedTarballStore:
    """`TarballStore`'s interface: memory, local disk, the bucket, then the upstream."""

    def __init__(self, local: TarballStore, bucket: S3Bucket, lease: Lease):
        self.local = local
        self.bucket = bucket
        self.lease = lease
        self.upstream_fills = 0  # tarballs this replica fetched from the upstream

    @property
    def index(self) -> FileIndex:
        return self.local.index

    def blob_key(self, key: str) -> str:
        algorithm, _, digest = key.partition("-")
        return self.bucket.location.key("tarballs", algorithm, digest[:2], digest)

    def get(self, key: str) -> CachedTarball | None:
        return self.local.get(key)

    def in_use(self, key: str) -> AbstractContextManager[None]:
        return self.local.in_use(key)

    async def fill(
        self,
        key: str,
        expected: Digest | None,
        download: Callable[[Sink], Awaitable[int]],
        what: str,
    ) -> CachedTarball:
        """The tarball from the bucket when it is there, else from `download` (by one replica
        at a time, under the lease), then uploaded for the others."""
        found = await self._from_bucket(key, expected, what)
        if found is not None:
            return found
        async with self.lease.hold(f"tarball:{key}"):
            found = await self._from_bucket(key, expected, what)  # another replica's, meanwhile
            if found is not None:
                return found
            self.upstream_fills += 1
            tarball = await self.local.fill(key, expected, download, what)
            await self._upload(key, tarball, what)
            return tarball

    async def _from_bucket(
        self, key: str, expected: Digest | None, what: str
    ) -> CachedTarball | None:
        blob = self.blob_key(key)

        async def stream(sink: Sink) -> int:
            return await anyio.to_thread.run_sync(self.bucket.stream, blob, sink)

        try:
            return await self.local.fill(key, expected, stream, f"{what} (from the object store)")
        except BlobMissing:
            return None
        except BlobUnavailable:
            return None  # logged by Health; the upstream serves it
        except UpstreamBadResponse as exc:  # a corrupt copy: replaced by the upstream's
            log.warning("%s; deleting it, the upstream's copy replaces it", exc)
            with contextlib.suppress(BlobUnavailable, BlobMissing):
                await anyio.to_thread.run_sync(self.bucket.delete, blob)
            return None

    async def _upload(self, key: str, tarball: CachedTarball, what: str) -> None:
        blob = self.blob_key(key)

        def upload() -> None:
            if tarball.data is not None:
                self.bucket.put(blob, tarball.data, tarball.size, create_only=True)
            else:
                assert tarball.path is not None
                with tarball.path.open("rb") as f:
                    self.bucket.put(blob, f, tarball.size, create_only=True)

        try:
            await anyio.to_thread.run_sync(upload)
        except (BlobUnavailable, OSError) as exc:
            log.warning("could not upload %s to the object store: %s", what, exc)


class SharedPackumentStore:
    """`PackumentStore`'s interface: the last packument saved by any replica, in the bucket,
    with the local folder as a fallback when the bucket cannot be reached."""

    def __init__(self, local: PackumentStore, bucket: S3Bucket):
        self.local = local
        self.bucket = bucket

    @property
    def index(self) -> FileIndex:
        return self.local.index

    def blob_key(self, name: str) -> str:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return self.bucket.location.key("packuments", digest[:2], f"{digest}.json")

    def save(self, name: str, raw: bytes, etag: str | None) -> None:
        self.local.save(name, raw, etag)
        body = saved_header(name, etag) + raw
        try:
            self.bucket.put(self.blob_key(name), body, len(body))
        except BlobUnavailable as exc:
            log.debug("packument %r saved locally only: %s", name, exc)

    def load(self, name: str) -> tuple[bytes, str | None] | None:
        try:
            data = self.bucket.get(self.blob_key(name))
        except (BlobMissing, BlobUnavailable):
            return self.local.load(name)
        found = parse_saved(name, data)
        if found is None:
            log.warning("ignoring unreadable saved packument %r in the object store", name)
            return self.local.load(name)
        return found


class HostedBlobs:
    """The tarballs of the packages Floodgate hosts (`TarballBlobs`), in the bucket under
    `hosted/` by their SHA-512: apart from the tarball cache's `tarballs/` keys, because these
    are the only copy (nothing may evict or replace them). A key is written once (a
    conditional PUT, as the cache's are); a store that cannot be reached is HostedUnavailable."""

    def __init__(self, bucket: S3Bucket):
        self.bucket = bucket

    def blob_key(self, key: str) -> str:
        return self.bucket.location.key(HOSTED_PREFIX, "sha512", key[:2], key)

    def put(self, key: str, data: bytes) -> None:
        if hashlib.sha512(data).hexdigest() != key:
            raise ValueError(f"hosted tarball {key[:16]}...: the bytes do not match the key")
        with _hosted_unavailable("store a hosted tarball"):
            self.bucket.put(self.blob_key(key), data, len(data), create_only=True)

    def get(self, key: str) -> bytes | None:
        with _hosted_unavailable("read a hosted tarball"):
            try:
                return self.bucket.get(self.blob_key(key))
            except BlobMissing:
                return None

    def delete(self, key: str) -> None:
        with _hosted_unavailable("remove a hosted tarball"), contextlib.suppress(BlobMissing):
            self.bucket.delete(self.blob_key(key))


@contextlib.contextmanager
def _hosted_unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except BlobUnavailable as exc:
        raise HostedUnavailable(
            f"Floodgate cannot {what} (the hosted packages, in the object store): {exc}; "
            "nothing was lost, try again later"
        ) from exc
