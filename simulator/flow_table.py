"""The running flows' state as numpy rows, and indexes from each resource to its rows.

A starting flow takes a free row and keeps it until it ends, so a row number
names one flow for its whole life and the per-resource indexes stay valid
without renumbering; an ended flow's row goes back on a free list.  Paths are a
padded matrix (index -1, weight 0 past a flow's last hop).

Nothing here is touched for every running flow at an event -- at 6,000 flows
at once that was most of the engine's time:

* bytes moved are kept lazily: ``done`` as of ``t0``, the instant the row's
  rate last changed (:meth:`FlowTable.settle` before a rate changes);
* ``eta`` is each row's next event (completion or byte mark) in absolute time
  and ``etol`` the instant it comes within the completion tolerance (``inf``
  for a row not moving or free), so the next event is one ``min`` and the rows
  due one compare;
* ``cross`` lists the rows whose path crosses each resource and ``held`` the
  rows each resource froze at the last allocation (their bottleneck), so the
  re-levelling (:mod:`simulator.flow_relevel`) looks only at the rows around
  the resources a change touched.
"""
from __future__ import annotations

import numpy as np

from simulator.flow_held import HeldWeights
from simulator.flow_parts import Flow

_FLOATS = ("done", "t0", "rate", "total", "caps", "next", "eta", "etol", "smin", "sbuf", "srep")
_NONE = {"eta": np.inf, "etol": np.inf, "sbuf": 1.0}  # a free row's values where not 0


def completion_tolerance(next_bytes: np.ndarray) -> np.ndarray:
    """Bytes short of a mark or the end that count as reached (float noise of the integration)."""
    return 1e-9 * next_bytes + 1e-6


_NO_ROWS = np.empty(0, dtype=np.intp)  # shared by every empty bucket: never written (add copies it first)
_NO_TAGS: list[int] = []  # shared likewise: add replaces it before appending


class RowBuckets:
    """Rows grouped by resource, each resource's rows contiguous in its own array (append, swap-remove).

    An entry carries a tag (the hop of the row's path) so that a caller keeping
    each entry's position can fix the position of the entry a removal moves.
    """

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.tags: list[list[int]] = []
        self.count: list[int] = []

    def grow_to(self, keys: int) -> None:
        # a resource no flow has crossed yet shares one empty array and list (a large SAN has tens of
        # thousands of resources, most never in a bucket at once: memory per resource, not per entry)
        extra = keys - len(self.rows)
        if extra > 0:
            self.rows += [_NO_ROWS] * extra
            self.tags += [_NO_TAGS] * extra
            self.count += [0] * extra

    def add(self, key: int, row: int, tag: int) -> int:
        """Append; returns the entry's position."""
        c = self.count[key]
        buf = self.rows[key]
        if c == len(buf):
            self.rows[key] = buf = np.concatenate((buf, np.empty(max(c, 8), dtype=np.intp)))
        buf[c] = row
        tags = self.tags[key]
        if tags is _NO_TAGS:
            tags = self.tags[key] = []
        tags.append(tag)
        self.count[key] = c + 1
        return c

    def remove(self, key: int, pos: int) -> tuple[int, int] | None:
        """Drop the entry at ``pos``; returns (row, tag) of the entry moved into its place, if any."""
        last = self.count[key] - 1
        self.count[key] = last
        tags = self.tags[key]
        tag = tags.pop()
        if last == 0:  # empty again: back to the shared empties, so finished flows leave nothing behind
            self.rows[key], self.tags[key] = _NO_ROWS, _NO_TAGS
            return None
        if pos == last:
            return None
        buf = self.rows[key]
        row = int(buf[last])
        buf[pos] = row
        tags[pos] = tag
        return row, tag

    def members(self, key: int) -> np.ndarray:
        """The rows of ``key`` (a view: copy before the buckets change)."""
        return self.rows[key][:self.count[key]]


