"""The running flows' state as numpy rows, kept in place between reallocations.

A starting flow appends a row; an ending flow's row is overwritten by the last
row (swap-remove), so a start or an end costs O(path length), not O(flows):
rebuilding every array from the flow objects at each change used to cost more
than the max-min fill itself.  Paths are stored as a padded matrix (index -1,
weight 0 past a flow's last hop) so the incidence for the fill is a reshape.
"""
from __future__ import annotations

import numpy as np

from simulator.flow_parts import Flow

_FLOATS = ("done", "rate", "total", "caps", "next", "smin", "sbuf", "srep")


class FlowTable:
    def __init__(self, rows: int = 64, width: int = 4):
        self.n = 0
        self.flows: list[Flow] = []  # row -> flow
        self.streamers = 0  # rows with a streaming device (the second allocation pass is needed)
        for name in _FLOATS:  # done, rate, total, caps, next; streaming: smin, sbuf, srep
            setattr(self, name, np.zeros(rows))
        self.bneck = np.full(rows, -2, dtype=np.intp)  # attribution key: resource, -1 cap, STALLED; -2 none yet
        self.bres = np.full(rows, -2, dtype=np.intp)  # the resource that froze the flow, -1 its cap; -2 none yet
        self.sstate = np.zeros(rows, dtype=bool)
        self.ri = np.full((rows, width), -1, dtype=np.intp)
        self.wi = np.zeros((rows, width))

    def _grow(self, rows: int, width: int) -> None:
        old_rows, old_width = self.ri.shape
        rows, width = max(rows, old_rows), max(width, old_width)
        for name in _FLOATS:
            a = np.zeros(rows)
            a[:old_rows] = getattr(self, name)
            setattr(self, name, a)
        for name in ("bneck", "bres"):
            b = np.full(rows, -2, dtype=np.intp)
            b[:old_rows] = getattr(self, name)
            setattr(self, name, b)
        s = np.zeros(rows, dtype=bool)
        s[:old_rows] = self.sstate
        self.sstate = s
        ri = np.full((rows, width), -1, dtype=np.intp)
        ri[:old_rows, :old_width] = self.ri
        wi = np.zeros((rows, width))
        wi[:old_rows, :old_width] = self.wi
        self.ri, self.wi = ri, wi

    def add(self, f: Flow) -> int:
        """A row for a starting flow (no bytes moved, no rate yet); returns its row."""
        i, k = self.n, len(f._ri)
        rows, width = self.ri.shape
        if i >= rows or k > width:
            self._grow(rows * 2 if i >= rows else rows, max(width, k))
        self.done[i], self.rate[i], self.total[i], self.caps[i] = 0.0, 0.0, f.total, f.cap
        self.next[i] = min(f._marks[0][0], f.total) if f._marks else f.total
        s = f.streaming
        self.smin[i], self.sbuf[i], self.srep[i] = (s.min_rate, s.buffer, s.reposition_s) if s else (0.0, 1.0, 0.0)
        self.sstate[i] = f.shoeshine
        self.bneck[i] = f._bneck
        self.bres[i] = -2
        self.ri[i, :k], self.ri[i, k:] = f._ri, -1
        self.wi[i, :k], self.wi[i, k:] = f._wi, 0.0
        self.streamers += s is not None
        self.flows.append(f)
        f._slot = i
        self.n += 1
        return i

    def remove(self, i: int) -> None:
        """Drop row ``i``: the last row moves into it."""
        f = self.flows[i]
        self.streamers -= f.streaming is not None
        last = self.n - 1
        if i != last:
            for name in _FLOATS:
                a = getattr(self, name)
                a[i] = a[last]
            self.bneck[i], self.bres[i], self.sstate[i] = self.bneck[last], self.bres[last], self.sstate[last]
            self.ri[i], self.wi[i] = self.ri[last], self.wi[last]
            moved = self.flows[last]
            self.flows[i] = moved
            moved._slot = i
        self.flows.pop()
        f._slot = -1
        self.n = last

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flow row, resource, weight) of every hop of the running flows."""
        n, width = self.n, self.ri.shape[1]
        ri = self.ri[:n].ravel()
        keep = ri >= 0
        fi = np.repeat(np.arange(n), width)
        return fi[keep], ri[keep], self.wi[:n].ravel()[keep]
