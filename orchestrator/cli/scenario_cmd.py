"""`serverfree scenario run PATHS... [--junit FILE] [--json] [--seed N]` and `serverfree scenario schema`.

Runs CI scenario files (``scenarios/*.yaml``; a directory means every
``*.yaml`` directly in it) through the real orchestrator on the simulated SAN
and checks their expectations.  Exit status: 0 every expectation met, 1 some
were not (each one named, with why), 2 a scenario file is bad (file, line and
path inside it); a bad file does not stop the others, and it is recorded as an
errored testcase in the JUnit file and the JSON.

A scenario file (``serverfree scenario schema`` prints the full JSON Schema)::

    topology: topologies/small.yaml        # a file relative to the scenario, or the topology inline
    mode: exact                            # fluid: timing flows; exact: the copy manager engine, real bytes
    options: {enableserverfree: yes, compression: yes, imagegapsize: 32k}   # dsm.opt values
    volumes:
      - {id: "CLIENT1:H:", size: 24MiB, filesystem: ntfs, used: 0.8, fragments: 6}   # or image: / sample_ntfs:
    faults:                                # simulator faults; at_s is simulated time
      - {kind: switch_port_down, target: SW1/3, at_s: 1.2}
    jobs:                                  # in order; concurrent: true joins the previous step
      - backup: "CLIENT1:H:"
        expect: {outcome: completed, path: server-free+lan-free, failovers: [server-free->lan-free],
                 failover_reasons: [COPY ABORTED], compressed: false}
      - restore: "CLIENT1:H:"
        expect: {byte_identical: true}
    expect: {simulated_seconds: {max: 60}, cpu_seconds: {CLIENT1: {max: 1}}, shoeshine_events: {max: 0}}

Runs that need bytes (exact mode, restores, incrementals, changes) keep their
volumes in memory (at most 512 MiB each); fluid runs without them only time
the jobs, so thousands of jobs on big volumes take seconds.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("scenario", help="run CI scenarios (topology + volumes + options + faults + expectations)")
    what = p.add_subparsers(dest="scenario_command", metavar="WHAT")
    what.required = True
    r = what.add_parser("run", help="run scenario files and check their expectations",
                        description="Run scenario files through the orchestrator on the simulated SAN; exit 1 "
                                    "naming every unmet expectation, 2 for a bad file.")
    r.add_argument("paths", nargs="+", metavar="PATH", help="scenario YAML files or directories of them")
    r.add_argument("--junit", metavar="FILE", help="write JUnit XML: one testcase per scenario")
    r.add_argument("--json", action="store_true", help="print the results as JSON")
    r.add_argument("--seed", type=_seed, help="override every scenario's seed (synthetic data, random faults)")
    r.add_argument("--job-records", metavar="FILE",
                   help="write every job's record as a JSON line (scenarios that keep totals only write them "
                        "as the jobs end)")
    r.set_defaults(func=run)
    s = what.add_parser("schema", help="print the JSON Schema of scenario files")
    s.set_defaults(func=schema)
    from orchestrator.cli.sweep_cmd import add_sweep

    add_sweep(what)


def scenario_files(paths: list[str]) -> list[Path]:
    """Files named, and the ``*.yaml`` files of directories named, in order; missing ones are an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.yaml"))
            if not found:
                raise FileNotFoundError(f"{p}: no *.yaml scenario files in this directory")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such scenario file")
    return out


def _seed(text: str) -> int:
    """--seed: a whole number >= 0 (argparse reports anything else against the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; seeds are 0 or more")
    return value


def run_file(path: Path, seed: int | None = None, progress=None, sink=None):  # type: ignore[no-untyped-def]
    """Load, run and check one scenario file; a bad file raises ValueError naming it.  ``sink`` takes each
    job's record as it ends when the run keeps totals only (``detail``)."""
    from simulator.scenarios.expect import ScenarioResult, check_run
    from simulator.scenarios.run import run_ci_scenario
    from simulator.scenarios.load import load_ci_scenario

    scen = load_ci_scenario(path)
    result = ScenarioResult(scen.name or path.stem, str(path))
    t0 = time.perf_counter()
    try:
        run = run_ci_scenario(scen, path.parent, seed=seed, source=str(path), progress=progress, sink=sink)
    except (ValueError, LookupError, OSError) as exc:  # bad references inside a valid file: the file's fault
        raise ValueError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from None
    except Exception as exc:  # a crash inside the system under test fails this scenario, not the run
        log.exception("scenario %s crashed", path)
        result.error = f"crashed: {type(exc).__name__}: {exc}"
        result.wall_seconds = time.perf_counter() - t0
        return result
    result.wall_seconds = time.perf_counter() - t0
    result.failures = check_run(run)
    result.summary = run.summary()
    result.jobs = [j.as_dict() for j in run.jobs]
    if run.tally is not None:
        result.totals = run.tally.summary()
    return result


