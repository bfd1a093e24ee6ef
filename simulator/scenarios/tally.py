"""A scenario's finished jobs as running totals, for runs too large to keep every job's record.

With ``detail: totals`` (or ``auto`` beyond ``load.AUTO_JOBS`` jobs) the runner
hands each job's outcome to a :class:`JobTally` when its step ends: the job's
expectations are checked there and then, the figures a summary, a sweep row
and the command line read are added up, the record goes to an optional sink
(one JSON line per job) -- and nothing of the job is kept.  Up to
:data:`KEPT_PROBLEMS` unmet expectations are kept word for word; beyond that
they are counted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.attribution import CATEGORIES

KEPT_PROBLEMS = 100


@dataclass
class JobTally:
    """Counts and sums over the jobs seen so far (the figures of :func:`sweep_task.row_of` and the CLI)."""

    sink: Callable[[dict], Any] | None = None
    jobs: int = 0
    completed: int = 0
    failovers: int = 0
    jobs_with_failover: int = 0
    first_failover: str = ""
    failover_s: float = 0.0
    waiting_s: float = 0.0
    bottleneck_s: dict[str, float] = field(default_factory=lambda: {c: 0.0 for c in CATEGORIES})
    timed_jobs: int = 0  # jobs with a bottleneck report
    backup_window_s: float = 0.0  # the latest end of a backup
    paths: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)  # the first KEPT_PROBLEMS unmet expectations
    problem_count: int = 0

    def add(self, job: Any, problems: list[str]) -> None:
        """One finished :class:`simulator.scenarios.expect.JobOutcome` and its unmet expectations."""
        r = job.report
        self.jobs += 1
        self.completed += bool(r.ok)
        moves = [f"{f.from_path}->{f.to_path}" for f in r.failovers]
        self.failovers += len(moves)
        self.jobs_with_failover += bool(moves)
        if moves and not self.first_failover:
            self.first_failover = moves[0]
        if r.path_used:
            self.paths.add(r.path_used)
        att = job.bottlenecks
        if att:
            self.timed_jobs += 1
            self.failover_s += att["failover_seconds"]
            self.waiting_s += att["waiting_seconds"]
            for c, s in att["bottleneck_seconds"].items():
                self.bottleneck_s[c] = self.bottleneck_s.get(c, 0.0) + s
            if job.kind == "backup":
                self.backup_window_s = max(self.backup_window_s, att["ended_s"])
        self.problem_count += len(problems)
        self.problems.extend(problems[:max(0, KEPT_PROBLEMS - len(self.problems))])
        if self.sink is not None:
            self.sink(job.as_dict())

    def shares(self) -> dict[str, float]:
        """Bottleneck seconds as shares of all jobs' flow time (:func:`simulator.attribution.shares_of`)."""
        whole = sum(self.bottleneck_s.values())
        return {c: s / whole for c, s in sorted(self.bottleneck_s.items()) if s} if whole > 0 else {}

    def summary(self) -> dict[str, Any]:
        """What a result file and the command line show instead of every job."""
        return {"jobs": self.jobs, "completed_jobs": self.completed, "failed_jobs": self.jobs - self.completed,
                "failovers": self.failovers, "jobs_with_failover": self.jobs_with_failover,
                "failover_path": self.first_failover, "failover_seconds": round(self.failover_s, 6),
                "waiting_seconds": round(self.waiting_s, 6), "backup_window_s": round(self.backup_window_s, 6),
                "bottleneck_share": {c: round(s, 4) for c, s in self.shares().items()},
                "paths": sorted(self.paths), "unmet_expectations": self.problem_count}

    def problem_lines(self) -> list[str]:
        more = self.problem_count - len(self.problems)
        return self.problems + ([f"... and {more} more unmet job expectations"] if more > 0 else [])
