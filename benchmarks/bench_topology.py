"""Benchmark: verify a synthetic domain of 10,000 ports, 5,000 LUNs and 2,000 volumes.

Prints load and verify times (verify = building the graph under the failure
set plus every verdict with redundancy; wall clock, and CPU time because the
machine is shared), then, on its LAST line, ``verify_seconds=X`` and
the ratio against a naive peer measured in the same run: for a sample of
volumes, networkx all-pairs-style shortest paths from every mover port to
every array port and drive port (what a straightforward implementation would
do per volume), extrapolated to all volumes. Target: verify < 2 s on one core.

    .venv/bin/python benchmarks/bench_topology.py [--ports N --luns N --volumes N] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import networkx as nx

from topology.graph import SanState, fabric_view
from topology.load import topology_from_data
from topology.synthetic import count_ports, generate_domain
from topology.verify import verify


def naive_peer_seconds(state: SanState, sample: int) -> float:
    """Per-volume BFS from every mover port (the obvious approach), timed on ``sample`` volumes, scaled."""
    fabric = fabric_view(state.graph, state.down)
    topo = state.topology
    volumes = topo.volumes[:sample]
    drive_ports = [d.wwpn for lib in topo.libraries for d in lib.drives]
    t0 = time.perf_counter()
    for vol in volumes:
        array = vol.lun.split(":")[0]
        targets = {p.wwpn for a in topo.arrays if a.name == array for p in a.ports} | set(drive_ports)
        for mover in topo.datamovers:
            for p in mover.ports:
                lengths = nx.single_source_shortest_path_length(fabric, p.wwpn)
                _ = [t for t in targets if t in lengths]
    return (time.perf_counter() - t0) * len(topo.volumes) / max(1, len(volumes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, default=10_000)
    ap.add_argument("--luns", type=int, default=5_000)
    ap.add_argument("--volumes", type=int, default=2_000)
    ap.add_argument("--peer-sample", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    doc = generate_domain(args.ports, args.luns, args.volumes)
    t0 = time.perf_counter()
    topo = topology_from_data(doc)
    load_s = time.perf_counter() - t0
    print(f"generated ports={count_ports(doc)} luns={sum(len(a['luns']) for a in doc['arrays'])} "
          f"volumes={len(doc['volumes'])} switches={len(doc['switches'])}")
    print(f"load_seconds={load_s:.3f}")

    t0, c0 = time.perf_counter(), time.process_time()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    state = SanState.build(topo)
    report = verify(topo, state=state, redundancy=True)
    verify_s, verify_cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumtime").print_stats(20)
    sf = sum(v.server_free for v in report.volumes)
    paths = sorted({v.disjoint_paths for v in report.volumes})
    print(f"server_free={sf}/{len(report.volumes)} disjoint_paths={paths} verify_cpu_seconds={verify_cpu:.3f}")
    peer_s = naive_peer_seconds(state, args.peer_sample)
    print(f"naive_peer_seconds={peer_s:.3f} (extrapolated from {args.peer_sample} volumes)")
    print(f"verify_seconds={verify_s:.3f} peer_ratio={peer_s / verify_s:.1f}")


if __name__ == "__main__":
    main()
