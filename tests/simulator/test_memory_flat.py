"""A capacity run keeps nothing per finished job: memory per job stays flat as jobs grow (issue 17, item 4).

tracemalloc measures what a run of fluid 16 TiB backups leaves behind over
the world it ran on (clients, disks, links: one per job here), with running
totals only (``detail=False``) at 200 and 2,000 jobs: the 1,800 more jobs may
add only a few bytes each (a run's fixed costs -- buffers, the route cache --
are the same at both counts).  The same run with per-job detail keeps
kilobytes per job, which shows the measurement sees such records.  The totals
kept instead must be the sums of the per-job reports.
"""
from __future__ import annotations

import gc
import logging
import tracemalloc

import pytest

from simulator.attribution import shares_of
from simulator.calibration import Calibration
from simulator.faults import FaultInjector, random_faults
from simulator.outcome_stats import OutcomeStats
from simulator.synthetic import DrivePool, image_backup
from simulator.worlds import DualFabricSpec, dual_fabric

TiB = 1 << 40
BOUND = 64  # bytes each further finished job may leave behind (running totals only)


def run(n: int, *, detail: bool, traced: bool = True):
    """(bytes the run retains over its world, outcome stats, SAN, outcomes kept by the caller in detail mode)."""
    spec = DualFabricSpec(clients=n, drives=8, movers=4)
    san = dual_fabric(spec, Calibration(tape_mount_s=30.0), detail=detail)
    san.route_cache_pairs = 64  # a small route cache, so 200 jobs already fill it
    drives, movers = sorted(san.dev.drives), sorted(san.dev.movers)
    names = [f"J{c:05d}" for c in range(n)]
    FaultInjector(san, random_faults(3, 12, san, horizon_s=n * 16 * TiB / (8 * 120e6), jobs=names,
                                     duration_range=(0.001, 0.01))).arm()
    pool = DrivePool(san, drives)
    stats = OutcomeStats()
    kept: list = []
    gc.collect()
    base = tracemalloc.get_traced_memory()[0] if traced else 0
    def start(c: int, drive: str | None = None):
        return san.env.process(image_backup(san, names[c], f"ARR{c % spec.arrays}:{c // spec.arrays}", 16 * TiB,
                                            pool, movers, extents=42_439_644, sink=stats, drive=drive, queued_s=0))

    if detail:  # a process per job from the start, each kept with its outcome (as bench_simulator does)
        kept = [start(c) for c in range(n)]
    else:  # jobs waiting for a drive are one entry of its queue
        pool.admit_many(n, start)
    san.run()
    gc.collect()
    retained = (tracemalloc.get_traced_memory()[0] - base) if traced else 0
    return retained, stats, san, [p.value for p in kept]


@pytest.fixture
def traced():
    logging.disable(logging.WARNING)  # shoe-shine warnings, one per drive and job
    run(20, detail=False)  # imports and first-use caches before anything is measured
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)


def test_memory_per_job_stays_flat_as_jobs_grow(traced):
    small, s_small, san_small, _ = run(200, detail=False)
    large, s_large, san_large, _ = run(2000, detail=False)
    assert s_small.jobs == 200 and s_large.jobs == 2000
    assert san_large.attribution.totals.jobs == 2000 and not san_large.attribution.jobs
    assert not san_large.jobs and not san_large.timeline.flows and not san_large.timeline.events
    assert san_large.timeline.count("job-end") == 2000
    grows = (large - small) / 1800
    assert grows < BOUND, (f"each job leaves {grows:.0f} B behind (retained {small / 200:.0f} B per job at 200 jobs, "
                           f"{large / 2000:.0f} B at 2,000; bound {BOUND} B)")


def test_detail_mode_keeps_per_job_records_the_bound_would_catch(traced):
    small, _, _, _ = run(200, detail=True)
    large, _, san, outcomes = run(600, detail=True)
    assert len(san.timeline.flows) >= 600 and len(san.attribution.jobs) == 600 and len(outcomes) == 600
    grows = (large - small) / 400
    assert grows > 16 * BOUND, f"detail mode keeps only {grows:.0f} B per job: the bound proves nothing"


def test_running_totals_are_the_sums_of_the_per_job_records():
    logging.disable(logging.WARNING)
    try:
        _, stats, summary, _ = run(300, detail=False, traced=False)
        _, _, detail, outcomes = run(300, detail=True, traced=False)
    finally:
        logging.disable(logging.NOTSET)
    reports = [detail.attribution.report(o.job, o.start, o.end) for o in outcomes]
    totals = summary.attribution.totals
    assert totals.jobs == len(reports) == 300
    assert totals.failover_s == pytest.approx(sum(r["failover_seconds"] for r in reports), rel=1e-9)
    assert totals.waiting_s == pytest.approx(sum(r["waiting_seconds"] for r in reports), rel=1e-9)
    assert totals.shares() == pytest.approx(shares_of(reports), rel=1e-9)
    assert stats.ok == sum(o.ok for o in outcomes) and stats.failures == sum(len(o.failures) for o in outcomes)
    assert stats.by_path == {p: sum(1 for o in outcomes if (o.path if o.ok else "failed") == p)
                             for p in stats.by_path}
    assert summary.timeline.counts == {k: len(detail.timeline.events_of(k))
                                       for k in {e.kind for e in detail.timeline.events}}
    assert summary.env.now == detail.env.now


def test_jobs_admitted_on_a_drive_end_as_jobs_started_at_once():
    """DrivePool.admit (a waiting job is one event) and admit_many (all waiting jobs are one entry) give
    the outcomes, in order, at the same times, with the same events, of a process per job."""
    def outcomes(admit: str) -> tuple[list, float, int]:
        spec = DualFabricSpec(clients=150, drives=4, movers=2)
        san = dual_fabric(spec, Calibration(tape_mount_s=30.0), detail=False)
        names = [f"J{c:03d}" for c in range(150)]
        FaultInjector(san, random_faults(5, 150, san, horizon_s=150 * (64 << 30) / (4 * 120e6), jobs=names,
                                         duration_range=(1.0, 60.0))).arm()
        pool, movers, seen = DrivePool(san, sorted(san.dev.drives)), sorted(san.dev.movers), []
        def start(c: int, drive: str, t: float = san.env.now) -> None:
            san.env.process(image_backup(san, names[c], f"ARR{c % spec.arrays}:{c // spec.arrays}", 64 << 30, pool,
                                         movers, sink=seen.append, drive=drive, queued_s=t))

        if admit == "many":
            pool.admit_many(150, start)
        for c in range(150 if admit != "many" else 0):
            if admit == "one by one":
                pool.admit(lambda drive, c=c: start(c, drive))
            else:
                san.env.process(image_backup(san, names[c], f"ARR{c % spec.arrays}:{c // spec.arrays}", 64 << 30,
                                             pool, movers, sink=seen.append))
        san.run()
        return seen, san.env.now, san.env.events_processed

    logging.disable(logging.WARNING)
    try:
        started, one_by_one, many = outcomes("processes"), outcomes("one by one"), outcomes("many")
    finally:
        logging.disable(logging.NOTSET)
    assert len(started[0]) == 150 and {o.path for o in started[0]} > {"server-free"}  # faults made failovers
    assert one_by_one == started and many == started
