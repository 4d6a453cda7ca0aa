"""A safe streaming reader of npm `.tgz` files: what is inside, without extracting anything.

The reader decompresses and parses the tar stream itself (ustar, pax and GNU long names), hashes
every regular file with sha256 as it streams past, and keeps the text of the few files the
detector reads (package.json, tea.yaml, README, small JavaScript sources). Nothing is written to
disk and no link is followed. Hostile input never raises: path traversal, links, devices, caps
that were hit, bad gzip and truncation are returned as `problems`, and the facts say whether the
whole archive was seen (`complete`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from proxy.npm.teafile import TeaFile, is_tea_path, parse_tea

log = logging.getLogger(__name__)

MAX_ENTRIES = 65_536  # tar members, directories included
MAX_UNPACKED_BYTES = 512 * 1024 * 1024  # bytes of tar stream after gunzip
MAX_RATIO = 100  # unpacked / compressed bytes, enforced past RATIO_FLOOR
RATIO_FLOOR = 4 * 1024 * 1024  # bytes unpacked before the ratio cap applies
BOMB_RATIO = 500  # past the ratio cap this much, it is a compression bomb (zeros give ~1000x)
MAX_FILE_BYTES = 128 * 1024 * 1024  # one member
MAX_SECONDS = 5.0  # wall-clock seconds for one tarball
MAX_META_BYTES = 64 * 1024  # a pax header or GNU long name
MAX_PACKAGE_JSON_BYTES = 1024 * 1024
MAX_TEXT_BYTES = 8 * 1024  # README prefix kept
MAX_SOURCE_BYTES = 64 * 1024  # one JavaScript source kept
MAX_SOURCES_TOTAL = 1024 * 1024  # all JavaScript sources kept
MAX_KEPT_FILES = 8  # package.json / tea.yaml copies kept
CHUNK = 64 * 1024  # bytes read from the source and decompressed per step
BLOCK = 512

# Sources whose text is kept (bounded: MAX_SOURCE_BYTES each, MAX_SOURCES_TOTAL in all): import
# checks, entry points, scaffold markers and filler need them.
SOURCE_SUFFIXES = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue", ".svelte")


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    DEVICE = "device"
    FIFO = "fifo"
    OTHER = "other"


class ProblemKind(StrEnum):
    """Why a tarball is not what a packed npm package looks like, or was not read to the end."""

    NOT_GZIP = "not_gzip"
    BAD_GZIP = "bad_gzip"
    BAD_TAR = "bad_tar"
    TRUNCATED = "truncated"
    PATH_TRAVERSAL = "path_traversal"
    LINK = "link"
    DEVICE = "device"
    TOO_MANY_ENTRIES = "too_many_entries"
    TOO_LARGE = "too_large"
    RATIO = "compression_ratio"
    FILE_TOO_LARGE = "file_too_large"
    TIMEOUT = "timeout"
    BOMB = "compression_bomb"  # inflates past BOMB_RATIO: built to fill the installer's disk
    SIZE_LIE = "size_lie"  # a member declaring more than MAX_UNPACKED_BYTES where data ends

    @property
    def hostile(self) -> bool:
        """Problems no `npm pack` produces: an archive crafted to attack an extractor (or the
        disk it extracts to)."""
        return self in (
            ProblemKind.PATH_TRAVERSAL,
            ProblemKind.DEVICE,
            ProblemKind.BOMB,
            ProblemKind.SIZE_LIE,
        )

    @property
    def stops_reading(self) -> bool:
        # An oversized file is skipped, not read, and the rest of the archive still is: the
        # skip goes through the decompressor, so a bomb still trips the ratio cap.
        return self not in (
            ProblemKind.PATH_TRAVERSAL,
            ProblemKind.LINK,
            ProblemKind.DEVICE,
            ProblemKind.FILE_TOO_LARGE,
        )


@dataclass(frozen=True, slots=True)
class TarballLimits:
    """The caps the reader enforces; the module constants are the defaults."""

    max_entries: int = MAX_ENTRIES
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES
    max_ratio: int = MAX_RATIO
    ratio_floor: int = RATIO_FLOOR
    bomb_ratio: int = BOMB_RATIO
    max_file_bytes: int = MAX_FILE_BYTES
    max_seconds: float = MAX_SECONDS


DEFAULT_LIMITS = TarballLimits()


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    path: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "path": self.path, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One tar member: its path as archived, kind, size and (for files) sha256 hex."""

    path: str
    kind: EntryKind
    size: int
    sha256: str = ""
    target: str = ""  # link target, recorded, never followed


