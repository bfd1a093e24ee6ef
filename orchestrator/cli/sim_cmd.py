"""`serverfree sim run SCENARIO`: run backups on the simulated SAN, print the outcome, draw plots."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("sim", help="hardware-free simulation of server-free backups (simpy)")
    sim_sub = p.add_subparsers(dest="sim_command", metavar="SIMCOMMAND")
    sim_sub.required = True
    r = sim_sub.add_parser("run", help="run a scenario file (topology + backups + faults)")
    r.add_argument("scenario", help="scenario YAML file")
    r.add_argument("--plot", metavar="FILE", help="write throughput per path over time (.png/.svg/.pdf)")
    r.add_argument("--gantt", metavar="FILE", help="write a job Gantt chart")
    r.add_argument("--timeline", metavar="FILE", help="write the event and rate timeline as JSON")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.set_defaults(func=run)


def run_scenario(scen, base: Path = Path(".")):
    """The scenario's backups composed through the composition root and run on the simulated SAN."""
    from simulator.scenarios.backups import run_scenario as run_backups

    return run_backups(scen, base)


def run(args) -> int:
    from simulator.attribution import describe
    from simulator.plots import plot_gantt, plot_throughput
    from simulator.scenarios.load import load_scenario

    scen, base = load_scenario(args.scenario)
    result = run_scenario(scen, base)
    summary = result.summary()
    if args.plot:
        plot_throughput(result.san.timeline, args.plot)
    if args.gantt:
        plot_gantt(result.san.timeline, args.gantt)
    if args.timeline:
        result.san.timeline.write_json(args.timeline)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"simulated {summary['simulated_seconds']:.1f} s, {summary['events']} events, "
              f"{len(summary['faults'])} faults, {summary['shoeshine_events']} shoe-shine warnings")
        for j in summary["jobs"]:
            moved = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in j["bytes_by_path"].items())
            print(f"  {j['job']}: {j['outcome']} via {j['path'] or '-'} ({moved})")
            print(f"    {describe(j['bottlenecks'])}")
            for reason in j["failovers"]:
                print(f"    failover: {reason}")
            if j["message"]:
                print(f"    {j['message']}")
        print("  CPU seconds: " + ", ".join(f"{h} {s:g}" for h, s in summary["cpu_seconds"].items()))
    return 0 if all(j["outcome"] == "completed" for j in summary["jobs"]) else 1
