"""Simulation scenarios: a topology, calibration, backups to run and faults to inject.

A scenario file (YAML) looks like::

    topology: ../topologies/dual-fabric.yaml   # relative to this file
    calibration: {tape_native_mb_s: 80, disk_positioning_ms: 8}
    seed: 7
    random_faults: 0            # extra faults drawn from the seed
    faults:
      - {kind: switch_port_down, target: SWA/2, at_s: 30, duration_s: 600}
      - {kind: tape_error, target: DRV2, at_percent: 50, job: "CLIENT1:H:"}
    backups:
      - {volume: "CLIENT1:H:", fragments: 200, used: 0.6}
    batch_mb: 80

:func:`setup_scenario` builds the SAN, arms the faults and makes a
:class:`simulator.driver.SimDriver` (timing only: no bytes; drives mounted
from a shared pool).  The command line (``serverfree sim run``) composes the
orchestrator's own ``backup_job`` for each backup and runs it there, so the
job's failover logic meets the faults; the simulator itself only knows the
orchestrator's operation and result types.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.calibration import Calibration
from simulator.driver import SimDriver, TimingBackend
from simulator.faults import FaultInjector, FaultSpec, random_faults
from simulator.from_topology import san_from_topology
from simulator.san import SimSAN
from simulator.synthetic import DrivePool
from topology.index import TopologyIndex
from topology.load import load_topology
from topology.model import Size, Topology, Volume

log = logging.getLogger(__name__)

BLOCK = 512


class BackupRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    volume: str = Field(description="CLIENT:MOUNT of a topology volume")
    fragments: int = Field(1, ge=1, description="used data split into this many extents (gaps between)")
    used: float = Field(1.0, gt=0, le=1, description="fraction of the volume in use")
    start_s: float = Field(0.0, ge=0)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topology: str
    calibration: Calibration = Field(default_factory=Calibration)
    seed: int = 0
    random_faults: int = Field(0, ge=0)
    faults: list[FaultSpec] = Field(default_factory=list)
    backups: list[BackupRun] = Field(min_length=1)
    batch_mb: int = Field(80, ge=10, le=1000)
    options: dict[str, str | int | float | bool] = Field(
        default_factory=lambda: {"enableserverfree": True, "enablelanfree": True, "imagetype": "static"},
        description="dsm.opt values (name: value) the backups are composed with")


def pydantic_message(err: dict) -> str:
    """A pydantic error's text without the "Value error, " prefix its wrapper adds to our own ValueErrors."""
    return str(err["msg"]).removeprefix("Value error, ")


def read_yaml(path: str | Path) -> tuple[dict, str]:
    """A scenario file's mapping and its text; a file that is not UTF-8 YAML mapping raises one line naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        raise ValueError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scenario must be a mapping at the top level")  # noqa: TRY004
    return data, text


def validate(model: type[BaseModel], data: dict, source: str | Path, text: str | None = None, *,
             error: type[ValueError] = ValueError) -> Any:
    """``model`` validated from ``data``; errors raise ``error`` as "SOURCE: field.path (line N): message".

    The one place the simulator turns a pydantic error into a line: no URL, no "Value error, " prefix,
    the YAML line when ``text`` is given, and a count of further problems.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _yaml_line(text, loc) if text is not None else None
            where = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{where}{f' (line {line})' if line else ''}: {pydantic_message(err)}")
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:3])})" if len(problems) > 1 else ""
        raise error(f"{source}: {problems[0]}{more}") from None


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """Parse and validate a scenario file; errors name the file and the field."""
    path = Path(path)
    data, text = read_yaml(path)
    return validate(Scenario, data, path, text), path.parent


