"""One sweep task, as a Dask worker runs it: a batch of runs of one scenario, one row each.

A task carries many runs because the distributed scheduler costs about a
millisecond per task and stalls on very many tiny ones; the batch is the unit
that is saved, so an interrupted sweep loses at most the batches in flight.
A run that crashes gives a row with its error; the batch goes on.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simulator.attribution import CATEGORIES
from simulator.scenarios.expect import ScenarioRun, check_run
from simulator.scenarios.run import run_ci_scenario
from simulator.scenarios.sweep_spec import Run, scenario_for

# Columns every row has, in order (the varied keys come after ``seed``).
FIXED = ("run", "seed")
MEASURES = ("ok", "error", "failures", "first_failure", "simulated_seconds", "backup_window_s", "jobs",
            "completed_jobs", "failed_jobs", "failovers", "jobs_with_failover", "failover_path",
            "failover_seconds", "waiting_seconds", *(f"bottleneck_{c}_s" for c in CATEGORIES),
            "main_bottleneck", "paths", "wall_seconds")


def vary_column(key: str) -> str:
    """The column of a varied key: ``vary:faults.0.at_percent``."""
    return f"vary:{key}"


def empty_row(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {"run": run.run, "seed": run.seed}
    row.update({vary_column(k): v for k, v in run.values})
    row.update({m: None for m in MEASURES})
    return row


def row_of(run: Run, result: ScenarioRun, wall: float) -> dict[str, Any]:
    """Flatten one run: outcome, backup window, failovers and bottleneck seconds summed over its jobs."""
    row = empty_row(run)
    problems = check_run(result)
    if result.tally is not None:  # a run that kept totals only
        return _row_of_totals(row, result, problems, wall)
    jobs = result.jobs
    backups = [j for j in jobs if j.kind == "backup"]
    atts = [j.bottlenecks for j in jobs if j.bottlenecks]
    spans = [j.bottlenecks["ended_s"] for j in backups if j.bottlenecks]
    moves = [f"{f.from_path}->{f.to_path}" for j in jobs for f in j.report.failovers]
    seconds = {c: sum(a["bottleneck_seconds"].get(c, 0.0) for a in atts) for c in CATEGORIES}
    row.update(ok=not problems, error="", failures=len(problems), first_failure=problems[0] if problems else "",
               simulated_seconds=round(result.san.env.now, 6),
               backup_window_s=round(max(spans), 6) if spans else 0.0,
               jobs=len(jobs), completed_jobs=sum(1 for j in jobs if j.report.ok),
               failed_jobs=sum(1 for j in jobs if not j.report.ok), failovers=len(moves),
               jobs_with_failover=sum(1 for j in jobs if j.report.failovers),
               failover_path=moves[0] if moves else "",
               failover_seconds=round(sum(a["failover_seconds"] for a in atts), 6),
               waiting_seconds=round(sum(a["waiting_seconds"] for a in atts), 6),
               main_bottleneck=max(seconds, key=seconds.__getitem__) if any(seconds.values()) else "",
               paths="+".join(sorted({j.report.path_used for j in jobs if j.report.path_used})),
               wall_seconds=round(wall, 4))
    row.update({f"bottleneck_{c}_s": round(s, 6) for c, s in seconds.items()})
    return row


def _row_of_totals(row: dict[str, Any], result: ScenarioRun, problems: list[str], wall: float) -> dict[str, Any]:
    t = result.tally
    assert t is not None
    seconds = {c: t.bottleneck_s.get(c, 0.0) for c in CATEGORIES}
    failures = len(problems) - len(t.problem_lines()) + t.problem_count  # the job lines kept are a sample
    row.update(ok=not problems, error="", failures=failures, first_failure=problems[0] if problems else "",
               simulated_seconds=round(result.san.env.now, 6), backup_window_s=round(t.backup_window_s, 6),
               jobs=t.jobs, completed_jobs=t.completed, failed_jobs=t.jobs - t.completed, failovers=t.failovers,
               jobs_with_failover=t.jobs_with_failover, failover_path=t.first_failover,
               failover_seconds=round(t.failover_s, 6), waiting_seconds=round(t.waiting_s, 6),
               main_bottleneck=max(seconds, key=seconds.__getitem__) if any(seconds.values()) else "",
               paths="+".join(sorted(t.paths)), wall_seconds=round(wall, 4))
    row.update({f"bottleneck_{c}_s": round(s, 6) for c, s in seconds.items()})
    return row


def run_batch(base: dict[str, Any], base_dir: str, source: str, runs: list[Run]) -> list[dict[str, Any]]:
    """Run each of ``runs`` (a Dask task); every run gives one row."""
    with _quiet("orchestrator", "scsi", "simulator"):  # failovers are the point here, not news
        return _run_batch(base, base_dir, source, runs)


@contextmanager
def _quiet(*names: str):
    """Loggers at ERROR for the batch, then as they were (a batch may run in the caller's process)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _run_batch(base: dict[str, Any], base_dir: str, source: str, runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        t0 = time.perf_counter()
        try:
            scen = scenario_for(base, run.values)
            result = run_ci_scenario(scen, Path(base_dir), seed=run.seed, source=f"{source} run {run.run}")
            rows.append(row_of(run, result, time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001 - one bad combination must not end the sweep
            row = empty_row(run)
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}", failures=0,
                       wall_seconds=round(time.perf_counter() - t0, 4))
            rows.append(row)
    return rows