@dataclass(frozen=True, slots=True)
class TarballFacts:
    """What a tarball holds. Built by `read_tarball` or, for corpus cases, from a manifest.

    `sources` holds the text of small JavaScript files; `sources_complete` is True only when
    every source file of the package is in it (so "never imported" can be concluded).
    """

    entries: tuple[TarEntry, ...]
    package_json: Mapping[str, Any] | None = None
    package_json_path: str | None = None
    tea_files: tuple[TeaFile, ...] = ()
    readme_path: str | None = None
    readme_size: int | None = None
    readme_text: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    sources_complete: bool = False
    problems: tuple[Problem, ...] = ()
    complete: bool = True
    compressed_size: int | None = None
    unpacked_size: int = 0

    @property
    def files(self) -> tuple[TarEntry, ...]:
        return tuple(e for e in self.entries if e.kind is EntryKind.FILE)

    @property
    def root(self) -> str:
        """The archive's top folder (`package` for npm-packed tarballs)."""
        for e in self.entries:
            if "/" in e.path:
                return e.path.split("/", 1)[0]
        return ""

    def relative(self, path: str) -> str:
        """`path` without the archive's top folder, as npm installs it."""
        return path.split("/", 1)[1] if "/" in path else path

    @property
    def install_scripts(self) -> dict[str, str]:
        scripts = (self.package_json or {}).get("scripts")
        if not isinstance(scripts, dict):
            return {}
        return {
            k: str(v)
            for k, v in scripts.items()
            if k in ("preinstall", "install", "postinstall") and isinstance(v, str)
        }

    @property
    def bins(self) -> dict[str, str]:
        pj = self.package_json or {}
        b = pj.get("bin")
        if isinstance(b, str):
            name = str(pj.get("name") or "").rsplit("/", 1)[-1]
            return {name: b}
        if isinstance(b, dict):
            return {str(k): str(v) for k, v in b.items() if isinstance(v, str)}
        return {}

    @property
    def entry_point(self) -> str | None:
        """The archive path of the file `require(name)` would load, if it is in the archive."""
        pj = self.package_json or {}
        base = posixpath.dirname(self.package_json_path or f"{self.root or 'package'}/x")
        candidates: list[str] = []
        main = pj.get("main")
        if isinstance(main, str) and main.strip():
            candidates.append(main.strip())
        target = _export_target(pj.get("exports"))
        if target is not None:
            candidates.append(target)
        candidates.append("index.js")
        present = {e.path for e in self.entries if e.kind is EntryKind.FILE}
        for c in candidates:
            p = posixpath.normpath(posixpath.join(base, c))
            for option in (p, p + ".js", p + ".cjs", p + ".mjs", p + "/index.js"):
                if option in present:
                    return option
        return None


def _export_target(exports: Any, depth: int = 0) -> str | None:
    """The file package.json `exports` maps the package itself (".") to: a string, or the first
    string found through conditions (`{"import": ..., "require": ...}`; `types` left out),
    nested at most 4 deep."""
    if isinstance(exports, str):
        return exports
    if isinstance(exports, list):
        return next((t for e in exports if (t := _export_target(e, depth + 1))), None)
    if not isinstance(exports, dict) or depth > 4:
        return None
    if "." in exports:
        return _export_target(exports["."], depth + 1)
    if any(str(k).startswith(".") for k in exports):
        return None  # subpaths only: the package itself exports nothing
    code = (v for k, v in exports.items() if k not in ("types", "typings"))  # not a .d.ts
    return next((t for v in code if (t := _export_target(v, depth + 1))), None)


@dataclass(slots=True)
class _State:
    limits: TarballLimits
    started: float
    problems: list[Problem] = field(default_factory=list)
    stopped: bool = False
    member: str = ""  # the member being read, for problems the decompressor finds

    def problem(self, kind: ProblemKind, path: str, detail: str) -> None:
        self.problems.append(Problem(kind, path, detail))
        if kind.stops_reading:
            self.stopped = True
        log.debug("tarball problem %s at %r: %s", kind, path, detail)


