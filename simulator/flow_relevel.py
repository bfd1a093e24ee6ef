"""Re-levelling only the flows a change can move: an incremental max-min fill.

A max-min fair allocation is the one in which every flow has a *bottleneck*: a
saturated resource on its path where no flow goes faster than it (Bertsekas &
Gallager, *Data Networks*, 6.5.2).  After a change at some resources T (a flow
started or ended there, a capacity changed), a flow whose bottleneck is not in
T and carries no re-levelled flow keeps its rate: its bottleneck has the same
flows at the same rates as before.  So the fill is redone for a set F only --
the new flows and those bottlenecked in T -- against the capacity the others
leave, and F grows until the others' conditions still hold:

(a) a flow outside F whose bottleneck carries an F flow whose rate changed
    joins F;
(b) a flow outside F crossing a resource that froze F flows at a level, faster
    than that level, joins F;
(c) a flow outside F crossing a resource the others now overload joins F.

When F would hold most flows, the caller does the whole fill instead.  In a
SAN the ports, ISLs and LUNs are rarely saturated, so a change re-levels the
flows around one drive or mover, not every flow in the fabric.  Every lookup
goes through the table's per-resource indexes (the rows crossing a resource,
the rows it holds back), so the cost follows the size of F, not the number of
running flows.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from simulator.fairshare import progressive_fill
from simulator.flow_table import FlowTable

_REL = 1e-9
_MAX_ROUNDS = 12
_GENERAL = object()  # the shortcut does not apply: take the general way


def _one_holder(t: FlowTable, capacity: np.ndarray, load: np.ndarray, slack: np.ndarray, r0: int):
    """The general re-levelling's answer when F is the rows one resource r0 holds back (all at one
    rate) plus new rows crossing r0, and the fill ends in one level at r0 with no row joining F;
    otherwise ``_GENERAL``.  Works on dense per-resource vectors (:mod:`simulator.flow_held`)."""
    n_res = len(capacity)
    members, new = t.held.members(r0), list(t.new)
    if (len(members) + len(new)) * 2 > t.n:
        return None
    flows = t.flows
    if any(r0 not in flows[i]._ri.tolist() for i in new):
        return _GENERAL
    theirs = t.rate.take(members)
    was = float(theirs[0])
    if theirs.min() != theirs.max():
        return _GENERAL
    held_w = t.weights.of[r0][:n_res]
    new_w = None
    if new:
        new_w = np.zeros(n_res)
        for i in new:
            np.add.at(new_w, flows[i]._ri, flows[i]._wi)
        weight = held_w + new_w
    else:
        weight = held_w
    crossed = weight > 0
    residual = capacity - load + was * held_w
    if np.count_nonzero((residual < slack) & crossed):  # (c)
        return _GENERAL
    remaining = np.where(crossed, np.maximum(residual, 0.0), 1.0)
    threshold = np.maximum(remaining * _REL, 1e-12)
    if np.count_nonzero(remaining <= threshold):  # a dead resource: frozen at zero
        return _GENERAL
    headroom = np.full(n_res, np.inf)
    np.divide(remaining, weight, out=headroom, where=crossed)
    level = max(float(headroom.min()), 0.0)
    saturated = crossed & (remaining - level * weight <= threshold)
    if np.count_nonzero(saturated) != 1 or not saturated[r0]:
        return _GENERAL  # more than one level, or another resource saturates
    if abs(level - was) > _REL * max(was, 1.0):  # (a): they all moved
        touched_w = crossed
    elif new and level > _REL:
        touched_w = new_w > 0
    else:
        touched_w = None
    if touched_w is not None:
        holding = touched_w & (t.nheld[:n_res] > 0)
        holding[r0] = False
        if np.count_nonzero(holding):
            return _GENERAL
    limit = level * (1 + _REL) + 1e-12
    if t.cross.count[r0] != len(members) + len(new):  # (b): rows crossing r0 held elsewhere, faster
        m = t.cross.members(r0)
        their = t.rate.take(m)
        if their.max() > limit and not (t.bres.take(m.compress(their > limit)) == r0).all():
            return _GENERAL
    load += level * weight - was * held_w
    rows = np.concatenate((members, np.array(new, dtype=np.intp)))
    return rows, np.full(len(rows), level), np.full(len(rows), r0, dtype=np.intp)


def relevel(t: FlowTable, capacity: np.ndarray, load: np.ndarray, slack: np.ndarray, touched: set[int],
            cut: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """New rates for some rows, or None when the whole fill is the cheaper way.

    ``load`` is each resource's work per second at the current rates of the
    current rows, ``slack`` how far below zero a resource's residual capacity
    may go before it counts as overloaded (float noise); ``touched`` the
    resources changed since the last allocation; ``cut`` those whose capacity
    changed (every row crossing one is re-levelled, whatever its bottleneck).  Returns (rows, their rates, their
    bottleneck resources) and updates ``load``.

    Called at every event on a hundred-odd rows, so numpy's per-call cost is
    what counts: the set F is kept as marks in ``t.mark`` and read back sorted
    by one ``nonzero`` over the rows in use; the usual shape (one resource's
    held rows) goes the shorter way of :func:`_one_holder`.
    """
    n_res = len(capacity)
    rate, mark, held, cross = t.rate, t.mark, t.held, t.cross
    if t.weights is not None and not t.capped and not cut:
        holders = [r for r in touched if held.count[r]]
        if len(holders) == 1:
            done = _one_holder(t, capacity, load, slack, holders[0])
            if done is not _GENERAL:
                t.shortcuts += done is not None
                return done
    if t.new:
        mark[list(t.new)] = True
    for r in touched:
        if held.count[r]:
            mark[held.members(r)] = True
    for r in cut:
        mark[cross.members(r)] = True
    rows = mark[:t.hi].nonzero()[0]
    if not len(rows):  # a flow ended where it held nobody back: no other rate moves
        return rows, np.zeros(0), rows
    try:
        for _ in range(_MAX_ROUNDS):
            if len(rows) * 2 > t.n:
                return None
            # Resources are numbered as in the network: only those F crosses get a finite residual.
            fi, ri, wi = t.entries(rows)
            crossed = np.bincount(ri, minlength=n_res)
            old = rate.take(rows)
            f_old = np.bincount(ri, weights=wi * old.take(fi), minlength=n_res)
            residual = capacity - load + f_old
            over = residual < slack
            if np.count_nonzero(over):  # (c) the others overload a resource
                over &= crossed > 0
                if np.count_nonzero(over):
                    for r in over.nonzero()[0].tolist():
                        mark[cross.members(r)] = True
                    rows = mark[:t.hi].nonzero()[0]
                    continue
            b = np.empty(len(rows), dtype=np.intp)
            sats: list[tuple[np.ndarray, float]] = []
            # a resource F does not cross takes no part: any capacity above zero will do
            new = progressive_fill(fi, ri, wi, np.where(crossed > 0, np.maximum(residual, 0.0), 1.0),
                                   len(rows), t.caps.take(rows), b, sats)
            grew = False
            moved = np.abs(new - old) > _REL * np.maximum(old, 1.0)
            n_moved = np.count_nonzero(moved)
            if n_moved:  # (a)
                hit = crossed if n_moved == len(rows) else np.bincount(ri.compress(moved.take(fi)),
                                                                       minlength=n_res)
                hit = hit * t.nheld[:n_res]  # resources holding rows back
                for r in hit.nonzero()[0].tolist():
                    if r in touched:
                        continue  # its rows were put in F at the start
                    m = held.members(r)
                    if not mark.take(m).all():
                        mark[m] = grew = True
            for saturated, level in sats:  # (b): each resource that froze F flows, at their level
                limit = level * (1 + _REL) + 1e-12
                for r in saturated.tolist():
                    if cross.count[r] == crossed[r]:
                        continue  # every row crossing r is in F
                    m = cross.members(r)
                    their = rate.take(m)
                    if their.max() > limit:
                        faster = m.compress(their > limit)
                        if not mark.take(faster).all():
                            mark[faster] = grew = True
            if not grew:
                load += np.bincount(ri, weights=wi * new.take(fi), minlength=n_res) - f_old
                return rows, new, b
            rows = mark[:t.hi].nonzero()[0]
        return None
    finally:
        mark[rows] = False
