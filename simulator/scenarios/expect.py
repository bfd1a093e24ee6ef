"""Checking a scenario run against its expectations, and JUnit XML for CI.

Every unmet expectation becomes one line naming the scenario, the job, what
was expected and what happened, so a red CI run says why without a rerun.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from simulator.scenarios.volumes import ScenarioVolume
from orchestrator.job import JobReport
from simulator.san import SimSAN
from simulator.scenarios.load import Bounds, CiScenario, JobExpect
from simulator.scenarios.tally import JobTally


@dataclass
class JobOutcome:
    """One job of a scenario: its step, its report and (restores) the byte comparison."""

    index: int  # step index in the scenario
    copy: int  # 0 .. count-1
    kind: str  # backup | restore
    name: str
    report: JobReport
    byte_identical: bool | None = None
    compare_note: str = ""
    started_s: float = 0.0  # simulated time the job's step started and its phase ended
    ended_s: float = 0.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # host -> CPU used during the phase
    bottlenecks: dict = field(default_factory=dict)  # simulator.attribution: what held the job back

    def as_dict(self) -> dict:
        d = self.report.as_dict()
        d.update(step=self.index, copy=self.copy, job=self.name, byte_identical=self.byte_identical,
                 compare=self.compare_note, started_s=round(self.started_s, 3), ended_s=round(self.ended_s, 3),
                 phase_cpu_seconds=self.cpu_seconds, bottlenecks=self.bottlenecks)
        return d


@dataclass
class ScenarioRun:
    scenario: CiScenario
    san: SimSAN
    jobs: list[JobOutcome] = field(default_factory=list)
    volumes: dict[str, ScenarioVolume] = field(default_factory=dict)
    tally: JobTally | None = None  # detail totals: the jobs' running totals (jobs stays empty)

    def summary(self) -> dict:
        cpu = {h: round(self.san.net.work_done(host.cpu), 4) for h, host in self.san.dev.hosts.items()}
        t = self.tally
        completed = t.completed if t else sum(1 for j in self.jobs if j.report.ok)
        return {"simulated_seconds": round(self.san.env.now, 3), "cpu_seconds": cpu,
                "shoeshine_events": self.san.timeline.count("shoeshine"),
                "completed_jobs": completed, "jobs": t.jobs if t else len(self.jobs)}


@dataclass
class ScenarioResult:
    """A scenario's verdict: failures (unmet expectations or an error) and its summary."""

    name: str
    file: str
    failures: list[str] = field(default_factory=list)
    error: str = ""  # the scenario could not run at all
    summary: dict = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0
    totals: dict = field(default_factory=dict)  # detail totals: the jobs' running totals (jobs stays empty)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.error

    def as_dict(self) -> dict:
        out = {"name": self.name, "file": self.file, "ok": self.ok, "failures": self.failures,
               "error": self.error, "summary": self.summary, "jobs": self.jobs,
               "wall_seconds": round(self.wall_seconds, 3)}
        if self.totals:
            out["job_totals"] = self.totals
        return out


def _bounds(what: str, value: float, b: Bounds | None) -> list[str]:
    if b is None:
        return []
    out = []
    if b.min is not None and value < b.min:
        out.append(f"{what}: expected at least {b.min:g}, got {value:g}")
    if b.max is not None and value > b.max:
        out.append(f"{what}: expected at most {b.max:g}, got {value:g}")
    return out


def _contains_all(what: str, wanted: list[str], got: list[str]) -> list[str]:
    missing = [w for w in wanted if not any(w.lower() in g.lower() for g in got)]
    return [f"{what}: expected one mentioning {w!r}, got {got or 'none'}" for w in missing]