class _Gunzip:
    """Decompresses a byte source in bounded steps, enforcing size, ratio and time caps."""

    def __init__(self, source: BinaryIO, state: _State):
        self.source = source
        self.state = state
        self.dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.buf = bytearray()
        self.pos = 0
        self.compressed = 0
        self.unpacked = 0
        self.eof = False
        self.checked_magic = False

    def _fill(self) -> bool:
        """Add decompressed bytes to the buffer; False when nothing more will come."""
        st = self.state
        if st.stopped or self.eof:
            return False
        if time.monotonic() - st.started > st.limits.max_seconds:
            st.problem(ProblemKind.TIMEOUT, "", f"over {st.limits.max_seconds}s")
            return False
        if self.dec.unconsumed_tail:
            data = self.dec.unconsumed_tail
        else:
            data = self.source.read(CHUNK)
            if not self.checked_magic:
                self.checked_magic = True
                if data[:2] != b"\x1f\x8b":
                    st.problem(ProblemKind.NOT_GZIP, "", "the file does not start with gzip magic")
                    return False
            if not data:
                if not self.dec.eof:
                    st.problem(ProblemKind.TRUNCATED, "", "gzip stream ends early")
                self.eof = True
                return False
            self.compressed += len(data)
            if self.dec.eof:  # concatenated gzip members
                data = self.dec.unused_data + data
                self.dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            out = self.dec.decompress(data, CHUNK * 4)
        except zlib.error as exc:
            st.problem(ProblemKind.BAD_GZIP, "", str(exc))
            return False
        self.unpacked += len(out)
        lim = st.limits
        if self.unpacked > lim.max_unpacked_bytes:
            st.problem(ProblemKind.TOO_LARGE, "", f"over {lim.max_unpacked_bytes} bytes unpacked")
            return False
        # Compressed bytes actually inflated so far (not merely read ahead into the tail).
        consumed = max(1, self.compressed - len(self.dec.unconsumed_tail))
        if self.unpacked > lim.ratio_floor and self.unpacked > lim.max_ratio * consumed:
            bomb = self.unpacked > lim.bomb_ratio * consumed
            over = lim.bomb_ratio if bomb else lim.max_ratio
            st.problem(
                ProblemKind.BOMB if bomb else ProblemKind.RATIO,
                st.member,
                f"{self.unpacked} bytes from {consumed} compressed (over {over}x)",
            )
            return False
        if self.pos > CHUNK:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += out
        return True

    def read(self, n: int) -> bytes:
        """Up to `n` bytes; fewer only at the end of the stream or when a cap stopped reading."""
        while len(self.buf) - self.pos < n:
            if not self._fill() and len(self.buf) - self.pos < n:
                break
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += len(out)
        return out


def _octal(field_: bytes) -> int | None:
    if field_ and field_[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field_[1:], "big")
        return value
    text = field_.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _cstr(field_: bytes) -> str:
    return field_.split(b"\0", 1)[0].decode("utf-8", "replace")


def _checksum_ok(header: bytes) -> bool:
    stored = _octal(header[148:156])
    computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
    return stored == computed


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return out


def _unsafe_path(path: str) -> bool:
    if path.startswith("/") or "\\" in path or "\0" in path or (len(path) > 1 and path[1] == ":"):
        return True
    return ".." in path.split("/")


_TYPES = {
    b"0": EntryKind.FILE,
    b"\0": EntryKind.FILE,
    b"7": EntryKind.FILE,
    b"1": EntryKind.HARDLINK,
    b"2": EntryKind.SYMLINK,
    b"3": EntryKind.DEVICE,
    b"4": EntryKind.DEVICE,
    b"5": EntryKind.DIR,
    b"6": EntryKind.FIFO,
}


def _wanted(path: str) -> int:
    """How many bytes of this file's content to keep (0: hash only)."""
    base = path.rsplit("/", 1)[-1]
    lower = base.lower()
    if base == "package.json":
        return MAX_PACKAGE_JSON_BYTES
    if is_tea_path(path):
        return MAX_TEXT_BYTES * 8
    if lower.startswith("readme") and path.count("/") <= 1:
        return MAX_TEXT_BYTES
    if lower.endswith(SOURCE_SUFFIXES) and "/node_modules/" not in path:
        return MAX_SOURCE_BYTES
    return 0


def _open(source: bytes | bytearray | BinaryIO | str | Path) -> tuple[BinaryIO, bool]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, str | Path):
        return open(source, "rb"), True
    return source, False


def read_tarball(
    source: bytes | bytearray | BinaryIO | str | Path, limits: TarballLimits = DEFAULT_LIMITS
) -> TarballFacts:
    """Read a `.tgz` (bytes, binary file object or path) into `TarballFacts`; never raises on
    hostile or broken content (an unreadable path still raises OSError)."""
    stream, owned = _open(source)
    try:
        return _read(stream, limits)
    finally:
        if owned:
            stream.close()


