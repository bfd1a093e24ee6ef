"""A random SAN-shaped flow workload, and our flow engine run on it (the SimGrid comparison's half).

The same workload is handed to SimGrid (:mod:`simulator.simgrid_peer`, run by
the system Python that carries Debian's ``python3-simgrid``) so that every
flow's completion time can be compared between the two engines.

Shape: source LUNs on arrays, array ports, two fabrics of ISLs, data movers
(port in, the mover itself, port out), tape drive ports and the drives; a flow
copies one LUN to one drive through the drive's mover.  Every hop is one
capacity (bytes/s) crossed with weight 1 -- the common ground of both engines
(SimGrid communications consume each link once per byte).  A (LUN, drive) pair
always takes the same route, since SimGrid routes by host pair.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.flow_parts import CountingEnvironment
from simulator.flows import FlowNetwork

MB = 1_000_000
# Debian's python3-simgrid is built for the system interpreter; override with SERVERFREE_SIMGRID_PYTHON.
SIMGRID_PYTHON = os.environ.get("SERVERFREE_SIMGRID_PYTHON", "/usr/bin/python3")
PEER = Path(__file__).with_name("simgrid_peer.py")


@dataclass(frozen=True)
class WorkloadShape:
    flows: int = 20_000
    luns: int = 400
    arrays: int = 8
    ports_per_array: int = 4
    isls_per_fabric: int = 8
    movers: int = 16
    drives: int = 64
    mean_gb: float = 2.0  # mean flow size (lognormal)
    window_s: float = 3_600.0  # starts spread uniformly over this window
    seed: int = 1


@dataclass
class Workload:
    """Links (name, bytes/s); routes (LUN, drive) -> link indices; flows (LUN, drive, bytes, start)."""

    links: list[tuple[str, float]]
    routes: dict[tuple[int, int], list[int]]
    flows: list[tuple[int, int, int, float]]

    def to_json(self) -> dict[str, Any]:
        return {"links": self.links,
                "routes": [[s, d, hops] for (s, d), hops in self.routes.items()],
                "flows": self.flows}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))


def san_workload(shape: WorkloadShape = WorkloadShape()) -> Workload:
    """Draw a workload from ``shape.seed`` (deterministic)."""
    rng = np.random.default_rng(shape.seed)
    links: list[tuple[str, float]] = []

    def link(name: str, mb_s: float) -> int:
        links.append((name, float(mb_s) * MB))
        return len(links) - 1

    lun_link = [link(f"lun{i}", rng.uniform(150, 400)) for i in range(shape.luns)]
    lun_array = rng.integers(0, shape.arrays, shape.luns)
    ports = [[link(f"arr{a}p{p}", 800) for p in range(shape.ports_per_array)] for a in range(shape.arrays)]
    isls = [[link(f"isl{f}{i}", 1600) for i in range(shape.isls_per_fabric)] for f in "AB"]
    movers = [(link(f"dm{m}in", 800), link(f"dm{m}", rng.uniform(300, 600)), link(f"dm{m}out", 800))
              for m in range(shape.movers)]
    drives = [(link(f"drv{d}port", 800), link(f"drv{d}", rng.choice([120.0, 160.0, 300.0])))
              for d in range(shape.drives)]
    src = rng.integers(0, shape.luns, shape.flows)
    dst = rng.integers(0, shape.drives, shape.flows)
    sizes = np.maximum(rng.lognormal(np.log(shape.mean_gb * 1e9) - 0.5, 1.0, shape.flows), 1e6).astype(np.int64)
    starts = np.sort(rng.uniform(0.0, shape.window_s, shape.flows))
    routes: dict[tuple[int, int], list[int]] = {}
    for s, d in set(zip(src.tolist(), dst.tolist())):
        h = (s * 7919 + d * 104729) & 0xFFFF  # a fixed hash: the pair's port, fabric and ISL
        a = int(lun_array[s])
        m = d % shape.movers
        routes[(s, d)] = [lun_link[s], ports[a][h % shape.ports_per_array],
                          isls[h & 1][(h >> 1) % shape.isls_per_fabric], *movers[m], *drives[d]]
    flows = [(int(s), int(d), int(n), float(t)) for s, d, n, t in zip(src, dst, sizes, starts)]
    return Workload(links, routes, flows)


@dataclass
class EngineRun:
    finish: np.ndarray  # completion time of each flow, in workload order
    wall_s: float
    cpu_s: float
    reallocations: int
    events: int
    max_active: int
    full_fills: int = 0  # allocations that re-filled every flow (the rest re-levelled only some)
    shortcuts: int = 0  # re-levellings of one resource's held rows by the shortcut (simulator.flow_held)


def run_ours(work: Workload) -> EngineRun:
    """Run the workload on :class:`simulator.flows.FlowNetwork`; times include building it."""
    t0, c0 = time.perf_counter(), time.process_time()
    env = CountingEnvironment()
    net = FlowNetwork(env)
    net.timeline.record_rates = False
    res = [net.add_resource(name, bw) for name, bw in work.links]
    paths = {pair: tuple((res[i], 1.0) for i in hops) for pair, hops in work.routes.items()}
    finish = np.full(len(work.flows), np.nan)
    peak = [0]

    def done(i: int):
        return lambda ev: finish.__setitem__(i, ev.value.time)

    def launcher():
        for i, (s, d, size, start) in enumerate(work.flows):
            if start > env.now:
                yield env.timeout(start - env.now)
            net.start(size, paths[(s, d)], label=str(i)).finished.callbacks.append(done(i))
            peak[0] = max(peak[0], len(net.active))

    env.process(launcher())
    env.run()
    net.timeline.flows.clear()
    return EngineRun(finish, time.perf_counter() - t0, time.process_time() - c0, net.reallocations,
                     env.events_processed, peak[0], net.full_fills, net.shortcuts)


def simgrid_available(python: str = SIMGRID_PYTHON) -> bool:
    """Whether ``python`` can import SimGrid's binding (Debian package python3-simgrid)."""
    try:
        return subprocess.run([python, "-c", "import simgrid"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_simgrid(work: Workload, python: str = SIMGRID_PYTHON) -> tuple[EngineRun, str]:
    """Run the workload on SimGrid in a subprocess; wall and CPU seconds are measured inside it."""
    with tempfile.TemporaryDirectory(prefix="serverfree-simgrid-") as tmp:
        wl, out = Path(tmp) / "workload.json", Path(tmp) / "result.json"
        work.write(wl)
        proc = subprocess.run([python, str(PEER), str(wl), str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"SimGrid peer ({python} {PEER.name}) failed: {last}")
        res = json.loads(out.read_text())
    return EngineRun(np.asarray(res["finish"], dtype=float), res["wall_s"], res["cpu_s"], 0, 0, 0), res["version"]


def relative_errors(work: Workload, ours: np.ndarray, peer: np.ndarray) -> np.ndarray:
    """|ours - peer| / peer's duration of each flow."""
    start = np.fromiter((f[3] for f in work.flows), dtype=float, count=len(work.flows))
    return np.abs(ours - peer) / np.maximum(peer - start, 1e-12)
