"""Finished jobs streamed out instead of kept: running statistics, and each record as a JSON line.

A capacity run of 10,000 jobs used to hold every job's outcome until the end;
:class:`OutcomeStats` is handed each outcome as its job ends, adds it to a few
counters and, when given a writer, writes it as one JSON line -- so what the
run keeps does not grow with the number of jobs, and the per-job detail is
still there (in the file) for whoever asks for it.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, is_dataclass
from typing import IO, Any


class OutcomeStats:
    """Counts, paths and durations of the jobs seen so far; ``writer``: also one JSON line per job."""

    def __init__(self, writer: IO[str] | None = None):
        self.writer = writer
        self.jobs = 0
        self.ok = 0
        self.by_path: Counter[str] = Counter()  # the path that finished, or "failed"
        self.attempts = 0
        self.failures = 0  # failed attempts (each one a failover or a retry)
        self.first_start = math.inf
        self.last_end = 0.0
        self.total_s = 0.0
        self.longest_s = 0.0

    def __call__(self, outcome: Any) -> None:
        self.add(outcome)

    def add(self, outcome: Any) -> None:
        """One finished job (a :class:`simulator.synthetic.BackupOutcome` or alike)."""
        self.jobs += 1
        self.ok += bool(outcome.ok)
        self.by_path[outcome.path if outcome.ok else "failed"] += 1
        self.attempts += outcome.attempts
        self.failures += len(outcome.failures)
        self.first_start = min(self.first_start, outcome.start)
        self.last_end = max(self.last_end, outcome.end)
        took = outcome.end - outcome.start
        self.total_s += took
        self.longest_s = max(self.longest_s, took)
        if self.writer is not None:
            record = asdict(outcome) if is_dataclass(outcome) else dict(vars(outcome))
            self.writer.write(json.dumps(record, default=str) + "\n")

    def summary(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "ok": self.ok, "by_path": dict(sorted(self.by_path.items())),
                "attempts": self.attempts, "failures": self.failures,
                "window_s": round(self.last_end - self.first_start, 3) if self.jobs else 0.0,
                "mean_s": round(self.total_s / self.jobs, 3) if self.jobs else 0.0,
                "longest_s": round(self.longest_s, 3)}