def run(args: argparse.Namespace) -> int:
    """Run every file; a bad file is an errored testcase (JUnit and JSON), the others still run."""
    files = scenario_files(args.paths)
    try:
        records = open(args.job_records, "w", encoding="utf-8") if args.job_records else None
    except OSError as exc:
        raise OSError(f"--job-records {args.job_records}: {exc.strerror or exc}") from None

    def sink(record: dict) -> None:
        records.write(json.dumps(record, default=str) + "\n")  # type: ignore[union-attr]

    try:
        return _run_files(args, files, records and sink)
    finally:
        if records is not None:
            records.close()


def _run_files(args: argparse.Namespace, files: list[Path], sink) -> int:  # type: ignore[no-untyped-def]
    from simulator.attribution import describe, shares_of
    from simulator.scenarios.expect import ScenarioResult, write_junit

    results = []
    bad_results: list = []  # ScenarioResults of files that could not be loaded
    for path in files:
        try:
            res = run_file(path, args.seed, sink=sink)
        except (ValueError, LookupError, OSError) as exc:  # a bad file: record it, go on with the others
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            print(f"serverfree: error: {message}", file=sys.stderr)
            res = ScenarioResult(path.stem, str(path), error=f"bad scenario file: {message}")
            bad_results.append(res)
        results.append(res)
        if not args.json:
            s = res.summary
            head = "PASS" if res.ok else ("ERROR" if res.error else "FAIL")
            figures = (f"{s.get('simulated_seconds', 0):.1f} s simulated, {s.get('completed_jobs', 0)}/"
                       f"{s.get('jobs', 0)} jobs completed, {res.wall_seconds:.2f} s wall") if s else ""
            print(f"{head} {res.name} ({path}) {figures}")
            for line in ([res.error] if res.error else []) + res.failures:
                print(f"    {line}")
            if sink is not None:
                for job in res.jobs:
                    sink(job)
            timed = [j for j in res.jobs if j.get("bottlenecks")]
            if res.totals:  # a run that kept totals only
                t = res.totals
                print(f"    {t['jobs']} jobs: bottleneck " + ", ".join(
                    f"{c} {s:.0%}" for c, s in sorted(t["bottleneck_share"].items(), key=lambda kv: -kv[1])) +
                    f"; failover {t['failover_seconds']:.1f} s in all")
            elif len(timed) > 8:  # a capacity run: one line for all its jobs
                shares = shares_of(j["bottlenecks"] for j in timed)
                lost = sum(j["bottlenecks"]["failover_seconds"] for j in timed)
                print(f"    {len(timed)} jobs: bottleneck " + ", ".join(
                    f"{c} {s:.0%}" for c, s in sorted(shares.items(), key=lambda kv: -kv[1])) +
                    f"; failover {lost:.1f} s in all")
            else:
                for job in timed:
                    print(f"    {job['job']} ({job['kind']}): {describe(job['bottlenecks'])}")
    if args.junit:
        write_junit(results, args.junit)
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "scenarios": [r.as_dict() for r in results]}, indent=1, default=str))
    else:
        print(f"{len(results) - len(failed)} of {len(results)} scenarios passed")
    ran_but_failed = [r for r in failed if r not in bad_results]
    if ran_but_failed:
        print("serverfree: scenarios failed: " + "; ".join(
            f"{r.name}: {r.error or ' | '.join(r.failures)}" for r in ran_but_failed), file=sys.stderr)
    if bad_results:
        return 2
    return 1 if failed else 0


def schema(args: argparse.Namespace) -> int:
    from simulator.scenarios.load import CiScenario

    print(json.dumps(CiScenario.model_json_schema(), indent=1))
    return 0
