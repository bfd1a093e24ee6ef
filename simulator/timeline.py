"""What happened, when: discrete events plus per-flow throughput steps.

Rates are recorded only when they change (at a flow start, end or capacity
change), so the record grows with events, not with bytes.  The timeline can be
written as JSON and is what the plots are drawn from.

Capacity runs of thousands of jobs need none of that per flow: with
``detail=False`` only running counts are kept (events per kind, flows started
and ended), so memory stays flat however many jobs run.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FlowRecord:
    """One flow's life: who it belonged to and its rate as a step function."""

    flow_id: int
    label: str  # the path it ran over, e.g. "serverfree:DM1->DRV03"
    job: str
    total: float
    start: float
    end: float | None = None
    outcome: str = "running"  # "done", or why it stopped
    steps: list[tuple[float, float]] = field(default_factory=list)  # (time, bytes/s)

    def bytes_between(self, t0: float, t1: float) -> float:
        """Bytes this flow moved in [t0, t1] (integrates the step function)."""
        total = 0.0
        end = self.end if self.end is not None else t1
        for i, (t, rate) in enumerate(self.steps):
            nxt = self.steps[i + 1][0] if i + 1 < len(self.steps) else end
            lo, hi = max(t, t0), min(nxt, t1)
            if hi > lo:
                total += rate * (hi - lo)
        return total


@dataclass
class Event:
    time: float
    kind: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)


class Timeline:
    """Collects events and flow rate steps; ``record_rates=False`` keeps only events and flow records,
    ``detail=False`` only counts (events per kind, flows started and ended)."""

    def __init__(self, record_rates: bool = True, *, detail: bool = True):
        self.detail = detail
        self.record_rates = record_rates and detail
        self.events: list[Event] = []
        self.flows: dict[int, FlowRecord] = {}
        self.counts: Counter[str] = Counter()  # events per kind, in both modes
        self.flows_started = 0
        self.flows_ended: Counter[str] = Counter()  # "done", or why flows stopped

    def event(self, time: float, kind: str, subject: str, **detail: Any) -> None:
        self.counts[kind] += 1
        if self.detail:
            self.events.append(Event(time, kind, subject, detail))

    def count(self, kind: str) -> int:
        """Events of ``kind`` so far (kept in both modes)."""
        return self.counts[kind]

    def flow_started(self, time: float, flow_id: int, label: str, job: str, total: float) -> None:
        self.flows_started += 1
        if self.detail:
            self.flows[flow_id] = FlowRecord(flow_id, label, job, total, time)

    def rate(self, time: float, flow_id: int, rate: float) -> None:
        if not self.record_rates:
            return
        steps = self.flows[flow_id].steps
        if steps and steps[-1][0] == time:
            steps[-1] = (time, rate)
        elif not steps or steps[-1][1] != rate:
            steps.append((time, rate))

    def flow_ended(self, time: float, flow_id: int, outcome: str) -> None:
        self.flows_ended[outcome] += 1
        if not self.detail:
            return
        rec = self.flows[flow_id]
        rec.end, rec.outcome = time, outcome
        if self.record_rates:
            self.rate(time, flow_id, 0.0)

    def events_of(self, kind: str) -> list[Event]:
        if not self.detail:
            raise ValueError(f"the timeline kept counts only (detail=False): no {kind!r} events to list; "
                             f"count('{kind}') gives their number")
        return [e for e in self.events if e.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        if not self.detail:
            return {"events": [], "flows": [], "event_counts": dict(sorted(self.counts.items())),
                    "flows_started": self.flows_started, "flows_ended": dict(sorted(self.flows_ended.items()))}
        return {
            "events": [{"time": e.time, "kind": e.kind, "subject": e.subject, **e.detail} for e in self.events],
            "flows": [
                {"id": r.flow_id, "label": r.label, "job": r.job, "total": r.total, "start": r.start,
                 "end": r.end, "outcome": r.outcome, "steps": r.steps}
                for r in self.flows.values()
            ],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=str))
