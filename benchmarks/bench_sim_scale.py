"""Simulator memory and CPU as jobs grow: N fluid backups of 16 TiB fragmented volumes in one run.

Each job count runs in its own child process (so each peak RSS is its own):
the dual-fabric world of ``bench_simulator`` with one client volume per job
(16 TiB, 42,439,644 extents as ``bench_extents`` makes a fragmented volume),
8 movers, 16 drives, seeded faults, server-free with failover.  The run keeps
running totals only (``detail=False``: no per-flow timeline, no per-job
attribution or outcome records; :class:`simulator.outcome_stats.OutcomeStats`
takes each outcome as its job ends, ``--outcomes FILE`` writes them as JSON
lines) and the jobs waiting for a drive are one entry of its queue, not a
process each (``DrivePool.admit_many``; same outcomes, in the same order).  ``--detail`` runs as
before -- a process per job from the start, every record kept -- for comparison.

Printed per job count: wall and CPU seconds, peak RSS of the whole process,
the RSS the world takes (its clients, disks and links: one of each per job
here; ``--clients N`` fixes the site at N volumes, backed up again and again)
and what the run adds over it, each per job, and the load average.
The last line compares CPU seconds and run bytes per job of the largest and
smallest counts (flat memory and linear CPU: both ratios near 1 and 10).

    .venv/bin/python benchmarks/bench_sim_scale.py [--jobs 1000 10000] [--detail] [--outcomes FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time

TiB = 1 << 40
FRAGMENTED_16TIB_EXTENTS = 42_439_644


def rss_bytes() -> int:
    """Resident set size now (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_one(jobs: int, size: int, extents: int, faults: int, seed: int, detail: bool,
            outcomes: str | None, clients: int = 0) -> dict:
    """One run, in this process; returns its figures (the caller runs it in a child)."""
    from simulator.calibration import Calibration
    from simulator.faults import FaultInjector, random_faults
    from simulator.outcome_stats import OutcomeStats
    from simulator.synthetic import DrivePool, image_backup
    from simulator.worlds import DualFabricSpec, dual_fabric

    logging.disable(logging.WARNING)  # one shoe-shine warning per drive per job would swamp the output
    rss0 = rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    spec = DualFabricSpec(clients=clients or jobs)
    san = dual_fabric(spec, Calibration(tape_mount_s=30.0), detail=detail)
    rss_world = rss_bytes()
    drives, movers = sorted(san.dev.drives), sorted(san.dev.movers)
    names = [f"J{c:05d}" for c in range(jobs)]
    horizon = jobs * size / (len(drives) * spec.drive_native_mb_s * 1e6)
    FaultInjector(san, random_faults(seed, faults, san, horizon_s=horizon, jobs=names,
                                     duration_range=(0.001, 0.01))).arm()
    pool = DrivePool(san, drives)
    writer = open(outcomes, "w") if outcomes else None
    stats = OutcomeStats(writer)
    kept: list = []  # detail: every process, with its outcome

    def start(c: int, drive: str | None = None, t: float = san.env.now):
        k = c % spec.clients
        return san.env.process(image_backup(san, f"J{c:05d}", f"ARR{k % spec.arrays}:{k // spec.arrays}", size, pool,
                                            movers, extents=extents, sink=stats, drive=drive, queued_s=t))

    if detail:  # as bench_simulator does: a process per job from the start, every process and outcome kept
        kept = [start(c) for c in range(jobs)]
    else:  # the jobs waiting for a drive are one entry of its queue; a job's process starts on its drive
        pool.admit_many(jobs, start)
    del names
    san.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if writer is not None:
        writer.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"jobs": jobs, "wall_s": wall, "cpu_s": cpu, "peak_rss": peak, "rss_start": rss0,
            "world_bytes_per_job": (rss_world - rss0) / jobs, "run_bytes_per_job": (peak - rss_world) / jobs,
            "bytes_per_job": (peak - rss0) / jobs, "clients": spec.clients, "simulated_days": san.env.now / 86400,
            "events": san.env.events_processed, "reallocations": san.net.reallocations,
            "flows": san.timeline.flows_started, "outcomes": stats.summary(), "detail": detail,
            "load": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000], help="job counts, one child run each")
    ap.add_argument("--size-tib", type=float, default=16.0)
    ap.add_argument("--extents", type=int, default=FRAGMENTED_16TIB_EXTENTS)
    ap.add_argument("--faults", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--clients", type=int, default=0,
                    help="client volumes in the site (default: one per job); jobs beyond it back the same ones up again")
    ap.add_argument("--detail", action="store_true", help="keep every per-flow and per-job record (as before)")
    ap.add_argument("--outcomes", metavar="FILE", help="write each job's outcome as a JSON line (one file per count: "
                                                       "FILE.<jobs>)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for n in args.jobs:
        if n < 1:
            ap.error(f"--jobs: {n} is not a positive job count")
    size = int(args.size_tib * TiB)
    if args.child is not None:
        out = f"{args.outcomes}.{args.child}" if args.outcomes else None
        print(json.dumps(run_one(args.child, size, args.extents, args.faults, args.seed, args.detail, out,
                                 args.clients)))
        return
    if args.clients < 0:
        ap.error(f"--clients: {args.clients} is negative")
    site = f"{args.clients:,} client volumes" if args.clients else "one client volume per job"
    print(f"fluid mode, {site}, {args.size_tib:g} TiB volumes of {args.extents:,} extents, 8 movers, 16 drives, "
          f"{args.faults} faults (seed {args.seed}); {'per-job detail kept' if args.detail else 'running totals only'}")
    results = []
    for n in args.jobs:
        cmd = [sys.executable, __file__, "--child", str(n), "--size-tib", str(args.size_tib), "--extents",
               str(args.extents), "--faults", str(args.faults), "--seed", str(args.seed), "--clients", str(args.clients)]
        cmd += ["--detail"] if args.detail else []
        cmd += ["--outcomes", args.outcomes] if args.outcomes else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench_sim_scale: the run of {n} jobs failed: "
                             f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        o = r["outcomes"]
        print(f"{n:>7,} jobs: wall {r['wall_s']:7.2f} s, CPU {r['cpu_s']:7.2f} s, peak RSS "
              f"{r['peak_rss'] / 2**20:6.1f} MiB; per job {r['bytes_per_job']:,.0f} B (world "
              f"{r['world_bytes_per_job']:,.0f} B + run {r['run_bytes_per_job']:,.0f} B); "
              f"{o['ok']:,}/{o['jobs']:,} ok {o['by_path']}, {r['simulated_days']:.1f} simulated days, "
              f"{r['events']:,} events, {r['reallocations']:,} reallocations; load "
              + "/".join(f"{x:.2f}" for x in r["load"]))
    if len(results) > 1:
        a, b = results[0], results[-1]
        more = b["jobs"] - a["jobs"]
        print(f"jobs x{b['jobs'] / a['jobs']:g}: CPU x{b['cpu_s'] / a['cpu_s']:.2f}, wall x{b['wall_s'] / a['wall_s']:.2f}, "
              f"peak RSS {a['peak_rss'] / 2**20:.0f} -> {b['peak_rss'] / 2**20:.0f} MiB: "
              f"{(b['peak_rss'] - a['peak_rss']) / more:,.0f} B per further job (site "
              f"{(b['world_bytes_per_job'] * b['jobs'] - a['world_bytes_per_job'] * a['jobs']) / more:,.0f} B); load "
              + "/".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
