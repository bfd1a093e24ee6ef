"""A step of many concurrent backups to a tape pool: jobs waiting for a drive are made when they get one.

The capacity scenario's copies share two drives, so all but two wait.  Made
at the start, each waiting job held its spec, extents and generator (about
20 KB); queued as one entry of the drive pool, a job exists only from the
moment it has a drive.  The outcomes, their order, the simulated times and
every job's record are those of making them all at the start.
"""
from __future__ import annotations

import gc
import logging
import tracemalloc

import pytest

from simulator.scenarios.run import ScenarioRunner
from tests.scenarios.test_detail_totals import CAPACITY, capacity


def run(scen, lazy: bool):
    runner = ScenarioRunner(scen, CAPACITY.parent, source="test")
    runner.lazy = lazy
    try:
        return runner.execute()
    finally:
        runner.close()


@pytest.mark.parametrize("random_faults", [0, 8])
def test_jobs_made_on_their_drive_end_as_jobs_made_at_once(random_faults):
    logging.disable(logging.WARNING)
    try:
        runs = []
        for lazy in (False, True):
            scen = capacity(80, "jobs", steps=2)
            scen.random_faults = random_faults
            runs.append(run(scen, lazy))
    finally:
        logging.disable(logging.NOTSET)
    eager, lazy_run = runs
    assert len(lazy_run.jobs) == 160 and lazy_run.summary() == eager.summary()
    assert [j.as_dict() for j in lazy_run.jobs] == [j.as_dict() for j in eager.jobs]
    assert lazy_run.san.env.now == eager.san.env.now


def peak(count: int, lazy: bool) -> int:
    runner = ScenarioRunner(capacity(count, "totals"), CAPACITY.parent, source="test")
    runner.lazy = lazy
    try:
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        assert runner.execute().tally.jobs == count
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        runner.close()


def test_a_step_of_many_jobs_waiting_for_drives_holds_little_per_job():
    """400 concurrent backups on 2 drives: made at the start, the step peaked at 7.8 MiB (tracemalloc, ~20 KB
    a job); made on their drive, 1.1 MiB (what stays per job is its report until the step ends)."""
    logging.disable(logging.WARNING)
    tracemalloc.start()
    try:
        peak(20, True)  # imports and first-use caches
        got = peak(400, True)
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    assert got < 3 << 20, got
