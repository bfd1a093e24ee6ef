"""Benchmark: the flow-level simulator against a per-64-KiB-chunk simpy model.

Workload (issue 5): 1,000 concurrent image backups of 1 TiB volumes over a
dual fabric with 8 data movers and 16 tape drives, 50 scheduled faults
(seeded), server-free with failover to LAN-free and LAN.

1. The flow-level simulator (``simulator``) runs the whole workload.
2. A per-chunk simpy model, written only here, moves every 64 KiB chunk hop by
   hop (request, hold for chunk/rate, release per resource).  Running all of it
   would take days, so it runs a proportional slice -- as many concurrent jobs
   as there are drives (the steady-state concurrency of the full run, since
   jobs queue for drives) with a fraction of each volume -- and its wall time
   is scaled up by the ratio of chunks; that figure is labelled "scaled".

The last line is ``sim_wall_seconds=X speedup=Y`` (targets: X <= 5, Y >= 1000).

    .venv/bin/python benchmarks/bench_simulator.py [--clients 1000] [--slice-mib 64]
"""
from __future__ import annotations

import argparse
import os
import resource
import time
from collections import Counter

import simpy

from simulator.calibration import Calibration
from simulator.faults import FaultInjector, FaultSpec, random_faults
from simulator.flows import CountingEnvironment
from simulator.synthetic import DrivePool, image_backup
from simulator.worlds import DualFabricSpec, dual_fabric

TiB = 1 << 40
MiB = 1 << 20
CHUNK = 64 * 1024


def run_flow_model(spec: DualFabricSpec, size: int, n_faults: int, seed: int, extents: int = 2000):
    t0, c0 = time.perf_counter(), time.process_time()
    san = dual_fabric(spec, Calibration(tape_mount_s=30.0))
    drives = sorted(san.dev.drives)
    movers = sorted(san.dev.movers)
    jobs = [f"J{c:04d}" for c in range(spec.clients)]
    horizon = spec.clients * size / (len(drives) * spec.drive_native_mb_s * 1e6)
    faults = random_faults(seed, n_faults, san, horizon_s=horizon, jobs=jobs, duration_range=(0.001, 0.01))
    FaultInjector(san, faults).arm()
    pool = DrivePool(san, drives)
    procs = [san.env.process(image_backup(san, jobs[c], f"ARR{c % spec.arrays}:{c // spec.arrays}", size, pool,
                                          movers, extents=extents))
             for c in range(spec.clients)]
    san.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return san, [p.value for p in procs], faults, horizon, wall, cpu


