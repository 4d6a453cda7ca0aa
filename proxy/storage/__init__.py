"""Where Floodgate keeps what it learns, behind interfaces with two implementations each.

    embedded (the default, zero setup)      shared (N replicas, `database_url`, `blob_store`)
    SQLite files under cache_dir            PostgreSQL (psycopg 3, a pool, migrations on start)
    tarballs/packuments under cache_dir     S3-compatible object storage (boto3), with the
                                            local folder kept as each replica's own cache

`proxy.storage.sql` is the SQL side (verdicts, the detector's indexes, the decision log),
`proxy.storage.blobs` the object side, `proxy.storage.cluster` what replicas share at run time
(one fetch per tarball cluster-wide, change notifications).
"""

from __future__ import annotations
