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
flows around one drive or mover, not every flow in the fabric.
"""
from __future__ import annotations

import numpy as np

from simulator.fairshare import max_min_rates
from simulator.flow_table import FlowTable

_REL = 1e-9
_MAX_ROUNDS = 12


def _rows_entries(t: FlowTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = t.ri.shape[1]
    ri = t.ri[rows].ravel()
    keep = ri >= 0
    fi = np.repeat(np.arange(len(rows)), width)
    return fi[keep], ri[keep], t.wi[rows].ravel()[keep]


def relevel(t: FlowTable, capacity: np.ndarray, load: np.ndarray, touched: np.ndarray,
            crossing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """New rates for some rows, or None when the whole fill is the cheaper way.

    ``load`` is each resource's work per second at the current rates of the
    current rows; ``touched`` the resources changed since; ``crossing`` rows that
    must be re-levelled whatever their bottleneck (a capacity fell under them).
    Returns (rows, their rates, their bottleneck resources) and updates ``load``.
    """
    n = t.n
    n_res = len(capacity)
    rate, bres = t.rate[:n], t.bres[:n]
    paths = t.ri[:n]  # padded with -1: index -1 reads the extra last slot of the per-resource tables below

    def marked(resources: np.ndarray) -> np.ndarray:
        """Rows whose bottleneck is one of ``resources`` (a table lookup, no sort)."""
        table = np.zeros(n_res + 3, dtype=bool)
        table[resources + 2] = True
        return table[bres + 2]  # bres -2 (new) and -1 (cap) land in slots 0 and 1

    in_f = bres == -2  # rows started since the last fill
    in_f |= marked(touched)
    in_f[crossing] = True
    for _ in range(_MAX_ROUNDS):
        rows = np.flatnonzero(in_f)
        if len(rows) * 2 > n:
            return None
        fi, ri, wi = _rows_entries(t, rows)
        used = np.flatnonzero(np.bincount(ri, minlength=n_res))
        remap = np.empty(n_res, dtype=np.intp)
        remap[used] = np.arange(len(used))
        local = remap[ri]
        old = rate[rows]
        f_old = np.bincount(local, weights=wi * old[fi], minlength=len(used))
        residual = capacity[used] - (load[used] - f_old)
        b = np.empty(len(rows), dtype=np.intp)
        new = max_min_rates(fi, local, wi, np.maximum(residual, 0.0), len(rows), t.caps[rows], b)
        moved = np.abs(new - old) > _REL * np.maximum(np.abs(old), 1.0)
        grow = marked(ri[moved[fi]]) if moved.any() else np.zeros(n, dtype=bool)  # (a)
        froze = b >= 0
        if froze.any():  # (b): the level each saturated resource froze F flows at
            level = np.full(n_res + 1, np.inf)
            level[used[b[froze]]] = new[froze]
            # only flows faster than the lowest such level can break one (a gather over their paths only)
            cand = np.flatnonzero(rate > new[froze].min() * (1 + _REL) + 1e-12)
            if len(cand):
                grow[cand] |= (rate[cand, None] > level[paths[cand]] * (1 + _REL) + 1e-12).any(axis=1)
        over = residual < -_REL * np.maximum(capacity[used], 1.0)
        if over.any():  # (c)
            bad = np.zeros(n_res + 1, dtype=bool)
            bad[used[over]] = True
            grow |= bad[paths].any(axis=1)
        grow &= ~in_f
        if not grow.any():
            load[used] += np.bincount(local, weights=wi * new[fi], minlength=len(used)) - f_old
            return rows, new, np.where(b >= 0, used[np.maximum(b, 0)], -1)
        in_f |= grow
    return None
