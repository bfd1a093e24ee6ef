"""A progress line for backup and restore on stderr, like the demo's: bytes, lists, rate, ETA, path in use.

Shown only when stderr is a terminal and the report is not --json; redrawn in
place at most every ``interval`` seconds, ended with a newline by ``close``.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

MIB = 1 << 20


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressLine:
    """``ProgressLine(total)(path, nbytes)`` after each list or piece moved; ``close()`` at the end."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None, interval: float = 0.2):
        self.what, self.total = what, max(1, total)
        self.stream = stream or sys.stderr
        self.interval = interval
        self.done = 0
        self.steps = 0
        self.path = ""
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    @classmethod
    def for_terminal(cls, what: str, total: int, as_json: bool, stream: TextIO | None = None) -> "ProgressLine | None":
        out = stream or sys.stderr
        return cls(what, total, out) if not as_json and out.isatty() else None

    def __call__(self, path: str, nbytes: int) -> None:
        self.done += nbytes
        self.steps += 1
        self.path = path
        now = time.monotonic()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()
            self._shown = True

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-6, (now or time.monotonic()) - self.started)
        rate = self.done / elapsed
        share = min(self.done, self.total) / self.total
        eta = _clock((self.total - self.done) / rate) if rate > 0 and self.done < self.total else "0:00:00"
        return (f"{self.what} {self.path}: {self.done / MIB:,.1f} of {self.total / MIB:,.1f} MiB ({share:.0%}), "
                f"{self.steps} list(s)/piece(s), {rate / MIB:,.1f} MiB/s, ETA {eta}")

    def note(self, text: str) -> None:
        """A line of its own above the progress line (which the next update redraws)."""
        self.stream.write("\r\x1b[K" + text + "\n")
        self.stream.flush()
        self._shown = False

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
