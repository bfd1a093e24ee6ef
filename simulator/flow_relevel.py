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


def relevel(t: FlowTable, capacity: np.ndarray, load: np.ndarray, touched: Iterable[int],
            cut: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """New rates for some rows, or None when the whole fill is the cheaper way.

    ``load`` is each resource's work per second at the current rates of the
    current rows; ``touched`` the resources changed since the last allocation;
    ``cut`` those whose capacity changed (every row crossing one is
    re-levelled, whatever its bottleneck).  Returns (rows, their rates, their
    bottleneck resources) and updates ``load``.

    Called at every event on a hundred-odd rows, so numpy's per-call cost is
    what counts: the set F is kept as marks in ``t.mark`` and read back sorted
    by one ``nonzero`` over the rows in use.
    """
    n_res = len(capacity)
    rate, mark, held, cross = t.rate, t.mark, t.held, t.cross
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
            fi, ri, wi = t.entries(rows)
            used = np.bincount(ri, minlength=n_res).nonzero()[0]
            remap = np.empty(n_res, dtype=np.intp)
            remap[used] = np.arange(len(used))
            local = remap.take(ri)
            old = rate.take(rows)
            f_old = np.bincount(local, weights=wi * old.take(fi), minlength=len(used))
            residual = capacity.take(used) - (load.take(used) - f_old)
            b = np.empty(len(rows), dtype=np.intp)
            new = progressive_fill(fi, local, wi, np.maximum(residual, 0.0), len(rows), t.caps.take(rows), b)
            grew = False
            moved = np.abs(new - old) > _REL * np.maximum(np.abs(old), 1.0)
            if moved.any():  # (a)
                hit = used.compress(np.bincount(local.compress(moved.take(fi)), minlength=len(used)))
                count = held.count
                for r in [r for r in hit.tolist() if count[r]]:
                    m = held.members(r)
                    if not mark.take(m).all():
                        mark[m] = grew = True
            froze = b >= 0
            if froze.any():  # (b): the level each saturated resource froze F flows at
                level = np.full(len(used), np.inf)
                level[b.compress(froze)] = new.compress(froze)
                for k in (level < np.inf).nonzero()[0].tolist():
                    m = cross.members(int(used[k]))
                    faster = m.compress(rate.take(m) > level[k] * (1 + _REL) + 1e-12)
                    if len(faster) and not mark.take(faster).all():
                        mark[faster] = grew = True
            over = residual < -_REL * np.maximum(capacity.take(used), 1.0)
            if over.any():  # (c)
                for r in used.compress(over).tolist():
                    mark[cross.members(r)] = grew = True
            if not grew:
                load[used] += np.bincount(local, weights=wi * new.take(fi), minlength=len(used)) - f_old
                return rows, new, np.where(froze, used.take(np.maximum(b, 0)), -1)
            rows = mark[:t.hi].nonzero()[0]
        return None
    finally:
        mark[rows] = False