def extents_for(size: int, fragments: int, used: float) -> list[tuple[int, int]]:
    """``fragments`` equal extents covering ``used`` of the volume, evenly spread (block aligned)."""
    blocks = size // BLOCK
    per = max(1, int(blocks * used) // fragments)
    stride = blocks // fragments
    return [(i * stride * BLOCK, per * BLOCK) for i in range(fragments) if i * stride + per <= blocks]


@dataclass
class SimRun:
    san: SimSAN
    reports: list = field(default_factory=list)  # the jobs' reports (orchestrator JobReport)
    faults: list[FaultSpec] = field(default_factory=list)

    def summary(self) -> dict:
        cpu = {h: round(self.san.net.work_done(host.cpu), 3) for h, host in self.san.dev.hosts.items()}
        return {
            "simulated_seconds": round(self.san.env.now, 3),
            "events": getattr(self.san.env, "events_processed", None),
            "faults": [f.describe() for f in self.faults],
            "cpu_seconds": cpu,
            "shoeshine_events": self.san.timeline.count("shoeshine"),
            "jobs": [{"job": f"{r.node}:{r.filespace}", "outcome": r.outcome, "path": r.path_used,
                      "bytes_by_path": r.bytes_by_path, "failovers": [f.reason for f in r.failovers],
                      "message": r.message,
                      "bottlenecks": self.san.attribution.report(f"{r.node}:{r.filespace}")}
                     for r in self.reports],
        }


@dataclass
class SimSetup:
    """Everything a scenario's jobs run on: the SAN with its faults armed, a drive pool and a driver."""

    san: SimSAN
    topology: Topology
    index: TopologyIndex
    faults: list[FaultSpec]
    driver: SimDriver
    movers: list[str]  # server-free movers in configured order
    designators: dict[str, str]  # pool device (drive) -> designator hex

    def volume(self, volume_id: str) -> tuple[Volume, str, str]:
        """A topology volume, its disk's SAN name (ARRAY:NUMBER) and its NAA designator."""
        vol = next((v for v in self.topology.volumes if v.id == volume_id), None)
        if vol is None:
            known = ", ".join(sorted(v.id for v in self.topology.volumes)) or "none"
            raise LookupError(f"backup of {volume_id}: no such volume in {self.topology.name} (known: {known})")
        ref = self.index.resolve_lun(vol.lun)
        return vol, f"{ref.array}:{ref.number}", ref.naa

    def run(self, procs: list) -> SimRun:
        """Run until every job process has ended (repairs scheduled after the last job need not run)."""
        self.san.env.run(until=self.san.env.all_of(procs))
        return SimRun(self.san, [p.value for p in procs], self.faults)


def setup_scenario(scen: Scenario, base: Path = Path(".")) -> SimSetup:
    """Load the topology, build the SAN, arm the faults (explicit + seeded) and make the driver."""
    topo_path = Path(scen.topology)
    topo = load_topology(topo_path if topo_path.is_absolute() else base / topo_path)
    ix = TopologyIndex.build(topo)
    san = san_from_topology(topo, scen.calibration)
    sizes = {v.id: v.size for v in topo.volumes}
    faults = list(scen.faults)
    jobs = [b.volume for b in scen.backups]
    if scen.random_faults:
        horizon = sum(sizes.get(j, 0) for j in jobs) / max(1, len(san.dev.drives)) / (
            scen.calibration.tape_native_mb_s * 1e6)
        faults += random_faults(scen.seed, scen.random_faults, san, max(horizon, 1.0), jobs=jobs)
    FaultInjector(san, faults).arm()
    drives = sorted(san.dev.drives)
    if not drives:
        raise LookupError(f"topology {topo.name} has no tape drive for the simulated backups")
    designators = {d: (ix.drives[d].naa or f"6{i + 1:031x}") for i, d in enumerate(drives)}
    driver = SimDriver(san, TimingBackend(drives[0]).execute, drive_pool=DrivePool(san, drives))
    return SimSetup(san, topo, ix, faults, driver, [m.name for m in topo.movers_in_order()], designators)


# -- CI scenarios (``serverfree scenario run``) ---------------------------------------------------
# A CI scenario says what to set up (topology, volumes, options, faults), which jobs to run in order
# (backups and restores) and what must come out.  Only data lives here; the command line composes
# the orchestrator's options, analysis, eligibility and jobs with this simulator to run it.
OptionValue = str | int | float | bool
AUTO_JOBS = 1000  # detail: auto keeps every job's record up to this many jobs


class VolumeSpec(BaseModel):
    """A client volume as the scenario sees it: a topology volume with bytes or a synthetic layout."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="CLIENT:MOUNT of a topology volume")
    size: Size | None = Field(None, description="simulated volume size (default: the topology's)")
    filesystem: Literal["ntfs", "fat", "fat32", "raw"] | None = Field(
        None, description="file system of a synthetic volume (default: the topology's)")
    used: float = Field(0.5, gt=0, le=1, description="fraction of clusters in use (synthetic volumes)")
    fragments: int = Field(8, ge=1, description="used clusters split into this many runs (synthetic)")
    cluster_size: Size = Field(4096, gt=0)
    content: Literal["random", "text"] = Field("random", description="synthetic data: incompressible or text-like")
    image: str | None = Field(None, description="an image file (relative to the scenario); analysed for real")
    sample_ntfs: bool = Field(False, description="a filled NTFS image made with mkntfs (bundled one without)")


class Bounds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None


class JobExpect(BaseModel):
    """What one job must report; unset fields are not checked."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["completed", "failed"] | None = None
    path: str | None = Field(None, description="paths that moved data, e.g. server-free+lan-free")
    start_path: Literal["server-free", "lan-free", "lan"] | None = None
    failovers: list[str] | None = Field(None, description="each 'from->to', e.g. server-free->lan-free")
    failover_reasons: list[str] | None = Field(None, description="substrings, one per failover in order")
    not_server_free: list[str] | None = Field(None, description="substrings of the reasons it did not start so")
    movers_used: list[str] | None = None
    compressed: bool | None = None
    warnings: list[str] | None = Field(None, description="substrings that must appear among the warnings")
    message: str | None = Field(None, description="substring of the failure message")
    byte_identical: bool | None = Field(None, description="restores: the volume equals what was backed up")
    bytes_by_path: dict[str, int] | None = None
    min_bytes: dict[str, int] | None = Field(None, description="at least this many bytes per path")
    duration_s: Bounds | None = Field(None, description="simulated seconds of the job's step")
    cpu_seconds: dict[str, Bounds] = Field(default_factory=dict, description="host -> CPU seconds in the step")


class JobStep(BaseModel):
    """A backup or a restore of a scenario volume; steps run one after another unless concurrent."""

    model_config = ConfigDict(extra="forbid")
    backup: str | None = Field(None, description="volume id to back up")
    restore: str | None = Field(None, description="volume id to restore (onto its own LUN, zeroed first)")
    name: str | None = Field(None, description="job name faults refer to (default: the volume id)")
    mode: Literal["selective", "incremental"] | None = None
    incremental: bool = Field(False, description="restore: apply the image incrementals (-incremental)")
    deletefiles: bool = False
    options: dict[str, OptionValue] = Field(default_factory=dict, description="dsm.opt overrides for this job")
    change: float = Field(0.0, ge=0, le=1, description="before a backup: rewrite this fraction of used data")
    count: int = Field(1, ge=1, le=5000, description="run this many copies of the job at once (capacity)")
    concurrent: bool = Field(False, description="start with the previous step instead of after it")
    faults: list[FaultSpec] = Field(default_factory=list,
                                    description="armed when this step starts; at_s counts from that moment")
    expect: JobExpect = Field(default_factory=JobExpect)

    @model_validator(mode="after")
    def _one(self) -> JobStep:
        if (self.backup is None) == (self.restore is None):
            raise ValueError("a job step names exactly one of backup or restore")
        return self

    @property
    def volume(self) -> str:
        return self.backup or self.restore or ""


class ScenarioExpect(BaseModel):
    """Scenario-wide expectations."""

    model_config = ConfigDict(extra="forbid")
    simulated_seconds: Bounds | None = None
    cpu_seconds: dict[str, Bounds] = Field(default_factory=dict, description="host -> CPU seconds bounds")
    shoeshine_events: Bounds | None = None
    completed_jobs: Bounds | None = None


class TapeScenario(BaseModel):
    """A tape storage pool with tape semantics: objects as records closed by a filemark, tape positions in
    the catalogue, resumption after the last record known written (bytes are kept: restores compare)."""

    model_config = ConfigDict(extra="forbid")
    record_bytes: Size = Field(256 * 1024, gt=0, description="bytes per record (variable) or transfer (fixed)")
    fixed: bool = False
    block_length: Size = Field(0, ge=0, description="fixed-block mode: the drives' block length")


class CiScenario(BaseModel):
    """A CI scenario file (``scenarios/*.yaml``)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str = ""
    topology: str | dict[str, Any] = Field(description="a topology file (relative to the scenario) or inline")
    mode: Literal["fluid", "exact"] = Field("fluid", description="fluid: timing flows; exact: the copy engine")
    seed: int = 0
    calibration: Calibration = Field(default_factory=Calibration)
    options: dict[str, OptionValue] = Field(default_factory=dict, description="dsm.opt values (name: value)")
    volumes: list[VolumeSpec] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    random_faults: int = Field(0, ge=0)
    jobs: list[JobStep] = Field(min_length=1)
    expect: ScenarioExpect = Field(default_factory=ScenarioExpect)
    tape: TapeScenario | None = Field(None, description="the drives form a tape pool with tape semantics")
    detail: Literal["auto", "jobs", "totals"] = Field(
        "auto", description="jobs: keep every job's record and the per-flow timeline; totals: check each job "
                            "as it ends and keep running totals only (flat memory for capacity runs); "
                            f"auto: jobs up to {AUTO_JOBS:,} jobs, else totals")

    @property
    def job_count(self) -> int:
        return sum(s.count for s in self.jobs)

    @property
    def keeps_jobs(self) -> bool:
        """Whether the run keeps every job's record (``detail``)."""
        return self.detail == "jobs" or (self.detail == "auto" and self.job_count <= AUTO_JOBS)

    @model_validator(mode="after")
    def _volumes_known(self) -> CiScenario:
        ids = [v.id for v in self.volumes]
        if len(set(ids)) != len(ids):
            raise ValueError("a volume is listed twice under volumes")
        return self


def _yaml_line(text: str, loc: tuple) -> int | None:
    """The line of ``loc`` (pydantic error location) inside the YAML text, for error messages."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def load_ci_scenario(path: str | Path) -> CiScenario:
    """Parse and validate a CI scenario; errors name the file, the line and the path inside it."""
    path = Path(path)
    data, text = read_yaml(path)
    scen = validate(CiScenario, data, path, text)
    if scen.name is None:
        scen.name = path.stem
    return scen
