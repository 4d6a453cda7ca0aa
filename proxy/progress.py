"""Progress for long commands: a counter rewritten in place on a terminal, plain lines when the
stream is not one (CI logs), at most about `PLAIN_LINES` of them."""

from __future__ import annotations

from typing import Any

from proxy.log import printable

PLAIN_LINES = 20


class Progress:
    def __init__(self, stream: Any, total: int, verb: str = "scanned"):
        self.stream = stream
        self.total = total
        self.verb = verb
        self.done = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._every = max(1, total // PLAIN_LINES)

    def step(self, what: str) -> None:
        self.done += 1
        if self.total <= 1:
            return
        line = f"{self.verb} {self.done}/{self.total} {printable(what)}"
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
            if self.done == self.total:
                self.stream.write("\n")
        elif self.done % self._every == 0 or self.done == self.total:
            self.stream.write(line + "\n")
        else:
            return
        self.stream.flush()
