"""The flow-level engine: transfers as fluid flows over capacity-limited resources.

A :class:`Flow` moves ``total`` bytes over a path of (resource, weight) pairs.
Rates are the weighted max-min fair share (:mod:`simulator.fairshare`) and are
recomputed only when a flow starts or ends, a capacity changes or a streaming
device changes state -- never per byte or per block.  Between two such changes
every rate is constant, so the engine schedules exactly one simpy timeout for
the next flow completion or byte mark; stale timeouts are ignored by a
generation counter.  Changes made at the same simulated instant are coalesced
into one reallocation.

Byte marks (``add_mark``) let callers act "after N bytes of this flow" (fault
injection, progress) at the exact analytic time, again without per-byte events.

The running flows live as rows of numpy arrays (:mod:`simulator.flow_table`),
each with its bytes moved kept lazily and its next event time in absolute
time, so an event costs work for the rows whose rate it changes, not for every
running flow.  Each allocation also names every flow's bottleneck (the resource
whose saturation froze it); the seconds each resource held a flow back
accumulate in ``Flow.bottleneck_s``, touched only for flows whose bottleneck
changed.
"""
from __future__ import annotations

import heapq
import itertools
import logging
from typing import Any, Callable, Iterable

import numpy as np
import simpy

from simulator.fairshare import max_min_rates
from simulator.flow_parts import STALLED, CountingEnvironment, Flow, FlowEnd, Resource, Streaming
from simulator.flow_relevel import relevel
from simulator.flow_table import FlowTable, completion_tolerance
from simulator.timeline import Timeline

log = logging.getLogger(__name__)

__all__ = ["CountingEnvironment", "Flow", "FlowEnd", "FlowNetwork", "Resource", "Streaming"]


_LATE = 2  # event priority after simpy's URGENT (0) and NORMAL (1)


def _overload(capacity: float) -> float:
    """A resource whose residual capacity is below this is overloaded, not just carrying float noise."""
    return -1e-9 * max(capacity, 1.0)