def _read(stream: BinaryIO, limits: TarballLimits) -> TarballFacts:
    st = _State(limits, time.monotonic())
    gz = _Gunzip(stream, st)
    entries: list[TarEntry] = []
    kept: dict[str, bytes] = {}
    sources_total = 0
    sources_dropped = False
    pax_global: dict[str, str] = {}
    pending: dict[str, str] = {}
    ended = False
    while not st.stopped:
        header = gz.read(BLOCK)
        if not header:
            break
        if len(header) < BLOCK:
            if not st.stopped:
                st.problem(ProblemKind.TRUNCATED, "", "partial tar header")
            break
        if header == bytes(BLOCK):
            ended = True
            break
        if not _checksum_ok(header):
            st.problem(ProblemKind.BAD_TAR, "", f"bad header checksum after {len(entries)} entries")
            break
        size = _octal(header[124:136])
        if size is None or size < 0:
            st.problem(ProblemKind.BAD_TAR, "", "unreadable size field")
            break
        typeflag = header[156:157]
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > MAX_META_BYTES:
                st.problem(ProblemKind.BAD_TAR, "", f"metadata entry of {size} bytes")
                break
            data = gz.read(padded)[:size]
            if len(data) < size:
                if not st.stopped:
                    st.problem(ProblemKind.TRUNCATED, "", "metadata entry cut short")
                break
            if typeflag == b"x":
                pending.update(_pax(data))
            elif typeflag == b"g":
                pax_global.update(_pax(data))
            elif typeflag == b"L":
                pending["path"] = data.rstrip(b"\0").decode("utf-8", "replace")
            else:
                pending["linkpath"] = data.rstrip(b"\0").decode("utf-8", "replace")
            continue
        meta = {**pax_global, **pending}
        pending = {}
        name = _cstr(header[0:100])
        # The ustar prefix is NUL-terminated: node-tar keeps atime/ctime in the tail of the
        # field (as star does), so bytes after the first NUL are not part of the name.
        prefix = _cstr(header[345:500]) if header[257:262] == b"ustar" else ""
        if prefix:
            name = prefix + "/" + name
        path = meta.get("path", name)
        if "size" in meta and meta["size"].isdigit():
            size = int(meta["size"])
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if path.startswith("./"):
            path = path[2:]
        kind = _TYPES.get(typeflag, EntryKind.OTHER)
        target = meta.get("linkpath", _cstr(header[157:257]))
        st.member = path
        if len(entries) >= limits.max_entries:
            st.problem(ProblemKind.TOO_MANY_ENTRIES, path, f"over {limits.max_entries} entries")
            break
        if _unsafe_path(path):
            st.problem(ProblemKind.PATH_TRAVERSAL, path, "absolute path or '..' in the member name")
        if kind in (EntryKind.SYMLINK, EntryKind.HARDLINK):
            st.problem(ProblemKind.LINK, path, f"{kind.value} to {target!r} (not followed)")
        elif kind in (EntryKind.DEVICE, EntryKind.FIFO):
            st.problem(ProblemKind.DEVICE, path, f"{kind.value} entry")
        if kind is not EntryKind.FILE:
            entries.append(
                TarEntry(path, kind, 0, "", target if kind.value.endswith("link") else "")
            )
            _skip(gz, padded, st)  # links and devices carry no data, but skip what is declared
            continue
        if size > limits.max_file_bytes:
            st.problem(
                ProblemKind.FILE_TOO_LARGE, path, f"{size} bytes (over {limits.max_file_bytes})"
            )
            entries.append(TarEntry(path, kind, size, "", ""))  # not hashed
            missing = _skip(gz, padded, st)
            if missing and not st.stopped:
                # The data ends inside a member too large to read: if it declares more than
                # any package may unpack to, the header lies to make an extractor reserve it.
                lie = size > limits.max_unpacked_bytes
                st.problem(
                    ProblemKind.SIZE_LIE if lie else ProblemKind.TRUNCATED,
                    path,
                    f"declares {size} bytes; the archive ends {missing} bytes short",
                )
                break
            continue
        want = _wanted(path)
        if want == MAX_SOURCE_BYTES and (sources_total + min(size, want) > MAX_SOURCES_TOTAL):
            want, sources_dropped = 0, True
        digest, head, got = _consume(gz, size, padded, want, st)
        if got < size:
            if not st.stopped:
                st.problem(ProblemKind.TRUNCATED, path, f"{got} of {size} bytes")
            break
        entries.append(TarEntry(path, EntryKind.FILE, size, digest))
        if want:
            if want == MAX_SOURCE_BYTES:
                if size > MAX_SOURCE_BYTES:
                    sources_dropped = True
                    continue
                sources_total += size
            kept[path] = head
    complete = not st.stopped and not any(p.kind is ProblemKind.TRUNCATED for p in st.problems)
    if complete and not ended:
        log.debug("tarball has no end-of-archive marker after %d entries", len(entries))
    return _facts(entries, kept, tuple(st.problems), complete, gz, not sources_dropped)


