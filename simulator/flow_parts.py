"""The pieces the flow engine is made of: resources, flows, how a flow ended, streaming devices.

Kept apart from :mod:`simulator.flows` (the engine itself) so each stays small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy


# Keys of Flow.bottleneck_s besides resource indices: the flow's own rate cap held it back; a resource
# on its path had no capacity (a fault), so it stood still.
RATE_CAP = -1
STALLED = -3


class CountingEnvironment(simpy.Environment):
    """A simpy Environment that counts the events it processes (for benchmarks)."""

    def __init__(self, initial_time: float = 0):
        super().__init__(initial_time)
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()


@dataclass(eq=False, slots=True)  # several per client in a large SAN: no per-instance dict
class Resource:
    """Something with a capacity in work units per second (bytes/s, CPU s/s)."""

    name: str
    index: int
    capacity: float
    kind: str = "link"
    nominal: float = 0.0  # capacity before faults, restored by ``restore``

    def __repr__(self) -> str:
        return f"Resource({self.name!r}, {self.capacity:.4g}/s)"


@dataclass(frozen=True)
class Streaming:
    """A device that must be fed at ``min_rate`` or it stops, repositions and restarts.

    Below ``min_rate`` each ``buffer`` bytes cost one start/stop cycle of
    ``reposition_s`` during which the feed is not accepted, so the effective
    rate of a feed ``x`` is ``x / (1 + x * reposition_s / buffer)`` (the
    conservative model in which repositioning does not overlap the feed).
    """

    min_rate: float
    buffer: float
    reposition_s: float
    device: str = ""

    def degraded(self, rate: np.ndarray) -> np.ndarray:
        return rate / (1.0 + rate * self.reposition_s / self.buffer)


@dataclass
class FlowEnd:
    """How a flow ended: the value its ``finished`` event succeeds with."""

    ok: bool
    bytes_done: float
    time: float
    reason: str = ""
    cause: Any = None  # e.g. the fault that stopped it


@dataclass(eq=False)
class Flow:
    id: int
    label: str
    job: str
    total: float
    path: tuple[tuple[Resource, float], ...]
    cap: float
    streaming: Streaming | None
    finished: simpy.Event
    start_time: float
    meta: dict[str, Any] = field(default_factory=dict)
    done: float = 0.0  # bytes moved, as of the last settle
    rate: float = 0.0
    shoeshine: bool = False
    stop_start_cycles: float = 0.0
    # seconds each resource (by index; RATE_CAP, STALLED) was this flow's bottleneck
    bottleneck_s: dict[int, float] = field(default_factory=dict)
    _bneck: int = -2  # current bottleneck (-2: not allocated yet) and since when
    _bsince: float = 0.0
    _shoeshine_from: float = 0.0
    _marks: list = field(default_factory=list)  # heap of (bytes, seq, callback)
    _slot: int = -1
    _ri: Any = None  # resource indices of the path (numpy), cached for compilation
    _wi: Any = None

    def crosses(self, resource: Resource) -> bool:
        return any(r is resource for r, _ in self.path)


