"""A fake of OSV's per-ecosystem bucket layout, as files by URL path: `<prefix>/npm/all.zip`,
`<prefix>/npm/modified_id.csv` (newest first) and `<prefix>/npm/<ID>.json`. Serve it from a
FakeRegistry (its `tarballs` dict maps paths to bytes) or through an injected fetch."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any


def mal_record(
    rid: str, name: str, versions: list[str], modified: str, **extra: Any
) -> dict[str, Any]:
    """An OpenSSF malicious-packages record, shaped like the feed's."""
    return {
        "schema_version": "1.6.0",
        "id": rid,
        "modified": modified,
        "published": modified,
        "summary": f"Malicious code in {name} (npm)",
        "affected": [{"package": {"ecosystem": "npm", "name": name}, "versions": versions}],
        "database_specific": {"malicious-packages-origins": [{"source": "ghsa-malware"}]},
        **extra,
    }


@dataclass
class OsvBucket:
    prefix: str = "/osv"
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    archived: set[str] = field(default_factory=set)  # ids the all.zip holds

    def publish(self, record: dict[str, Any], *, in_archive: bool = False) -> None:
        self.records[record["id"]] = record
        if in_archive:
            self.archived.add(record["id"])

    def files(self) -> dict[str, bytes]:
        """Every file of the layout, by URL path."""
        base = f"{self.prefix}/npm"
        out: dict[str, bytes] = {}
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            for rid in sorted(self.archived):
                z.writestr(f"{rid}.json", json.dumps(self.records[rid]))
        out[f"{base}/all.zip"] = archive.getvalue()
        newest_first = sorted(self.records.values(), key=lambda r: r["modified"], reverse=True)
        out[f"{base}/modified_id.csv"] = "".join(
            f"{r['modified']},{r['id']}\n" for r in newest_first
        ).encode()
        for rid, r in self.records.items():
            out[f"{base}/{rid}.json"] = json.dumps(r).encode()
        return out
