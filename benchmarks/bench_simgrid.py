"""Benchmark: our flow engine against SimGrid, the field's reference flow-level simulator.

Both engines run the same random SAN-shaped workload (:mod:`simulator.flow_workload`):
thousands of flows over hundreds of links (LUNs, array ports, two fabrics of
ISLs, data movers, drive ports, drives), starts spread over a window.  SimGrid
runs its plain max-min model (CM02, zero latency, no TCP window, no cross
traffic) through Debian's ``python3-simgrid`` in the system interpreter
(:mod:`simulator.simgrid_peer`); ours runs :class:`simulator.flows.FlowNetwork`
in this interpreter.  Every flow's completion time is compared.

The last line is ``max_rel_error=E ours_cpu_s=X simgrid_cpu_s=Y speedup=Z``
(targets: E <= 0.01, Z >= 10 at 20,000 flows; Z is SimGrid's CPU seconds over
ours, platform building included in both).

    .venv/bin/python benchmarks/bench_simgrid.py [--flows 20000] [--window-s 3600] [--mean-gb 2] [--seed 1]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from simulator.flow_workload import WorkloadShape, relative_errors, run_ours, run_simgrid, san_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=20_000)
    ap.add_argument("--window-s", type=float, default=3_600.0, help="flow starts spread over this window")
    ap.add_argument("--mean-gb", type=float, default=2.0, help="mean flow size (lognormal)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    shape = WorkloadShape(flows=args.flows, window_s=args.window_s, mean_gb=args.mean_gb, seed=args.seed)
    work = san_workload(shape)
    print(f"workload: {len(work.flows)} flows, {len(work.links)} links, {len(work.routes)} routes, "
          f"starts over {args.window_s:g} s, seed {args.seed}; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    peer, version = run_simgrid(work)
    print(f"SimGrid {version} (CM02 max-min, zero latency): wall {peer.wall_s:.3f} s, CPU {peer.cpu_s:.3f} s")
    ours = run_ours(work)
    print(f"ours (simulator.flows): wall {ours.wall_s:.3f} s, CPU {ours.cpu_s:.3f} s, {ours.reallocations} "
          f"reallocations ({ours.full_fills} of them whole fills, {ours.shortcuts} by the one-holder shortcut), "
          f"{ours.events} simpy events, at most "
          f"{ours.max_active} flows at once")
    rel = relative_errors(work, ours.finish, peer.finish)
    worst = int(np.argmax(rel))
    print(f"completion times: median relative error {np.median(rel):.3g}, max {rel[worst]:.3g} "
          f"(flow {worst}: ours {ours.finish[worst]:.6f} s, SimGrid {peer.finish[worst]:.6f} s); "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"max_rel_error={rel.max():.3g} ours_cpu_s={ours.cpu_s:.3f} simgrid_cpu_s={peer.cpu_s:.3f} "
          f"speedup={peer.cpu_s / ours.cpu_s:.2f}")


if __name__ == "__main__":
    main()