class ChunkModel:
    """Every 64 KiB chunk crosses disk, array port, ISL, mover port in, mover, mover port out, drive port, drive."""

    def __init__(self, spec: DualFabricSpec, cal: Calibration, faults: list[FaultSpec], time_scale: float):
        self.env = CountingEnvironment()
        self.spec, self.cal = spec, cal
        fc = cal.fc_bytes_s
        R = lambda: simpy.Resource(self.env, capacity=1)  # noqa: E731
        self.hop_rate: dict[str, float] = {}
        self.res: dict[str, simpy.Resource] = {}

        def add(name: str, rate: float) -> None:
            self.res[name], self.hop_rate[name] = R(), rate

        for f in "AB":
            for a in range(spec.arrays):
                add(f"ARR{a}-{f}", fc(spec.port_gbit))
            for i in range(spec.isls_per_fabric):
                add(f"ISL{f}{i}", fc(spec.isl_gbit))
            for m in range(1, spec.movers + 1):
                add(f"DM{m}-{f}>", fc(spec.port_gbit))
                add(f"DM{m}-{f}<", fc(spec.port_gbit))
            for d in range(1, spec.drives + 1):
                add(f"DRV{d:02d}-{f}", fc(spec.port_gbit))
        for m in range(1, spec.movers + 1):
            add(f"DM{m}", spec.mover_mb_s * 1e6)
        for d in range(1, spec.drives + 1):
            add(f"DRV{d:02d}", spec.drive_native_mb_s * 1e6)
        self.down: set[str] = set()
        for fault in faults:  # link faults at proportionally scaled times take a fabric hop down
            if fault.at_s is not None and fault.kind in ("link_down", "isl_down"):
                self.env.process(self._outage(fault, time_scale))

    def _outage(self, fault: FaultSpec, scale: float):
        yield self.env.timeout(fault.at_s * scale)
        self.down.add(fault.target)
        yield self.env.timeout((fault.duration_s or 0) * scale)
        self.down.discard(fault.target)

    def job(self, c: int, nbytes: int):
        spec = self.spec
        arr, isl = c % spec.arrays, c % spec.isls_per_fabric
        d = c % spec.drives + 1
        m = (d - 1) % spec.movers + 1
        disk = simpy.Resource(self.env, capacity=1)
        disk_rate = spec.array_lun_mb_s * 1e6
        for _ in range(nbytes // CHUNK):
            f = "A" if f"ARR{arr}-A" not in self.down and f"ISLA{isl}" not in self.down else "B"
            with disk.request() as req:
                yield req
                yield self.env.timeout(CHUNK / disk_rate)
            for hop in (f"ARR{arr}-{f}", f"ISL{f}{isl}", f"DM{m}-{f}>", f"DM{m}", f"DM{m}-{f}<",
                        f"DRV{d:02d}-{f}", f"DRV{d:02d}"):
                with self.res[hop].request() as req:
                    yield req
                    yield self.env.timeout(CHUNK / self.hop_rate[hop])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--size-tib", type=float, default=1.0)
    ap.add_argument("--faults", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--slice-mib", type=int, default=32, help="MiB per job in the chunk-model slice")
    ap.add_argument("--extents", type=int, default=2000,
                    help="extents per volume (42439644: a fragmented 16 TiB volume, as bench_extents makes it)")
    args = ap.parse_args()
    spec = DualFabricSpec(clients=args.clients)
    size = int(args.size_tib * TiB)

    san, outcomes, faults, horizon, sim_wall, sim_cpu = run_flow_model(spec, size, args.faults, args.seed,
                                                                       args.extents)
    flow_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; before the chunk model
    by_path = Counter((o.path if o.ok else "failed") for o in outcomes)
    ideal_days = horizon / 86400
    print(f"flow model: {spec.clients} jobs x {args.size_tib:g} TiB, dual fabric, {spec.movers} movers, "
          f"{spec.drives} drives, {len(faults)} faults (seed {args.seed})")
    print(f"  outcomes: {dict(sorted(by_path.items()))}; fault kinds: "
          f"{dict(sorted(Counter(f.kind for f in faults).items()))}")
    print(f"  simulated time {san.env.now / 86400:.2f} days (drive-bound ideal {ideal_days:.2f} days)")
    print(f"  events processed {san.env.events_processed}, reallocations {san.net.reallocations}, "
          f"flows {san.timeline.flows_started}")
    print(f"  wall seconds {sim_wall:.3f} (CPU seconds {sim_cpu:.3f}; the machine may be shared); "
          f"{args.extents} extents per volume; peak RSS {flow_rss:.0f} MiB; load "
          + "/".join(f"{x:.2f}" for x in os.getloadavg()))

    slice_jobs = spec.drives  # steady-state concurrency of the full run
    slice_bytes = args.slice_mib * MiB
    scale = (spec.clients * size) / (slice_jobs * slice_bytes)
    chunk = ChunkModel(spec, Calibration(), faults, time_scale=slice_jobs * slice_bytes / (spec.clients * size))
    t0 = time.perf_counter()
    for c in range(slice_jobs):
        chunk.env.process(chunk.job(c, slice_bytes))
    chunk.env.run()
    chunk_wall = time.perf_counter() - t0
    chunk_scaled = chunk_wall * scale
    print(f"chunk model (64 KiB chunks), SLICE: {slice_jobs} concurrent jobs x {args.slice_mib} MiB = "
          f"1/{scale:,.0f} of the workload")
    print(f"  slice: events processed {chunk.env.events_processed}, wall seconds {chunk_wall:.3f}")
    print(f"  SCALED x{scale:,.0f} to the full workload: events ~{chunk.env.events_processed * scale:.3g}, "
          f"wall seconds ~{chunk_scaled:,.0f} (extrapolated, not run)")
    print(f"sim_wall_seconds={sim_wall:.3f} speedup={chunk_scaled / sim_wall:.0f}")


if __name__ == "__main__":
    main()
