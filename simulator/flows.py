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

Each allocation also names every flow's bottleneck (the resource whose
saturation froze it); the seconds each resource held a flow back accumulate in
``Flow.bottleneck_s``, touched only for flows whose bottleneck changed.
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
from simulator.timeline import Timeline

log = logging.getLogger(__name__)

__all__ = ["CountingEnvironment", "Flow", "FlowEnd", "FlowNetwork", "Resource", "Streaming"]


_LATE = 2  # event priority after simpy's URGENT (0) and NORMAL (1)


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
        self._order: list[Flow] = []
        self._compiled = False
        self._done = np.zeros(0)
        self._rate = np.zeros(0)
        self._work = np.zeros(0)  # integral of each resource's load (bytes, CPU seconds)
        self._load = np.zeros(0)
        self._capacity = np.zeros(0)
        self._last = env.now
        self._gen = 0
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
        self._capacity[res.index] = res.capacity
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
        self._settle()
        flow = Flow(next(self._ids), label, job, float(total), path, float(cap), streaming,
                    self.env.event(), self.env.now, dict(meta or {}))
        flow._ri = np.fromiter((r.index for r, _ in path), dtype=np.intp, count=len(path))
        flow._wi = np.fromiter((w for _, w in path), dtype=float, count=len(path))
        self.timeline.flow_started(self.env.now, flow.id, label, job, flow.total)
        if total == 0:
            self._finish(flow, FlowEnd(True, 0.0, self.env.now, "done"))
            return flow
        self.active[flow.id] = flow
        self._compiled = False
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
        self._compiled = False
        self._request()

    def _slot_of(self, flow: Flow) -> int:
        """The flow's row in the compiled arrays (still valid until the next compile), or -1."""
        s = flow._slot
        return s if flow.id in self.active and 0 <= s < len(self._order) and self._order[s] is flow else -1

    def bytes_done(self, flow: Flow) -> float:
        self._settle()
        s = self._slot_of(flow)
        return float(self._done[s]) if s >= 0 else flow.done

    def abort(self, flow: Flow, reason: str, cause: Any = None) -> None:
        """Stop a running flow now; its ``finished`` event reports the bytes moved."""
        if flow.id not in self.active:
            return
        done = self.bytes_done(flow)
        del self.active[flow.id]
        self._compiled = False
        self._finish(flow, FlowEnd(False, done, self.env.now, reason, cause))
        self._request()

    def flows_through(self, res: Resource) -> list[Flow]:
        return [f for f in self.active.values() if f.crosses(res)]

    # -- internals ---------------------------------------------------------------
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
        if dt > 0:
            if self._compiled and len(self._order):
                self._done += self._rate * dt
            self._work += self._load * dt
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

    def _compile(self) -> None:
        """Arrays for the current flow set; running flows carry their bytes over from the last compile."""
        old_order, old_done, old_rate = self._order, self._done, self._rate
        order = list(self.active.values())
        n = len(order)
        rows, ris, wis, lens, bnecks = [], [], [], [], []
        for i, f in enumerate(order):
            s = f._slot
            if 0 <= s < len(old_order) and old_order[s] is f:
                done, rate = old_done[s], old_rate[s]
            else:
                done, rate = f.done, f.rate
            f._slot = i
            rows.append((done, rate, f.total, f.cap, min(f._marks[0][0], f.total) if f._marks else f.total))
            ris.append(f._ri)
            wis.append(f._wi)
            lens.append(len(f._ri))
            bnecks.append(f._bneck)
        self._order = order
        self._bneck = np.array(bnecks, dtype=np.intp)
        cols = np.array(rows, dtype=float).reshape(n, 5)
        self._done, self._rate, self._total, self._caps, self._next = (cols[:, k].copy() for k in range(5))
        self._fi = np.repeat(np.arange(n), lens)
        if n:
            ri = np.concatenate(ris)
            self._wi = np.concatenate(wis)
        else:
            ri, self._wi = np.zeros(0, np.intp), np.zeros(0)
        # only the resources some flow crosses take part in the allocation
        self._used = np.flatnonzero(np.bincount(ri, minlength=len(self._capacity)))
        remap = np.empty(len(self._capacity), dtype=np.intp)
        remap[self._used] = np.arange(len(self._used))
        self._ri = remap[ri]
        self._streamers = any(f.streaming is not None for f in self._order)
        if self._streamers:
            st = [f.streaming for f in self._order]
            self._smin = np.array([x.min_rate if x else 0.0 for x in st])
            self._sbuf = np.array([x.buffer if x else 1.0 for x in st])
            self._srep = np.array([x.reposition_s if x else 0.0 for x in st])
            self._sstate = np.array([f.shoeshine for f in self._order], dtype=bool)
        self._compiled = True

    def _reallocate(self, _ev: Any = None) -> None:
        self._pending = False
        self._settle()
        if not self._compiled:
            self._compile()
        self.reallocations += 1
        n = len(self._order)
        capacity = self._capacity[self._used]
        old = self._rate.copy()
        bneck = np.empty(n, dtype=np.intp)
        rate = max_min_rates(self._fi, self._ri, self._wi, capacity, n, self._caps, bneck)
        if self._streamers:
            rate = self._apply_streaming(rate, capacity, bneck)
        self._rate = rate
        self._note_bottlenecks(bneck)
        self._load = np.zeros(len(self._capacity))
        if n:
            self._load[self._used] = np.bincount(self._ri, weights=self._wi * rate[self._fi],
                                                 minlength=len(self._used))
        if self.timeline.record_rates:
            now = self.env.now
            for i in np.flatnonzero(rate != old):
                self.timeline.rate(now, self._order[i].id, float(rate[i]))
        self._schedule()

    def _note_bottlenecks(self, local: np.ndarray) -> None:
        """Close the bottleneck interval of every flow whose bottleneck changed at this allocation."""
        now = self.env.now
        new = np.where(local >= 0, self._used[np.maximum(local, 0)], -1) if len(local) else local
        new[self._rate <= 0] = STALLED
        for i in np.flatnonzero(new != self._bneck):
            f = self._order[i]
            if f._bneck != -2:
                f.bottleneck_s[f._bneck] = f.bottleneck_s.get(f._bneck, 0.0) + (now - f._bsince)
            f._bneck, f._bsince = int(new[i]), now
        self._bneck = new

    def _apply_streaming(self, rate: np.ndarray, capacity: np.ndarray, bneck: np.ndarray) -> np.ndarray:
        """Second pass: starved streaming devices fall into start/stop and slow further."""
        starved = (rate > 0) & (rate < self._smin * (1 - 1e-9))
        flips = np.flatnonzero(starved != self._sstate)
        if len(flips):
            now = self.env.now
            for i in flips:
                f = self._order[i]
                s = f.streaming
                done = float(self._done[i])
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
            self._sstate = starved
        if not starved.any():
            return rate
        # effective rate of a starved feed x: x / (1 + x * reposition / buffer)  (see Streaming)
        degraded = rate / (1.0 + rate * self._srep / self._sbuf)
        caps = np.where(starved, np.minimum(self._caps, degraded), self._caps)
        upstream = bneck.copy()
        rate = max_min_rates(self._fi, self._ri, self._wi, capacity, len(self._order), caps, bneck)
        # a starved drive is held back by whatever starves it, not by its own start/stop cap
        np.copyto(bneck, upstream, where=starved & (bneck == -1))
        return rate

    def _schedule(self) -> None:
        self._gen += 1
        if not len(self._order):
            return
        moving = self._rate > 0
        if not moving.any():
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.where(moving, (self._next - self._done) / np.where(moving, self._rate, 1.0), np.inf)
        dt = max(float(eta.min()), 0.0)
        gen = self._gen
        ev = self.env.timeout(dt)
        ev.callbacks.append(lambda _e: self._on_timer(gen))

    def _on_timer(self, gen: int) -> None:
        if gen != self._gen:
            return  # superseded by a later reallocation
        if not self._compiled:
            self._request()  # the structure changed at this instant; reallocation will reschedule
            return
        self._settle()
        tol = 1e-9 * self._next + 1e-6
        hit = np.flatnonzero(self._done >= self._next - tol)
        fired: list[tuple[Callable[[Flow], Any], Flow]] = []
        finished: list[Flow] = []
        for i in hit:
            f = self._order[i]
            done = float(self._done[i])
            while f._marks and f._marks[0][0] <= done + tol[i]:
                fired.append((heapq.heappop(f._marks)[2], f))
            if done >= f.total - tol[i]:
                self._done[i] = f.total
                finished.append(f)
            else:
                self._next[i] = min(f._marks[0][0], f.total) if f._marks else f.total
        if finished:
            for f in finished:
                del self.active[f.id]
            self._compiled = False
            for f in finished:
                self._finish(f, FlowEnd(True, f.total, self.env.now, "done"))
        for callback, f in fired:
            callback(f)
        self._request()
