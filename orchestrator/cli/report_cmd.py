"""`serverfree report RESULT -o report.html`: a sweep's result as one self-contained HTML page."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("report", help="write a sweep result (Parquet or CSV) as one self-contained HTML page",
                       description="Backup-window distribution, failover rate by fault point, bottleneck shares "
                                   "and the site's topology (zones, LUNs, pools) of a `scenario sweep` result.")
    p.add_argument("result", type=Path, metavar="RESULT", help="the -o file of `serverfree scenario sweep`")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="HTML", help="the page to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.scenarios.report import write_report

    n = write_report(args.result, args.output)
    print(f"{n} runs -> {args.output}")
    return 0