class FlowTable:
    def __init__(self, rows: int = 64, width: int = 4):
        self.n = 0  # running flows
        self.hi = 0  # rows ever used: every running flow's row is below it
        self.flows: list[Flow | None] = [None] * rows  # row -> flow
        self.free: list[int] = []
        self.new: set[int] = set()  # rows started since the last allocation
        self.streamers = 0  # rows with a streaming device (the second allocation pass is needed)
        for name in _FLOATS:
            setattr(self, name, np.full(rows, _NONE.get(name, 0.0)))
        self.bneck = np.full(rows, -2, dtype=np.intp)  # attribution key: resource, -1 cap, STALLED; -2 none yet
        self.bres = np.full(rows, -2, dtype=np.intp)  # the resource that froze the flow, -1 its cap; -2 none yet
        self.sstate = np.zeros(rows, dtype=bool)
        self.alive = np.zeros(rows, dtype=bool)
        self.mark = np.zeros(rows, dtype=bool)  # scratch for the re-levelling: rows in the set being re-filled
        self.ri = np.full((rows, width), -1, dtype=np.intp)
        self.wi = np.zeros((rows, width))
        self._fi = np.zeros(0, dtype=np.intp)
        self.full = 0  # running flows whose path fills the whole width (no padding)
        self.cross = RowBuckets()
        self.held = RowBuckets()
        self.nheld = np.zeros(0, dtype=np.intp)  # rows each resource holds back (held's counts, as an array)
        self.weights: HeldWeights | None = HeldWeights()  # None in a SAN too large for it
        self.capped = 0  # running flows with a rate cap of their own
        self.shortcuts = 0  # re-levellings done by the one-holder shortcut (simulator.flow_held)
        # Where each row would stand in a table packed by arrival with the last row moved into each
        # hole: the order in which flows due at one instant are finished and whole fills list them,
        # kept so that simultaneous events resolve as they always have.
        self.order = np.zeros(rows, dtype=np.intp)
        self._by_order: list[int] = []
        self._cpos: list[list[int]] = [[] for _ in range(rows)]  # row -> position of each hop in cross
        self._hpos = [0] * rows  # row -> position in held[bres]

    def resources(self, count: int) -> None:
        """Make room in the indexes for ``count`` resources."""
        self.cross.grow_to(count)
        self.held.grow_to(count)
        if self.weights is not None and not self.weights.resize(count):
            self.weights = None
        if count > len(self.nheld):
            self.nheld = np.concatenate((self.nheld, np.zeros(max(count, 64), dtype=np.intp)))

    def _grow(self, rows: int, width: int) -> None:
        old_rows, old_width = self.ri.shape
        rows, width = max(rows, old_rows), max(width, old_width)
        for name in _FLOATS:
            a = np.full(rows, _NONE.get(name, 0.0))
            a[:old_rows] = getattr(self, name)
            setattr(self, name, a)
        for name, fill, dtype in (("bneck", -2, np.intp), ("bres", -2, np.intp), ("order", 0, np.intp),
                                  ("sstate", False, bool),
                                  ("alive", False, bool), ("mark", False, bool)):
            b = np.full(rows, fill, dtype=dtype)
            b[:old_rows] = getattr(self, name)
            setattr(self, name, b)
        ri = np.full((rows, width), -1, dtype=np.intp)
        ri[:old_rows, :old_width] = self.ri
        wi = np.zeros((rows, width))
        wi[:old_rows, :old_width] = self.wi
        self.ri, self.wi = ri, wi
        self._fi = np.zeros(0, dtype=np.intp)  # rows' positions repeated per hop (entries), for this width
        if width > old_width:
            self.full = 0
        self.flows += [None] * (rows - old_rows)
        self._cpos += [[] for _ in range(rows - old_rows)]
        self._hpos += [0] * (rows - old_rows)

    def add(self, f: Flow, now: float) -> int:
        """A row for a starting flow (no bytes moved, no rate yet); returns its row."""
        k = len(f._ri)
        rows, width = self.ri.shape
        if not self.free and self.hi >= rows or k > width:
            self._grow(rows * 2 if not self.free and self.hi >= rows else rows, max(width, k))
        if self.free:
            i = self.free.pop()
        else:
            i = self.hi
            self.hi += 1
        self.done[i], self.t0[i], self.rate[i], self.total[i], self.caps[i] = 0.0, now, 0.0, f.total, f.cap
        self.next[i] = min(f._marks[0][0], f.total) if f._marks else f.total
        self.eta[i] = self.etol[i] = np.inf
        s = f.streaming
        self.smin[i], self.sbuf[i], self.srep[i] = (s.min_rate, s.buffer, s.reposition_s) if s else (0.0, 1.0, 0.0)
        self.sstate[i] = f.shoeshine
        self.bneck[i] = f._bneck
        self.bres[i] = -2
        self.alive[i] = True
        self.ri[i, :k] = f._ri
        if k < width:
            self.ri[i, k:] = -1
        self.wi[i, :k] = f._wi
        if k < width:
            self.wi[i, k:] = 0.0
        add = self.cross.add
        self._cpos[i] = [add(r, i, h) for h, r in enumerate(f._ri.tolist())]
        self.streamers += s is not None
        self.capped += f.cap < np.inf
        self.full += k == self.ri.shape[1]
        self.flows[i] = f
        self.order[i] = len(self._by_order)
        self._by_order.append(i)
        self.new.add(i)
        f._slot = i
        self.n += 1
        return i

    def remove(self, i: int) -> None:
        """Free row ``i`` and take it out of the indexes."""
        f = self.flows[i]
        self.streamers -= f.streaming is not None
        self.capped -= f.cap < np.inf
        self.full -= len(f._ri) == self.ri.shape[1]
        cpos = self._cpos
        for h, r in enumerate(f._ri.tolist()):
            moved = self.cross.remove(r, cpos[i][h])
            if moved is not None:
                cpos[moved[0]][moved[1]] = cpos[i][h]
        self._unhold(i, int(self.bres[i]))
        self.alive[i] = False
        self.rate[i] = 0.0
        self.eta[i] = self.etol[i] = np.inf
        self.bres[i] = -2
        self.flows[i] = None
        last = self._by_order.pop()
        if last != i:
            p = int(self.order[i])
            self._by_order[p] = last
            self.order[last] = p
        self.new.discard(i)
        self.free.append(i)
        f._slot = -1
        self.n -= 1

    def _unhold(self, i: int, r: int) -> None:
        if r >= 0:
            self.nheld[r] -= 1
            moved = self.held.remove(r, self._hpos[i])
            if moved is not None:
                self._hpos[moved[0]] = self._hpos[i]
            if self.weights is not None:
                f = self.flows[i]
                self.weights.release(r, f._ri, f._wi, len(self._cpos[i]) == len(set(f._ri.tolist())),
                                     self.held.count[r])

    def _hold(self, i: int, r: int) -> None:
        self._hpos[i] = self.held.add(r, i, 0)
        self.nheld[r] += 1
        if self.weights is not None:
            f = self.flows[i]
            self.weights.hold(r, f._ri, f._wi, len(self._cpos[i]) == len(set(f._ri.tolist())))

    def set_bottlenecks(self, rows: np.ndarray, bres: np.ndarray, key: np.ndarray) -> list[tuple[int, int]]:
        """Record the resource that froze each row (-1: its cap), keeping ``held`` in step, and its
        attribution key; returns (row, new key) where the key changed."""
        old, was_key = self.bres.take(rows), self.bneck.take(rows)
        changed = ((old != bres) | (was_key != key)).nonzero()[0]
        self.new.clear()
        if not len(changed):
            return []
        keys = []
        if len(changed) < 8:  # the usual few: scalar reads cost less than five gathers
            picked = [(int(rows[c]), int(old[c]), int(bres[c]), int(was_key[c]), int(key[c]))
                      for c in changed.tolist()]
        else:
            picked = zip(rows.take(changed).tolist(), old.take(changed).tolist(), bres.take(changed).tolist(),
                         was_key.take(changed).tolist(), key.take(changed).tolist())
        for i, was, now, k0, k1 in picked:
            if was != now:
                self._unhold(i, was)
                if now >= 0:
                    self._hold(i, now)
            if k0 != k1:
                keys.append((i, k1))
        self.bres[rows] = bres
        self.bneck[rows] = key
        return keys

    def in_order(self) -> np.ndarray:
        """The running flows' rows in :attr:`order`."""
        return np.array(self._by_order, dtype=np.intp)

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position in ``rows``, resource, weight) of every hop of the given rows."""
        width = self.ri.shape[1]
        need = len(rows) * width
        if len(self._fi) < need:
            self._fi = np.repeat(np.arange(2 * len(rows)), width)
        fi, ri, wi = self._fi[:need], self.ri.take(rows, 0).ravel(), self.wi.take(rows, 0).ravel()
        if self.full == self.n:  # no padding: every running flow's path is as long as the longest
            return fi, ri, wi
        keep = ri >= 0
        return fi.compress(keep), ri.compress(keep), wi.compress(keep)

    def settle(self, rows: np.ndarray, now: float) -> None:
        """Bring the rows' bytes moved up to ``now`` at their current rates (before changing a rate)."""
        self.done[rows] += self.rate[rows] * (now - self.t0[rows])
        self.t0[rows] = now

    def retime(self, rows: np.ndarray, rate: np.ndarray, now: float) -> None:
        """Settle the rows at ``now``, give them new rates and plan their next events (:meth:`plan`)."""
        done = self.done.take(rows) + self.rate.take(rows) * (now - self.t0.take(rows))
        self.done[rows] = done
        self.t0[rows] = now
        self.rate[rows] = rate
        self._plan(rows, rate, now, done)

    def done_at(self, i: int, now: float) -> float:
        return float(self.done[i] + self.rate[i] * (now - self.t0[i]))

    def plan(self, rows: np.ndarray, now: float) -> None:
        """Each row's next event time at its rate (rows settled at ``now``: :meth:`settle`)."""
        self._plan(rows, self.rate.take(rows), now, self.done.take(rows))

    def _plan(self, rows: np.ndarray, rate: np.ndarray, now: float, done: np.ndarray) -> None:
        nxt = self.next.take(rows)
        left = nxt - done
        slack = left - (nxt * 1e-9 + 1e-6)  # completion_tolerance, inlined: this runs at every event
        if rate.min() > 0:  # the common case: every row moving
            self.eta[rows] = now + left / rate
            self.etol[rows] = now + slack / rate
            return
        moving = rate > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            self.eta[rows] = np.where(moving, now + left / rate, np.inf)
            # a flow standing still within the tolerance of its mark is due at the next event, as it always was
            self.etol[rows] = np.where(moving, now + slack / rate, np.where(slack <= 0, -np.inf, np.inf))
