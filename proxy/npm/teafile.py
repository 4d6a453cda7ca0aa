"""`tea.yaml`: the tea.xyz registration file that names the wallets a package's rewards go to.

Two shapes are in the wild: the current one lists wallets under `codeOwners` with a `quorum`;
older files nest them under `constitution` → `ethereum-addresses`. Wallets are read from the
parsed document and, as a fallback for files YAML cannot parse, from the raw text, so a
malformed file still yields its addresses.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import yaml

log = logging.getLogger(__name__)

MAX_TEA_BYTES = 64 * 1024  # bytes of a tea.yaml that are parsed; real ones are ~150 bytes
_WALLET = re.compile(r"\b0x[0-9a-fA-F]{40}\b")
_MAX_NODES = 10_000  # nodes visited when walking the parsed document (aliases can fan out)


@dataclass(frozen=True, slots=True)
class TeaFile:
    """What a tea.yaml says: its wallets (lower-cased, in file order), quorum and layout."""

    path: str
    wallets: tuple[str, ...]
    quorum: int | None
    layout: str  # "codeOwners", "constitution", "unparsed" or "other"
    parsed: bool

    @property
    def has_wallet(self) -> bool:
        return bool(self.wallets)


def _walk_strings(node: Any) -> list[str]:
    out: list[str] = []
    stack = [node]
    seen = 0
    while stack and seen < _MAX_NODES:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def parse_tea(path: str, text: str) -> TeaFile:
    """Parse a tea.yaml's text (never raises); wallets come back lower-cased and de-duplicated."""
    text = text[:MAX_TEA_BYTES]
    doc: Any = None
    parsed = True
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        log.debug("tea file %s does not parse as YAML: %s", path, exc)
        parsed = False
    layout = "unparsed" if not parsed else "other"
    quorum: int | None = None
    found: list[str] = []
    if isinstance(doc, dict):
        if "codeOwners" in doc:
            layout = "codeOwners"
        elif "constitution" in doc:
            layout = "constitution"
        q = doc.get("quorum")
        if q is None and isinstance(doc.get("constitution"), dict):
            q = doc["constitution"].get("quorum")
        quorum = q if isinstance(q, int) and not isinstance(q, bool) else None
        for s in _walk_strings(doc):
            found.extend(_WALLET.findall(s))
    if not found:
        found = _WALLET.findall(text)
    wallets = tuple(dict.fromkeys(w.lower() for w in found))
    return TeaFile(path, wallets, quorum, layout, parsed)


def is_tea_path(path: str) -> bool:
    """True for `tea.yaml` / `tea.yml` at any depth (case-insensitive, as scanners match it)."""
    base = path.rsplit("/", 1)[-1].lower()
    return base in ("tea.yaml", "tea.yml")