def check_job(job: JobOutcome, e: JobExpect) -> list[str]:
    """Unmet expectations of one job, each a short sentence."""
    r = job.report
    out: list[str] = []
    failovers = [f"{f.from_path}->{f.to_path}" for f in r.failovers]
    if e.outcome is not None and r.outcome != e.outcome:
        out.append(f"outcome: expected {e.outcome}, got {r.outcome}" + (f" ({r.message})" if r.message else ""))
    if e.path is not None and r.path_used != e.path:
        out.append(f"path: expected {e.path}, got {r.path_used or 'none'}")
    if e.start_path is not None and r.start_path != e.start_path:
        out.append(f"start path: expected {e.start_path}, got {r.start_path}")
    if e.failovers is not None and failovers != e.failovers:
        out.append(f"failovers: expected {e.failovers or 'none'}, got {failovers or 'none'}"
                   + (f" ({'; '.join(f.reason for f in r.failovers)})" if r.failovers else ""))
    if e.failover_reasons is not None:
        reasons = [f.reason for f in r.failovers]
        for i, want in enumerate(e.failover_reasons):
            if i >= len(reasons):
                out.append(f"failover {i + 1} reason: expected one mentioning {want!r}, but there were only "
                           f"{len(reasons)} failovers")
            elif want.lower() not in reasons[i].lower():
                out.append(f"failover {i + 1} reason: expected one mentioning {want!r}, got {reasons[i]!r}")
    if e.not_server_free is not None:
        out += _contains_all("reason not server-free", e.not_server_free, r.reasons)
        if not e.not_server_free and r.reasons:
            out.append(f"reason not server-free: expected none, got {r.reasons}")
    if e.movers_used is not None and r.movers_used != e.movers_used:
        out.append(f"movers used: expected {e.movers_used}, got {r.movers_used}")
    if e.compressed is not None and r.compressed != e.compressed:
        out.append(f"compressed: expected {e.compressed}, got {r.compressed}")
    if e.warnings is not None:
        out += _contains_all("warnings", e.warnings, r.warnings)
    if e.message is not None and e.message.lower() not in r.message.lower():
        out.append(f"message: expected one mentioning {e.message!r}, got {r.message!r}")
    if e.byte_identical is not None and job.byte_identical != e.byte_identical:
        out.append(f"byte-identical restore: expected {e.byte_identical}, got {job.byte_identical} "
                   f"({job.compare_note or 'not compared: not a restore'})")
    if e.bytes_by_path is not None:
        got = {k: v for k, v in r.bytes_by_path.items() if v}
        if got != {k: v for k, v in e.bytes_by_path.items() if v}:
            out.append(f"bytes by path: expected {e.bytes_by_path}, got {got}")
    if e.min_bytes is not None:
        for p, n in e.min_bytes.items():
            if r.bytes_by_path.get(p, 0) < n:
                out.append(f"bytes over {p}: expected at least {n}, got {r.bytes_by_path.get(p, 0)}")
    out += _bounds("simulated seconds", job.ended_s - job.started_s, e.duration_s)
    for host, b in e.cpu_seconds.items():
        if host not in job.cpu_seconds:
            out.append(f"CPU seconds of {host}: no such host (hosts: {', '.join(job.cpu_seconds)})")
        else:
            out += _bounds(f"CPU seconds of {host}", job.cpu_seconds[host], b)
    return out


def job_problems(scenario: CiScenario, job: JobOutcome) -> list[str]:
    """A job's unmet expectations, each naming the job: ``job 2 'C1:H:' (restore): ...``."""
    return [f"job {job.index + 1} {job.name!r} ({job.kind}): {problem}"
            for problem in check_job(job, scenario.jobs[job.index].expect)]


def check_run(run: ScenarioRun) -> list[str]:
    """Every unmet expectation of a run: per job (``job 2 'C1:H:' (restore): ...``), then scenario-wide."""
    out: list[str] = run.tally.problem_lines() if run.tally else []
    for job in run.jobs:
        out += job_problems(run.scenario, job)
    s = run.summary()
    e = run.scenario.expect
    out += _bounds("simulated seconds", s["simulated_seconds"], e.simulated_seconds)
    out += _bounds("shoe-shine events", s["shoeshine_events"], e.shoeshine_events)
    out += _bounds("completed jobs", s["completed_jobs"], e.completed_jobs)
    for host, b in e.cpu_seconds.items():
        if host not in s["cpu_seconds"]:
            out.append(f"CPU seconds of {host}: no such host in the simulated SAN "
                       f"(hosts: {', '.join(s['cpu_seconds'])})")
            continue
        out += _bounds(f"CPU seconds of {host}", s["cpu_seconds"][host], b)
    return out


def write_junit(results: list[ScenarioResult], path: str | Path) -> None:
    """One testcase per scenario; unmet expectations as a failure, a scenario that could not run as an error."""
    suite = ET.Element("testsuite", name="serverfree-scenarios", tests=str(len(results)),
                       failures=str(sum(1 for r in results if r.failures and not r.error)),
                       errors=str(sum(1 for r in results if r.error)),
                       time=f"{sum(r.wall_seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="scenarios", name=r.name, file=r.file,
                             time=f"{r.wall_seconds:.3f}")
        if r.error:
            ET.SubElement(case, "error", message=r.error).text = r.error
        elif r.failures:
            ET.SubElement(case, "failure", message=r.failures[0]).text = "\n".join(r.failures)
        out = ", ".join(f"{k}={v}" for k, v in r.summary.items() if k != "cpu_seconds")
        ET.SubElement(case, "system-out").text = out
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
