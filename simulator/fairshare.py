"""Weighted max-min fair bandwidth sharing by progressive filling (water-filling).

This is the allocation step of a flow-level network simulator (the approach of
SimGrid's LMM solver): every flow crosses some resources, each with a capacity;
a flow of rate ``x`` consumes ``w * x`` of each resource it crosses, where the
weight ``w`` says how much resource work one byte of the flow costs (1 for a
link; more than 1 for a disk that also pays positioning time; ``1/ratio`` for a
compressing tape drive; CPU seconds per byte for a CPU).  All unfrozen flows
rise together until a resource saturates or a flow reaches its own cap; the
flows on that bottleneck are frozen and the rest keep rising.

The incidence is given sparsely (one entry per flow/resource pair) so one call
costs O(entries x bottleneck levels) in numpy, independent of bytes.

The resource whose saturation froze a flow is that flow's *bottleneck*: the
resource that would have to grow for the flow to go faster (the bottleneck
condition that characterises a max-min fair allocation, Bertsekas & Gallager,
*Data Networks*, 6.5.2).  Callers that attribute time to bottlenecks pass a
``bottleneck`` array to be filled.
"""
from __future__ import annotations

import math

import numpy as np

# A resource counts as saturated when less than this fraction of its capacity is left.
_REL_EPS = 1e-9


def max_min_rates(
    flow_idx: np.ndarray,
    res_idx: np.ndarray,
    weight: np.ndarray,
    capacity: np.ndarray,
    n_flows: int,
    flow_cap: np.ndarray | None = None,
    bottleneck: np.ndarray | None = None,
) -> np.ndarray:
    """Return the weighted max-min fair rate of each of ``n_flows`` flows.

    ``flow_idx[k]`` crosses ``res_idx[k]`` with weight ``weight[k]`` (> 0).
    ``capacity[r]`` is resource r's capacity (>= 0).  ``flow_cap[f]`` bounds a
    single flow (``inf`` for none).  A flow that crosses no resource and has no
    finite cap is a caller error.  When given, ``bottleneck`` (an integer array
    of ``n_flows``) is filled with the resource that froze each flow, or -1
    where the flow's own cap did.
    """
    if bottleneck is None:
        bottleneck = np.empty(n_flows, dtype=np.intp)
    flow_idx, res_idx = np.asarray(flow_idx, dtype=np.intp), np.asarray(res_idx, dtype=np.intp)
    weight = np.asarray(weight, dtype=float)
    if n_flows == 0:
        return np.zeros(0)
    caps = np.full(n_flows, np.inf) if flow_cap is None else np.asarray(flow_cap, dtype=float)
    crossing = np.bincount(flow_idx, minlength=n_flows) > 0
    if not np.all(crossing | np.isfinite(caps)):
        bad = int(np.flatnonzero(~(crossing | np.isfinite(caps)))[0])
        raise ValueError(f"flow {bad} crosses no resource and has no rate cap: its rate would be unbounded")
    return progressive_fill(flow_idx, res_idx, weight, np.array(capacity, dtype=float), n_flows, caps,
                            bottleneck)


def progressive_fill(flow_idx: np.ndarray, res_idx: np.ndarray, weight: np.ndarray, capacity: np.ndarray,
                     n_flows: int, caps: np.ndarray, bottleneck: np.ndarray,
                     saturations: list[tuple[np.ndarray, float]] | None = None) -> np.ndarray:
    """The water-filling of :func:`max_min_rates` for input already checked (every flow crosses a
    resource or has a finite cap; ``n_flows`` > 0).  ``capacity`` is used up (pass a copy to keep
    it); ``bottleneck`` is filled; ``saturations``, when given, gets (resources, level) for each
    level at which resources saturated and froze flows (a dead resource at level 0).

    The incremental re-levelling calls it at every event on a hundred-odd flows,
    where numpy's per-call cost, not the arithmetic, is the time: hence
    ``take``/``compress``, index arrays rather than masks, and no pass that the
    common case (no dead resource, no cap, one or two levels) does not need.
    """
    rate = np.zeros(n_flows)
    bottleneck.fill(-1)
    remaining = capacity
    threshold = np.maximum(remaining * _REL_EPS, 1e-12)
    f_e, r_e, w_e = flow_idx, res_idx, weight
    left = n_flows
    capped = bool(caps.min() < np.inf)
    open_ids = None  # unfrozen flows, for their caps (all of them until one freezes)
    # A resource with no capacity freezes its flows at zero straight away.
    dead = remaining <= threshold
    if np.count_nonzero(dead):
        at_dead = dead.take(res_idx)
        stalled = flow_idx.compress(at_dead)
        bottleneck[stalled] = dead_res = res_idx.compress(at_dead)
        if saturations is not None and len(dead_res):
            saturations.append((dead_res, 0.0))
        frozen = np.zeros(n_flows, dtype=bool)
        frozen[stalled] = True
        left -= int(np.count_nonzero(frozen))
        if left <= 0:
            return rate
        keep = ~frozen.take(flow_idx)
        f_e, r_e, w_e = flow_idx.compress(keep), res_idx.compress(keep), weight.compress(keep)
        open_ids = (~frozen).nonzero()[0]
    level = 0.0
    headroom = np.empty(len(remaining))
    # The entries of unfrozen flows only: each level's passes shrink as flows freeze.
    while True:
        wsum = np.bincount(r_e, weights=w_e, minlength=len(remaining))
        used = wsum > 0
        headroom.fill(np.inf)
        np.divide(remaining, wsum, out=headroom, where=used)
        step = float(headroom.min()) if len(remaining) else math.inf
        if capped:
            if open_ids is None:
                open_ids = np.arange(n_flows)
            step = min(step, float(caps.take(open_ids).min()) - level)
        step = max(step, 0.0)
        if not math.isfinite(step):  # pragma: no cover - excluded by the check in max_min_rates
            raise ValueError("unbounded flow rate")
        level += step
        remaining -= step * wsum
        saturated = used & (remaining <= threshold)
        if saturations is not None:
            saturations.append((saturated.nonzero()[0], level))
        at_saturated = saturated.take(r_e)
        hit = f_e.compress(at_saturated)
        bottleneck[hit] = r_e.compress(at_saturated)
        newly = np.zeros(n_flows, dtype=bool)
        newly[hit] = True
        if capped:
            if open_ids is None:
                open_ids = np.arange(n_flows)
            newly[open_ids.compress(caps.take(open_ids) <= level * (1 + _REL_EPS) + 1e-12)] = True
        count = int(np.count_nonzero(newly))
        if not count:  # numerical corner: freeze the tightest resource's flows
            r = int(np.argmin(headroom))
            at_r = r_e == r
            newly[f_e[at_r]] = True
            bottleneck[f_e[at_r]] = r
            count = int(np.count_nonzero(newly))
        rate[newly] = level
        left -= count
        if left <= 0:
            break
        keep = ~newly.take(f_e)
        f_e, r_e, w_e = f_e.compress(keep), r_e.compress(keep), w_e.compress(keep)
        if open_ids is not None:
            open_ids = open_ids.compress(~newly.take(open_ids))
        elif capped:
            open_ids = (~newly).nonzero()[0]
    return rate


def resource_load(flow_idx: np.ndarray, res_idx: np.ndarray, weight: np.ndarray,
                  rate: np.ndarray, n_res: int) -> np.ndarray:
    """Work per second each resource carries at the given flow rates."""
    return np.bincount(res_idx, weights=weight * rate[flow_idx], minlength=n_res)
