"""Logging setup: one format, to stderr, with the libraries' chatter turned down; and the one
escaping helper for text from outside (upstream data, client requests) that reaches a terminal
or a log: `printable` for one log line, `terminal_text` for a block of output."""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

# C0 and C1 controls (ESC starts terminal escapes; CR and LF forge lines), DEL, and the Unicode
# line separators and bidirectional overrides that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` as one safe log line: every control character escapes as `\\n`, `\\x1b`, ..."""
    return _UNSAFE.sub(_escape, text)


def terminal_text(text: str) -> str:
    """`text` safe to print to a terminal: controls escaped as in `printable`, newlines kept."""
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)


class SafeFormatter(logging.Formatter):
    """Log messages as one line each, whatever upstream or client text they quote (a
    traceback, appended after the message, keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (it may be replaced after setup)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(level: str = "info") -> None:
    """Log to stderr as `time level logger: message`; quiet down the libraries' chatter."""
    handler = _StderrHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