class FlowNetwork:
    """Resources, the flows over them, and the simpy process that moves bytes."""

    def __init__(self, env: simpy.Environment, timeline: Timeline | None = None):
        self.env = env
        self.timeline = timeline if timeline is not None else Timeline()
        self.resources: list[Resource] = []
        self.by_name: dict[str, Resource] = {}
        self.active: dict[int, Flow] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._t = FlowTable()
        self._touched: set[int] = set()  # resources changed since the last allocation
        self._cut: set[int] = set()  # resources whose capacity changed since then
        self.full_fills = 0  # allocations that re-filled every flow (the rest re-levelled a few)
        self.incremental = True  # False: every allocation re-fills every flow (the reference, in tests)
        self._work = np.zeros(0)  # integral of each resource's load (bytes, CPU seconds)
        self._load = np.zeros(0)
        self._capacity = np.zeros(0)
        self._slack = np.zeros(0)  # residual capacity below which a resource counts as overloaded
        # Resources whose load may be non-zero: the only ones a settle integrates and a fill clears,
        # so an instant costs O(running flows' hops), not O(resources in the SAN).
        # (None: every resource, after a re-levelling, which passes over all of them anyway)
        self._hot: np.ndarray | None = np.zeros(0, dtype=np.intp)
        self._last = env.now
        self._gen = 0
        self._timer_at = np.inf  # when the pending timer fires (inf: none pending)
        self._pending = False
        self.reallocations = 0

    # -- resources ---------------------------------------------------------------
    def add_resource(self, name: str, capacity: float, kind: str = "link") -> Resource:
        if name in self.by_name:
            raise ValueError(f"resource {name!r} is defined twice")
        if not capacity >= 0:
            raise ValueError(f"resource {name!r}: capacity must be >= 0, got {capacity}")
        self._settle()
        res = Resource(name, len(self.resources), float(capacity), kind, float(capacity))
        self.resources.append(res)
        self.by_name[name] = res
        if res.index >= len(self._capacity):  # grow the per-resource buffers by doubling
            extra = max(64, len(self._capacity))
            self._work = np.concatenate((self._work, np.zeros(extra)))
            self._load = np.concatenate((self._load, np.zeros(extra)))
            self._capacity = np.concatenate((self._capacity, np.zeros(extra)))
            self._slack = np.concatenate((self._slack, np.zeros(extra)))
        self._capacity[res.index] = res.capacity
        self._slack[res.index] = _overload(res.capacity)
        self._t.resources(len(self.resources))
        return res

    def resource(self, name: str) -> Resource:
        try:
            return self.by_name[name]
        except KeyError:
            raise LookupError(f"no resource named {name!r} in the simulated SAN") from None

    def set_capacity(self, res: Resource, capacity: float) -> None:
        """Change a capacity now (a fault or a repair); rates are recomputed."""
        self._settle()
        res.capacity = max(0.0, float(capacity))
        self._capacity[res.index] = res.capacity
        self._slack[res.index] = _overload(res.capacity)
        self._touched.add(res.index)
        self._cut.add(res.index)
        self._request()

    def restore(self, res: Resource) -> None:
        self.set_capacity(res, res.nominal)

    def work_done(self, res: Resource) -> float:
        """Total work the resource has carried so far (bytes, or CPU seconds)."""
        self._settle()
        return float(self._work[res.index])

    # -- flows -------------------------------------------------------------------
    def start(self, total: float, path: Iterable[tuple[Resource, float]], *, label: str = "",
              job: str = "", cap: float = float("inf"), streaming: Streaming | None = None,
              meta: dict[str, Any] | None = None) -> Flow:
        """Start moving ``total`` bytes; ``flow.finished`` succeeds with a :class:`FlowEnd`."""
        path = tuple(path)
        if total < 0:
            raise ValueError(f"flow {label!r}: negative size {total}")
        for res, w in path:
            if not w > 0:
                raise ValueError(f"flow {label!r}: weight on {res.name} must be > 0, got {w}")
        if not path and not np.isfinite(cap):
            raise ValueError(f"flow {label!r} crosses no resource and has no rate cap")
        # no settle: a new flow moves nothing and loads nothing until the reallocation, which settles
        flow = Flow(next(self._ids), label, job, float(total), path, float(cap), streaming,
                    self.env.event(), self.env.now, dict(meta or {}))
        flow._ri = np.fromiter((r.index for r, _ in path), dtype=np.intp, count=len(path))
        flow._wi = np.fromiter((w for _, w in path), dtype=float, count=len(path))
        self.timeline.flow_started(self.env.now, flow.id, label, job, flow.total)
        if total == 0:
            self._finish(flow, FlowEnd(True, 0.0, self.env.now, "done"))
            return flow
        self.active[flow.id] = flow
        self._t.add(flow, self.env.now)
        self._touched.update(flow._ri.tolist())
        self._request()
        return flow

    def add_mark(self, flow: Flow, at_bytes: float, callback: Callable[[Flow], Any]) -> None:
        """Call ``callback(flow)`` when the flow has moved ``at_bytes`` bytes."""
        if flow.id not in self.active:
            raise ValueError(f"flow {flow.label!r} is not running")
        if at_bytes <= self.bytes_done(flow):
            callback(flow)
            return
        heapq.heappush(flow._marks, (float(at_bytes), next(self._seq), callback))
        row = np.array([flow._slot])
        self._t.settle(row, self.env.now)
        self._t.next[row] = min(flow._marks[0][0], flow.total)
        self._t.plan(row, self.env.now)
        self._request()

    def bytes_done(self, flow: Flow) -> float:
        self._settle()
        return self._t.done_at(flow._slot, self.env.now) if flow.id in self.active else flow.done

    def abort(self, flow: Flow, reason: str, cause: Any = None) -> None:
        """Stop a running flow now; its ``finished`` event reports the bytes moved."""
        if flow.id not in self.active:
            return
        done = self.bytes_done(flow)
        del self.active[flow.id]
        self._drop(flow)
        self._finish(flow, FlowEnd(False, done, self.env.now, reason, cause))
        self._request()

    @property
    def shortcuts(self) -> int:
        """Re-levellings done by the one-holder shortcut (:mod:`simulator.flow_held`)."""
        return self._t.shortcuts

    def flows_through(self, res: Resource) -> list[Flow]:
        return [f for f in self.active.values() if f.crosses(res)]

    # -- internals ---------------------------------------------------------------
    def _drop(self, flow: Flow) -> None:
        """Take a running flow's row out; the load it put on its resources goes with it."""
        i = flow._slot
        r = float(self._t.rate[i])
        hops = flow._ri.tolist()
        if r:
            load = self._load
            for k, w in zip(hops, flow._wi.tolist()):
                load[k] -= w * r
        self._touched.update(hops)
        self._t.remove(i)

    def _finish(self, flow: Flow, end: FlowEnd) -> None:
        if flow._bneck != -2:
            b = flow._bneck
            flow.bottleneck_s[b] = flow.bottleneck_s.get(b, 0.0) + (self.env.now - flow._bsince)
            flow._bneck = -2
        flow.done = end.bytes_done
        if flow.shoeshine and flow.streaming is not None:
            flow.stop_start_cycles += (flow.done - flow._shoeshine_from) / flow.streaming.buffer
        flow.rate = 0.0
        self.timeline.flow_ended(self.env.now, flow.id, "done" if end.ok else end.reason)
        flow.finished.succeed(end)

    def _settle(self) -> None:
        now = self.env.now
        dt = now - self._last
        if dt > 0:  # the flows' bytes are kept lazily (FlowTable.settle); the resources' work here
            if self._hot is None:  # the re-levelling's dense passes: a dense settle costs no more
                self._work += self._load * dt
            else:
                hot = self._hot
                self._work[hot] += self._load[hot] * dt
        self._last = now

    def _request(self) -> None:
        """Reallocate once at this instant, after every change made at it."""
        if not self._pending:
            self._pending = True
            # A triggered event at a priority below simpy's NORMAL runs after every other event
            # of this instant, so a cascade (a flow ends, a drive is released, the next job
            # starts its flow) costs one reallocation, not one per step.
            ev = simpy.Event(self.env)
            ev._ok, ev._value = True, None
            ev.callbacks.append(self._reallocate)
            self.env.schedule(ev, _LATE)

    def _reallocate(self, _ev: Any = None) -> None:
        self._pending = False
        self._settle()
        self.reallocations += 1
        t, now = self._t, self.env.now
        part = None
        if t.n and self.incremental and not t.streamers:
            n_res = len(self.resources)
            part = relevel(t, self._capacity[:n_res], self._load[:n_res], self._slack[:n_res], self._touched,
                           self._cut)
        self._touched.clear()
        self._cut.clear()
        if part is None:
            rows = t.in_order()
            t.settle(rows, now)  # the streaming pass reads the bytes moved
            rate, bres = self._fill(rows)
        else:
            rows, rate, bres = part
            # the re-levelling made dense passes over every resource; a settle may as well
            self._hot = None
        if self.timeline.record_rates:
            for k in np.flatnonzero(rate != t.rate[rows]):
                self.timeline.rate(now, t.flows[rows[k]].id, float(rate[k]))
        if len(rows):
            t.retime(rows, rate, now)
            self._note_bottlenecks(t.set_bottlenecks(rows, bres, np.where(rate > 0, bres, STALLED)))
        else:
            t.new.clear()
        self._schedule()

    def _fill(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The whole max-min fill of ``rows`` (every running flow, with the streaming pass) and the loads.

        Returns the rows' rates and bottleneck resources.
        """
        self.full_fills += 1
        t, n = self._t, len(rows)
        fi, ri, wi = t.entries(rows)
        # only the resources some flow crosses take part in the allocation (sorted, as their indices)
        used, local = np.unique(ri, return_inverse=True)
        local = local.reshape(-1).astype(np.intp, copy=False)
        capacity = self._capacity[used]
        bneck = np.empty(n, dtype=np.intp)
        rate = max_min_rates(fi, local, wi, capacity, n, t.caps[rows], bneck)
        if t.streamers:
            rate = self._apply_streaming(rows, rate, (fi, local, wi, capacity), bneck)
        bres = np.where(bneck >= 0, used[np.maximum(bneck, 0)], -1) if n else bneck
        if self._hot is None:
            self._load.fill(0.0)
        else:
            self._load[self._hot] = 0.0  # every other resource's load is zero already
        if n:
            self._load[used] = np.bincount(local, weights=wi * rate[fi], minlength=len(used))
        self._hot = used
        return rate, bres

    def _note_bottlenecks(self, changes: list[tuple[int, int]]) -> None:
        """Close the bottleneck interval of every flow whose bottleneck changed at this allocation."""
        flows, now = self._t.flows, self.env.now
        for row, key in changes:
            f = flows[row]
            if f._bneck != -2:
                f.bottleneck_s[f._bneck] = f.bottleneck_s.get(f._bneck, 0.0) + (now - f._bsince)
            f._bneck, f._bsince = key, now

    def _apply_streaming(self, rows: np.ndarray, rate: np.ndarray, system: tuple,
                         bneck: np.ndarray) -> np.ndarray:
        """Second pass: starved streaming devices fall into start/stop and slow further."""
        t, n = self._t, len(rows)
        smin, sbuf, srep, caps = t.smin[rows], t.sbuf[rows], t.srep[rows], t.caps[rows]
        starved = (rate > 0) & (rate < smin * (1 - 1e-9))
        flips = np.flatnonzero(starved != t.sstate[rows])
        if len(flips):
            now = self.env.now
            for i in flips:
                f = t.flows[rows[i]]
                s = f.streaming
                done = float(t.done[rows[i]])
                if starved[i]:
                    f._shoeshine_from = done
                    self.timeline.event(now, "shoeshine", s.device or f.label, flow=f.id, job=f.job,
                                        feed=float(rate[i]), min_rate=s.min_rate)
                    log.warning("%s: feed %.1f MB/s below streaming speed %.1f MB/s: start/stop (shoe-shine)",
                                s.device or f.label, rate[i] / 1e6, s.min_rate / 1e6)
                else:
                    f.stop_start_cycles += (done - f._shoeshine_from) / s.buffer
                    self.timeline.event(now, "streaming", s.device or f.label, flow=f.id, job=f.job)
                f.shoeshine = bool(starved[i])
            t.sstate[rows] = starved
        if not starved.any():
            return rate
        # effective rate of a starved feed x: x / (1 + x * reposition / buffer)  (see Streaming)
        degraded = rate / (1.0 + rate * srep / sbuf)
        capped = np.where(starved, np.minimum(caps, degraded), caps)
        upstream = bneck.copy()
        fi, local, wi, capacity = system
        rate = max_min_rates(fi, local, wi, capacity, n, capped, bneck)
        # a starved drive is held back by whatever starves it, not by its own start/stop cap
        np.copyto(bneck, upstream, where=starved & (bneck == -1))
        return rate

    def _schedule(self) -> None:
        """One timer for the earliest next event of any flow (completion or byte mark)."""
        t = self._t
        at = float(t.eta[:t.hi].min()) if t.n else np.inf
        if at == self._timer_at:
            return  # the pending timer is the right one
        self._gen += 1
        self._timer_at = at
        if not at < np.inf:
            return
        gen = self._gen
        ev = self.env.timeout(max(at - self.env.now, 0.0))
        ev.callbacks.append(lambda _e: self._on_timer(gen, at))

    def _on_timer(self, gen: int, at: float) -> None:
        if gen != self._gen:
            return  # superseded by a later reallocation
        self._timer_at = np.inf
        self._settle()
        t, now = self._t, self.env.now
        hit = (t.etol[:t.hi] <= max(now, at)).nonzero()[0]  # ``at`` itself: env.now may round below it
        if len(hit) > 1:  # flows due together are handled in arrival order (see FlowTable.order)
            hit = hit.take(np.argsort(t.order.take(hit), kind="stable"))
        t.settle(hit, now)
        nxt, done_a = t.next[hit], t.done[hit]
        tol = completion_tolerance(nxt)
        fired: list[tuple[Callable[[Flow], Any], Flow]] = []
        finished: list[Flow] = []
        going: list[int] = []
        for k, i in enumerate(hit.tolist()):
            f = t.flows[i]
            done = float(done_a[k])
            while f._marks and f._marks[0][0] <= done + tol[k]:
                fired.append((heapq.heappop(f._marks)[2], f))
            if done >= f.total - tol[k]:
                t.done[i] = f.total
                finished.append(f)
            else:
                t.next[i] = min(f._marks[0][0], f.total) if f._marks else f.total
                going.append(i)
        if going:
            t.plan(np.array(going), now)
        for f in sorted(finished, key=lambda x: -t.order[x._slot]):  # last first, as arrival order is kept
            del self.active[f.id]
            self._drop(f)
        for f in finished:
            self._finish(f, FlowEnd(True, f.total, self.env.now, "done"))
        for callback, f in fired:
            callback(f)
        self._request()
