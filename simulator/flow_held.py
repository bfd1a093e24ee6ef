"""What the flows each resource holds back weigh on every resource: the re-levelling's shortcut.

A max-min fair allocation gives every flow held back by one resource the same
rate (the resource's level).  So when a change re-levels just the flows one
resource r0 holds back (the usual event in a SAN: a flow starts or ends at a
drive or a data mover), the load they put on each resource is that one rate
times the summed weight of their hops there -- a dense vector per holding
resource, kept up to date as flows are held and released, instead of a gather
over every hop of every flow at every event.  :func:`simulator.flow_relevel.relevel`
uses it when the change is of that shape and falls back to its general fill
otherwise.  Kept only while the SAN has at most ``LIMIT`` resources (one
vector per holding resource).
"""
from __future__ import annotations

import numpy as np

LIMIT = 4096


class HeldWeights:
    def __init__(self) -> None:
        self.of: dict[int, np.ndarray] = {}  # holding resource -> summed weight of its held rows per resource
        self.size = 0

    def resize(self, resources: int) -> bool:
        """Room for ``resources``; False when there are too many to keep a vector each."""
        if resources > LIMIT:
            self.of.clear()
            return False
        if resources > self.size:
            self.size = max(resources, 2 * self.size, 64)
            for r, v in self.of.items():
                self.of[r] = np.concatenate((v, np.zeros(self.size - len(v))))
        return True

    def hold(self, r: int, ri: np.ndarray, wi: np.ndarray, unique: bool) -> None:
        v = self.of.get(r)
        if v is None:
            self.of[r] = v = np.zeros(self.size)
        if unique:
            v[ri] += wi
        else:
            np.add.at(v, ri, wi)

    def release(self, r: int, ri: np.ndarray, wi: np.ndarray, unique: bool, left: int) -> None:
        if not left:  # the last one: start afresh (no rounding left behind)
            del self.of[r]
        elif unique:
            self.of[r][ri] -= wi
        else:
            np.subtract.at(self.of[r], ri, wi)
