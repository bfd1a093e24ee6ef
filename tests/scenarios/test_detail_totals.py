"""Scenarios that keep running totals only (``detail: totals``): same verdicts and figures, flat memory.

The capacity scenario (60 concurrent server-free backups with a port failure)
runs once keeping every job's record and once keeping totals: the summary, the
unmet expectations, the sweep row and each job's record (streamed to a sink
instead of kept) must agree.  Then tracemalloc checks that each further job
of a totals run (more steps of 30 concurrent jobs) leaves (almost) nothing
behind, where a run keeping records keeps kilobytes per job.
"""
from __future__ import annotations

import gc
import logging
import tracemalloc
from pathlib import Path

from simulator.scenarios.expect import check_run
from simulator.scenarios.load import Bounds, load_ci_scenario
from simulator.scenarios.run import ScenarioRunner, run_ci_scenario
from simulator.scenarios.sweep_spec import Run
from simulator.scenarios.sweep_task import row_of

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CAPACITY = SCENARIOS / "capacity-many-jobs.yaml"


def capacity(count: int, detail: str, *, steps: int = 1):
    """The capacity scenario with ``count`` concurrent backups per step, ``steps`` steps one after another."""
    scen = load_ci_scenario(CAPACITY)
    scen.jobs[0].count, scen.detail = count, detail
    scen.jobs += [scen.jobs[0].model_copy() for _ in range(steps - 1)]
    return scen


def test_totals_give_the_verdicts_figures_and_records_of_kept_jobs():
    jobs_scen, totals_scen = capacity(60, "jobs"), capacity(60, "totals")
    for scen in (jobs_scen, totals_scen):  # every job misses this: each one must be named
        scen.jobs[0].expect.duration_s = Bounds(max=100.0)
    kept = run_ci_scenario(jobs_scen, CAPACITY.parent)
    records: list[dict] = []
    totals = run_ci_scenario(totals_scen, CAPACITY.parent, sink=records.append)
    assert kept.tally is None and len(kept.jobs) == 60
    assert totals.jobs == [] and totals.tally is not None and totals.tally.jobs == 60
    assert not totals.san.timeline.flows and not totals.san.attribution.jobs and not totals.san.jobs
    assert totals.summary() == kept.summary()
    problems = check_run(kept)
    assert len(problems) == 60 and sorted(check_run(totals)) == sorted(problems)
    run = Run(0, 0, ())
    kept_row, totals_row = row_of(run, kept, 0.0), row_of(run, totals, 0.0)
    assert totals_row["jobs_with_failover"] > 0  # the port failure made failovers to compare
    assert totals_row == kept_row
    assert sorted(records, key=lambda r: r["job"]) == sorted((j.as_dict() for j in kept.jobs),
                                                             key=lambda r: r["job"])


def test_auto_keeps_records_up_to_a_thousand_jobs():
    assert capacity(1000, "auto").keeps_jobs and not capacity(1001, "auto").keeps_jobs
    assert capacity(5000, "jobs").keeps_jobs and not capacity(1, "totals").keeps_jobs


def retained(steps: int, detail: str) -> int:
    """Bytes a run of ``steps`` steps of 30 concurrent jobs keeps over its world (the same concurrency at
    any number of steps: only what finished jobs leave behind grows)."""
    runner = ScenarioRunner(capacity(30, detail, steps=steps), CAPACITY.parent, source="test")
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        runner.execute()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        runner.close()


def test_a_totals_run_keeps_nothing_per_finished_job():
    logging.disable(logging.WARNING)
    retained(1, "totals")  # imports and first-use caches before anything is measured
    tracemalloc.start()
    try:
        totals = (retained(5, "totals") - retained(2, "totals")) / 90
        kept = (retained(5, "jobs") - retained(2, "jobs")) / 90
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    assert totals < 400, f"a totals run keeps {totals:.0f} B per further job"  # the last steps vary by ~100 B/job
    assert kept > 2000, f"a run keeping records keeps only {kept:.0f} B per job: the bound proves nothing"
