"""`serverfree scenario sweep SCENARIO --vary KEY=SPEC ... [--seeds N] [--scheduler ADDR] -o RESULT`.

Thin: parse, call :func:`simulator.scenarios.sweep.sweep`, show progress on
stderr, print the outcome.  Exit status 0 when every run ran (unmet
expectations are data in a sweep: the ``ok`` column), 1 when some could not
(the ``error`` column), 2 for bad options or a bad scenario file.  Ctrl-C keeps the finished batches in
``RESULT.parts/``; the same command resumes from them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_sweep(what) -> None:  # type: ignore[no-untyped-def]
    w = what.add_parser(
        "sweep", help="run one scenario many times on Dask (varied values x seeds), one row per run",
        description="Every combination of the --vary values, each with --seeds seeds, batched into Dask tasks "
                    "on a LocalCluster (default) or the cluster at --scheduler; rows to Parquet or CSV. "
                    "Interrupted, the same command resumes.")
    w.add_argument("scenario", type=Path, metavar="SCENARIO", help="a CI scenario file")
    w.add_argument("--vary", action="append", default=[], metavar="KEY=SPEC",
                   help="a dotted key of the scenario and its values: one, a comma list, or LOW:HIGH:STEP "
                        "(e.g. faults.0.at_percent=0:100:10); repeat to combine")
    w.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds per combination (default 1)")
    w.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler (default: a "
                   "LocalCluster started for this sweep)")
    w.add_argument("--workers", type=int, default=2, metavar="N", help="LocalCluster worker processes (default 2)")
    w.add_argument("--batch", type=int, metavar="N", help="runs per Dask task (default: about 4 tasks per worker)")
    w.add_argument("-o", "--output", type=Path, required=True, metavar="RESULT", help="RESULT.parquet or .csv")
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.scenarios.sweep import SweepProgress, sweep
    from simulator.scenarios.sweep_spec import SweepSpecError, parse_vary

    if args.workers < 1 or (args.batch is not None and args.batch < 1):
        raise SweepSpecError("--workers and --batch must be at least 1")
    varies = [parse_vary(v) for v in args.vary]
    tty = sys.stderr.isatty()

    def show(p: SweepProgress) -> None:
        rate = (p.done - p.resumed) / p.elapsed_s if p.elapsed_s > 0 else 0.0
        line = (f"sweep: {p.done}/{p.total} runs ({p.done / p.total:.0%}), {p.not_ok} not ok, "
                f"{rate:.1f} runs/s" + (f", {p.resumed} resumed" if p.resumed else ""))
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    try:
        out = sweep(args.scenario, varies, args.output, seeds=args.seeds, scheduler=args.scheduler,
                    workers=args.workers, batch=args.batch, progress=show)
    except KeyboardInterrupt:
        parts = args.output.with_name(args.output.name + ".parts")
        print(f"\nserverfree: sweep interrupted; finished batches are kept in {parts}: run the same command "
              "again to resume", file=sys.stderr)
        return 130
    if tty:
        print(file=sys.stderr)
    print(f"{out.runs} runs ({out.resumed} resumed) in {out.tasks} tasks on {out.workers} workers, "
          f"{out.wall_s:.1f} s; {out.not_ok} not ok (expectations unmet), {out.errors} could not run; "
          f"rows in {out.path}")
    return 1 if out.errors else 0