def _skip(gz: _Gunzip, n: int, st: _State) -> int:
    """Skip `n` bytes; return how many were missing when the stream ended first."""
    while n > 0 and not st.stopped:
        chunk = gz.read(min(n, CHUNK))
        if not chunk:
            return n
        n -= len(chunk)
    return 0


def _consume(gz: _Gunzip, size: int, padded: int, want: int, st: _State) -> tuple[str, bytes, int]:
    """Hash `size` bytes (keeping the first `want`), then skip the padding."""
    h = hashlib.sha256()
    head = bytearray()
    left = size
    while left > 0:
        chunk = gz.read(min(left, CHUNK))
        if not chunk:
            break
        h.update(chunk)
        if len(head) < want:
            head += chunk[: want - len(head)]
        left -= len(chunk)
    _skip(gz, padded - size, st)
    return h.hexdigest(), bytes(head), size - left


def _depth(path: str) -> tuple[int, str]:
    return (path.count("/"), path)


def _facts(
    entries: list[TarEntry],
    kept: dict[str, bytes],
    problems: tuple[Problem, ...],
    complete: bool,
    gz: _Gunzip,
    sources_whole: bool,
) -> TarballFacts:
    texts = {p: b.decode("utf-8", "replace") for p, b in kept.items()}
    facts = facts_from_texts(
        entries,
        texts,
        problems=problems,
        complete=complete,
        compressed_size=gz.compressed,
        unpacked_size=gz.unpacked,
    )
    sources = {p: t for p, t in texts.items() if p.lower().endswith(SOURCE_SUFFIXES)}
    return TarballFacts(
        entries=facts.entries,
        package_json=facts.package_json,
        package_json_path=facts.package_json_path,
        tea_files=facts.tea_files,
        readme_path=facts.readme_path,
        readme_size=facts.readme_size,
        readme_text=facts.readme_text,
        sources=sources,
        sources_complete=complete and sources_whole,
        problems=problems,
        complete=complete,
        compressed_size=gz.compressed,
        unpacked_size=gz.unpacked,
    )


def facts_from_texts(
    entries: list[TarEntry] | tuple[TarEntry, ...],
    texts: Mapping[str, str],
    *,
    problems: tuple[Problem, ...] = (),
    complete: bool = True,
    compressed_size: int | None = None,
    unpacked_size: int = 0,
) -> TarballFacts:
    """Facts from an entry list and the text of some of its files (package.json, tea.yaml,
    README). Used by the reader and to rebuild facts from a manifest (corpus cases)."""
    pj_paths = sorted((p for p in texts if p.rsplit("/", 1)[-1] == "package.json"), key=_depth)
    package_json: dict[str, Any] | None = None
    package_json_path: str | None = None
    for p in pj_paths:
        try:
            doc = orjson.loads(texts[p])
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            package_json, package_json_path = doc, p
            break
    tea_paths = sorted((p for p in texts if is_tea_path(p)), key=_depth)[:MAX_KEPT_FILES]
    tea_files = tuple(parse_tea(p, texts[p]) for p in tea_paths)
    readme_path = readme_size = readme_text = None
    readmes = sorted(
        (
            e
            for e in entries
            if e.kind is EntryKind.FILE and e.path.rsplit("/", 1)[-1].lower().startswith("readme")
        ),
        key=lambda e: _depth(e.path),
    )
    if readmes:
        readme_path, readme_size = readmes[0].path, readmes[0].size
        readme_text = texts.get(readmes[0].path)
    return TarballFacts(
        entries=tuple(entries),
        package_json=package_json,
        package_json_path=package_json_path,
        tea_files=tea_files,
        readme_path=readme_path,
        readme_size=readme_size,
        readme_text=readme_text,
        problems=problems,
        complete=complete,
        compressed_size=compressed_size,
        unpacked_size=unpacked_size,
    )
