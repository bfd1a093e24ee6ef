"""Benchmark: several backups at once through one `serverfree datamover serve`, each from its own initiator.

A private tgtd on 127.0.0.1 serves one source and one destination LUN per
job; one mover process lists them all in its ``remote:`` section.  Each job
is a backup client of its own (its own initiator IQN, its own I_T nexus to
the mover's LUN 0) that sends one EXTENDED COPY of its source to its
destination and polls COPY STATUS until it ends; all start together.
Destinations are verified.  It prints each job's throughput, the aggregate
(all bytes over the time from the first start to the last end), how evenly
the mover shared itself (slowest / fastest job, Jain's fairness index), the
mover's CPU seconds per GiB and the load average.  For reference it also
runs the jobs one after the other through the same mover.

The LAST line is ``aggregate_mib_s=X per_job_min_over_max=Y jain_index=Z``
(fair sharing: Y close to 1, Z close to 1).

    .venv/bin/python benchmarks/bench_datamover_concurrent.py [--jobs 4] [--size 256M] [--sessions 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_datamover import (clear, digest, fill, loadavg, mover_copy, parse_size, process_cpu,  # noqa: E402
                             start_mover, stop)
from tests.fixtures.tgtd import Tgtd, tgtd_missing_reason  # noqa: E402

MIB = 1 << 20


def jain(rates: list[float]) -> float:
    """Jain's fairness index: 1 when all are equal, 1/n when one job gets everything."""
    return sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates)) if rates else 0.0


def run_jobs(mover_url: str, target, jobs: int, size: int, poll: float, together: bool) -> list[tuple[float, float]]:
    """(start, end) monotonic times per job, all started together or one after the other."""
    spans: list[tuple[float, float] | None] = [None] * jobs
    errors: list[BaseException] = []
    gate = threading.Barrier(jobs) if together else None

    def job(i: int) -> None:
        try:
            if gate is not None:
                gate.wait()
            t0 = time.monotonic()
            mover_copy(mover_url, target.url(1 + 2 * i), target.url(2 + 2 * i), size, poll,
                       initiator=f"iqn.2026-11.org.serverfree:bench-client{i}", quiet=True)
            spans[i] = (t0, time.monotonic())
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
    if together:
        threads = [threading.Thread(target=job, args=(i,)) for i in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(jobs):
            job(i)
    if errors:
        raise SystemExit(f"a backup failed: {errors[0]}")
    return [s for s in spans if s is not None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4, help="concurrent backups (default 4)")
    ap.add_argument("--size", default="256M", help="bytes each backup copies (default 256M)")
    ap.add_argument("--sessions", type=int, default=2, help="iSCSI sessions per remote LUN for the mover")
    ap.add_argument("--depth", type=int, default=16, help="most chunks in flight per copy")
    ap.add_argument("--chunk", default="1M", help="bytes per read/write request")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between COPY STATUS polls (each job's end is seen within one)")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.jobs > 8:
        raise SystemExit(f"--jobs must be 1..8 (the mover allows 8 concurrent copies per nexus), not {args.jobs}")
    try:
        size = parse_size(args.size)
    except ValueError:
        raise SystemExit(f"--size: cannot read {args.size!r} (e.g. 256M)") from None
    reason = tgtd_missing_reason()
    if reason:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as tmp, Tgtd(Path(tmp)) as tgtd:
        luns = {n: size for n in range(1, 2 * args.jobs + 1)}
        target = tgtd.new_target("concurrent", luns)
        wants = []
        for i in range(args.jobs):
            fill(target.luns[1 + 2 * i], size)
            wants.append(digest(target.luns[1 + 2 * i], size))
        remotes = {f"disk{n}": target.url(n) for n in luns}
        load_before = loadavg()
        proc, mover_url, _ = start_mover(Path(tmp), remotes, args.sessions, args.depth, parse_size(args.chunk))
        try:
            cpu0 = process_cpu(proc.pid)
            spans = run_jobs(mover_url, target, args.jobs, size, args.poll, together=True)
            cpu = process_cpu(proc.pid) - cpu0
            for i in range(args.jobs):
                if digest(target.luns[2 + 2 * i], size) != wants[i]:
                    raise SystemExit(f"job {i}: destination is not byte-identical")
                clear(target.luns[2 + 2 * i], size)
            serial = run_jobs(mover_url, target, args.jobs, size, args.poll, together=False)
        finally:
            stop(proc)
        load_after = loadavg()
    rates = [size / MIB / (end - start) for start, end in spans]
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    aggregate = args.jobs * size / MIB / wall
    serial_wall = sum(e - s for s, e in serial)
    print(f"jobs={args.jobs} size_mib={size / MIB:.0f} each, sessions={args.sessions} depth={args.depth} "
          f"chunk={args.chunk} loadavg_before={load_before:.2f} loadavg_after={load_after:.2f} "
          f"cores={os.cpu_count()}")
    for i, ((start, end), rate) in enumerate(zip(spans, rates)):
        print(f"  job {i}: {rate:.1f} MiB/s ({end - start:.2f} s, started +{start - min(s for s, _ in spans):.2f} s)")
    print(f"mover_cpu_s_per_gib={cpu / (args.jobs * size / (1 << 30)):.2f} (concurrent run)")
    print(f"one after the other: {args.jobs * size / MIB / serial_wall:.1f} MiB/s aggregate ({serial_wall:.2f} s); "
          f"together: {wall:.2f} s")
    print(f"aggregate_mib_s={aggregate:.1f} per_job_min_over_max={min(rates) / max(rates):.2f} "
          f"jain_index={jain(rates):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
