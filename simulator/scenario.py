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

Each backup runs the orchestrator's own ``backup_job`` through
:class:`simulator.driver.SimDriver` (timing only: no bytes), with drives
mounted from a shared pool, so the job's failover logic meets the faults.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.job import BackupSpec, DeviceSpec, JobReport, PathPlan, backup_job
from orchestrator.ops import PathKind
from simulator.calibration import Calibration
from simulator.driver import SimDriver, TimingBackend
from simulator.faults import FaultInjector, FaultSpec, random_faults
from simulator.from_topology import san_from_topology
from simulator.san import SimSAN
from simulator.synthetic import DrivePool
from topology.index import TopologyIndex
from topology.load import load_topology

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


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """Parse and validate a scenario file; errors name the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scenario must be a mapping at the top level")
    try:
        scen = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{path}: {loc}: {err['msg']}") from None
    return scen, path.parent


def extents_for(size: int, fragments: int, used: float) -> list[tuple[int, int]]:
    """``fragments`` equal extents covering ``used`` of the volume, evenly spread (block aligned)."""
    blocks = size // BLOCK
    per = max(1, int(blocks * used) // fragments)
    stride = blocks // fragments
    return [(i * stride * BLOCK, per * BLOCK) for i in range(fragments) if i * stride + per <= blocks]


@dataclass
class SimRun:
    san: SimSAN
    reports: list[JobReport] = field(default_factory=list)
    faults: list[FaultSpec] = field(default_factory=list)

    def summary(self) -> dict:
        cpu = {h: round(self.san.net.work_done(host.cpu), 3) for h, host in self.san.dev.hosts.items()}
        return {
            "simulated_seconds": round(self.san.env.now, 3),
            "events": getattr(self.san.env, "events_processed", None),
            "faults": [f.describe() for f in self.faults],
            "cpu_seconds": cpu,
            "shoeshine_events": len(self.san.timeline.events_of("shoeshine")),
            "jobs": [{"job": f"{r.node}:{r.filespace}", "outcome": r.outcome, "path": r.path_used,
                      "bytes_by_path": r.bytes_by_path, "failovers": [f.reason for f in r.failovers],
                      "message": r.message} for r in self.reports],
        }


def run_scenario(scen: Scenario, base: Path = Path(".")) -> SimRun:
    topo_path = Path(scen.topology)
    topo = load_topology(topo_path if topo_path.is_absolute() else base / topo_path)
    ix = TopologyIndex.build(topo)
    san = san_from_topology(topo, scen.calibration)
    volumes = {v.id: v for v in topo.volumes}
    faults = list(scen.faults)
    jobs = [b.volume for b in scen.backups]
    if scen.random_faults:
        horizon = sum(volumes[j].size for j in jobs if j in volumes) / max(1, len(san.dev.drives)) / (
            scen.calibration.tape_native_mb_s * 1e6)
        faults += random_faults(scen.seed, scen.random_faults, san, max(horizon, 1.0), jobs=jobs)
    FaultInjector(san, faults).arm()
    drives = sorted(san.dev.drives)
    if not drives:
        raise LookupError(f"topology {topo.name} has no tape drive for the simulated backups")
    pool = DrivePool(san, drives)
    designators = {d: (ix.drives[d].naa or f"6{i + 1:031x}") for i, d in enumerate(drives)}
    driver = SimDriver(san, TimingBackend(drives[0]).execute, drive_pool=pool)
    movers = [m.name for m in topo.movers_in_order()]
    run = SimRun(san, faults=faults)
    procs = []
    for b in scen.backups:
        vol = volumes.get(b.volume)
        if vol is None:
            raise LookupError(f"backup of {b.volume}: no such volume in {topo.name} "
                              f"(known: {', '.join(sorted(volumes)) or 'none'})")
        ref = ix.resolve_lun(vol.lun)
        disk = f"{ref.array}:{ref.number}"
        plan = PathPlan(start=PathKind.SERVER_FREE if movers else PathKind.LAN, movers=movers,
                        lan_free=vol.client in san.agent_of, lan=True, server="simulated:1500",
                        pool_designators=designators, batch_mb=scen.batch_mb)
        spec = BackupSpec(node=vol.client, filespace=vol.mount, source=DeviceSpec(name=disk, designator=ref.naa),
                          volume_offset=vol.offset // BLOCK * BLOCK, volume_size=vol.size,
                          file_system=vol.filesystem.value.lower(),
                          extents=extents_for(vol.size, b.fragments, b.used), paths=plan)
        procs.append(driver.process(backup_job(spec), name=vol.id, client=vol.client, start=b.start_s))
    san.env.run(until=san.env.all_of(procs))  # repairs scheduled after the last job need not run
    run.reports = [p.value for p in procs]
    return run
