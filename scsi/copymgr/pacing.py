"""How many chunks a block copy keeps in flight: measured per pair of LUNs, shared fairly among copies.

:class:`DepthTuner` climbs while throughput grows and backs off when it
does not; :class:`DepthMemory` lets the next list between the same LUNs
start where the last one settled; :class:`FairShare` caps each running copy
at an equal part of the mover's budget of chunks in flight.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from scsi.copymgr.io import BlockCopy


class FairShare:
    """Chunks in flight across all copies of one mover, split evenly among the copies running."""

    def __init__(self, budget: int):
        self.budget = max(1, budget)
        self._active = 0
        self._lock = threading.Lock()

    def join(self) -> None:
        with self._lock:
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1

    def cap(self) -> int:
        """This copy's most chunks in flight now (at least 2, so reads and writes still overlap)."""
        return max(2, self.budget // max(1, self._active))


class DepthTuner:
    """Hill-climbing on queue depth, judged on averages per depth rather than on one noisy window.

    Starts at ``start``; after each window of ``window`` completed chunks the
    window's bytes per second are folded into that depth's average (the last
    windows count most), and the next depth is chosen from the averages of
    the depth and its neighbours (``step`` either side): a neighbour that
    does clearly better (by more than ``gain``) is taken -- so a longer queue
    that only adds latency gives way to a shorter one -- otherwise a
    neighbour whose figure is missing or older than ``fresh`` windows is
    measured (upward first while climbing has paid), else the depth stays.
    One slow window moves nothing, and the shallowest depth is no trap: its
    neighbour is measured again as soon as that figure is stale.  (The
    previous tuner compared each window with the one before it; on tgtd,
    whose windows vary by 10-20 %, it wandered down to depth 2 and stayed.)
    """

    def __init__(self, maximum: int, *, start: int = 8, window: int = 16, gain: float = 0.05,
                 fresh: int = 12, clock: Any = time.monotonic):
        self.maximum = max(1, maximum)
        self.minimum = min(2, self.maximum)  # below 2 reads and writes no longer overlap
        self.depth = min(self.maximum, max(self.minimum, start))
        self.window, self.gain, self.fresh, self.clock = window, gain, fresh, clock
        self.step = 2
        self._done = 0
        self._bytes = 0
        self._t0 = clock()
        self._avg: dict[int, float] = {}  # depth -> bytes/s, recent windows weighted most
        self._seen: dict[int, int] = {}  # depth -> number of the window that last measured it
        self.history: list[tuple[int, float]] = []  # (depth, bytes/s) per window, for tests and logs

    def completed(self, nbytes: int) -> None:
        self._done += 1
        self._bytes += nbytes
        if self._done < self.window:
            return
        now = self.clock()
        rate = self._bytes / max(now - self._t0, 1e-9)
        d = self.depth
        self.history.append((d, rate))
        self._avg[d] = rate if d not in self._avg else (self._avg[d] + rate) / 2
        self._seen[d] = len(self.history)
        self.depth = self._next(d)
        self._done, self._bytes, self._t0 = 0, 0, now

    def _known(self, depth: int) -> float | None:
        """The average at ``depth`` if it was measured within the last ``fresh`` windows."""
        if depth not in self._avg or len(self.history) - self._seen[depth] >= self.fresh:
            return None
        return self._avg[depth]

    def _next(self, d: int) -> int:
        here = self._avg[d]
        down = d - self.step if d - self.step >= self.minimum else None
        up = d + self.step if d + self.step <= self.maximum else None
        below = self._known(down) if down is not None else None
        above = self._known(up) if up is not None else None
        if below is not None and below > here * (1 + self.gain) and (above is None or below >= above):
            return down  # clearly faster with a shorter queue
        if above is not None and above > here * (1 + self.gain):
            return up  # clearly faster deeper
        climbing = below is None or here > below * (1 + self.gain)
        if up is not None and above is None and climbing:
            return up  # measure the next step up while going deeper has paid
        if down is not None and below is None:
            return down  # measure the step down: the shorter queue may do as well
        return d


class DepthMemory:
    """The depth each pair of LUNs settled at, so the next copy between them starts there.

    A backup sends many lists one after the other (80 MiB each by default);
    without memory each would climb from the start depth again.
    """

    def __init__(self, start: int = 8):
        self.start = start
        self._depths: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(req: BlockCopy) -> tuple[str, ...]:
        return tuple(sorted({f"{e.src.name}>{e.dst.name}" for e in req.extents}))

    def tuner(self, req: BlockCopy) -> DepthTuner:
        with self._lock:
            start = self._depths.get(self._key(req), self.start)
        return DepthTuner(req.depth, start=start)

    def keep(self, req: BlockCopy, tuner: DepthTuner) -> None:
        if tuner.history:  # only what was measured
            with self._lock:
                self._depths[self._key(req)] = tuner.depth
