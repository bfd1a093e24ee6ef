"""`serverfree paths`: can each volume go server-free, LAN-free or over the LAN -- and why not.

Exit status 0 only when every volume of the domain has a server-free path,
1 when some volume lacks one, 2 for bad input (the CLI's error handler).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("paths", help="verify server-free, LAN-free and LAN paths of every volume",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("topology", type=Path, help="topology file (YAML or JSON)")
    p.add_argument("--macro", type=Path, action="append", default=[],
                   help="TSM administrator macro (DEFINE DATAMOVER/PATH/DISK/...) merged into the topology")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--svg", type=Path, metavar="FILE", help="draw the fabric with the chosen paths to FILE")
    p.add_argument("--fail", action="append", default=[], metavar="COMPONENT",
                   help="treat COMPONENT (switch, ISL/link, port, mover, drive, ...) as down; repeatable")
    p.add_argument("--no-redundancy", action="store_true", help="skip disjoint-path and single-point analysis")
    p.set_defaults(func=run)


def print_problems(exc) -> None:  # type: ignore[no-untyped-def]
    """Every problem of a TopologyError on its own line, each with its file and line (not just the first)."""
    where = f"{exc.file}: " if exc.file else ""
    for problem in exc.problems:
        print(f"serverfree: error: {where}{problem.replace('Value error, ', '')}", file=sys.stderr)


def run(args) -> int:
    from topology.graph import SanState
    from topology.load import load_topology
    from topology.render_text import format_report
    from topology.verify import verify

    topo = load_topology(args.topology, check=not args.macro)
    if args.macro:
        from topology.errors import TopologyError
        from topology.tsm_macro import merge_macros

        try:
            topo = merge_macros(topo, args.macro,
                                fabric_file=f"{args.topology} + {' + '.join(map(str, args.macro))}")
        except TopologyError as exc:
            if len(exc.problems) <= 1:
                raise
            print_problems(exc)
            return 2
    from orchestrator.compose import domain_paths

    state = SanState.build(topo, set(args.fail))
    report = verify(topo, state=state, redundancy=not args.no_redundancy)
    composed = domain_paths(topo, args.fail)  # what a backup would be given: movers in order, destination pool
    if args.svg:
        from topology.svg import render_svg

        args.svg.write_text(render_svg(state, report), encoding="utf-8")
        log.info("wrote %s", args.svg)
    if args.json:
        out = report.model_dump(mode="json")
        for v in out["volumes"]:
            c = composed[v["volume"]]
            v["movers"] = c.movers
            v["destination_pool"] = None if c.pool is None else {
                "name": c.pool.name, "kind": c.pool.kind, "devices": list(c.pool.devices)}
        print(json.dumps(out, indent=2))
    else:
        print(format_report(report))
        for vid, c in composed.items():
            pool = "none" if c.pool is None else f"{c.pool.name} ({c.pool.kind}: {', '.join(c.pool.devices) or '-'})"
            print(f"{vid}  data movers in order: {', '.join(c.movers) or 'none'}; destination pool {pool}")
    return 0 if report.all_server_free else 1
