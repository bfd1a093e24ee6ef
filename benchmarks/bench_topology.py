"""Benchmark: verify a synthetic domain of 10,000 ports, 5,000 LUNs and 2,000 volumes.

Prints load and verify times (verify = building the graph under the failure
set plus every verdict with redundancy), then, on its LAST line,
``verify_seconds=X`` -- CPU seconds of this single-threaded process, i.e. time
on one core, because the machine is shared (wall clock is printed above it) --
and ``peer_ratio``, peer CPU seconds over verify CPU seconds, the peer measured
in the same run: the straightforward per-volume judge
(:mod:`topology.reference`: plain networkx calls, no work shared between
volumes, single points of failure by failing each candidate) run on every
volume of a proportional 1/K slice of the domain (ports, LUNs, volumes, arrays,
movers and drives all divided by K), its time multiplied by K. That linear
scaling is a lower bound for the peer (its per-volume work also grows with the
fabric). The slice's verdicts are also compared with verify()'s.
Peak RSS of the whole process (topology loaded, verified) and the load
average are printed beside the figures.
Targets: verify < 2 s on one core at 10,000 ports; <= 3 s CPU at 100,000 ports,
50,000 LUNs and 20,000 volumes.

    .venv/bin/python benchmarks/bench_topology.py [--ports N --luns N --volumes N] [--slice K] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import time

from topology.graph import SanState
from topology.load import topology_from_data
from topology.reference import reference_verdicts
from topology.synthetic import count_ports, generate_domain
from topology.verify import verify

DEFAULTS = {"arrays": 50, "movers": 20, "drives": 40}


def peer_seconds(ports: int, luns: int, volumes: int, k: int) -> tuple[float, float, str, bool]:
    """(scaled peer seconds, measured CPU seconds, slice label, slice agrees with verify) on a 1/k slice."""
    params = {"ports": ports // k, "luns": luns // k, "volumes": volumes // k,
              **{name: max(2, n // k) for name, n in DEFAULTS.items()}}
    topo = topology_from_data(generate_domain(**params))
    c0 = time.process_time()
    ref = reference_verdicts(topo)
    measured = time.process_time() - c0
    report = verify(topo)
    agrees = all((v.server_free, v.disjoint_paths, v.single_points_of_failure)
                 == (ref[v.volume].server_free, ref[v.volume].disjoint_paths, ref[v.volume].single_points_of_failure)
                 for v in report.volumes)
    label = ", ".join(f"{name}={n}" for name, n in params.items())
    return measured * k, measured, label, agrees


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, default=10_000)
    ap.add_argument("--luns", type=int, default=5_000)
    ap.add_argument("--volumes", type=int, default=2_000)
    ap.add_argument("--slice", type=int, default=20, help="the peer runs on a 1/SLICE domain (default 20)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    doc = generate_domain(args.ports, args.luns, args.volumes)
    t0 = time.perf_counter()
    topo = topology_from_data(doc)
    load_s = time.perf_counter() - t0
    print(f"generated ports={count_ports(doc)} luns={sum(len(a['luns']) for a in doc['arrays'])} "
          f"volumes={len(doc['volumes'])} switches={len(doc['switches'])}")
    print(f"load_seconds={load_s:.3f}")
    del doc  # the CLI does not keep the parsed document either

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
    peer_s, measured, label, agrees = peer_seconds(args.ports, args.luns, args.volumes, args.slice)
    print(f"peer: straightforward per-volume reference judge on a 1/{args.slice} slice ({label}): "
          f"{measured:.3f} s CPU measured, x{args.slice} = {peer_s:.3f} s (linear scaling, a lower bound); "
          f"slice_verdicts_agree={agrees}")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"verify_wall_seconds={verify_s:.3f} peak_rss_mib={rss:.0f} load={load}")
    print(f"verify_seconds={verify_cpu:.3f} peer_ratio={peer_s / verify_cpu:.1f}")


if __name__ == "__main__":
    main()
