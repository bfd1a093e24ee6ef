"""Run a CI scenario: the orchestrator's real options, eligibility and jobs on the simulated SAN.

Composition (the CLI is the one place allowed to): the scenario's topology is
verified (:mod:`topology.verify`) to find which paths exist and which data
movers serve each volume, in order; the options go through the dsm.opt parser;
the volume's extents come from its used clusters with the path's imagegapsize; the
eligibility rules pick the starting path; the job generators run on a
:class:`simulator.driver.SimDriver`.  Runs that need bytes (exact mode,
restores, incrementals) use the in-memory driver as backend, and in exact mode
every data mover is the real copy manager engine (:class:`ExactMover`) over the
same bytes; timing-only runs use the timing backend and a drive pool.  Steps become
jobs in :mod:`simulator.scenarios.jobs`.
"""
from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator import compose
from orchestrator.catalogue import Catalogue
from orchestrator.drivers.memory_tape import MemoryTapeLun, MemoryTapes
from scsi.copymgr.config import CopyLimits
from scsi.luns.memory import BytearrayLun
from simulator.exact import ExactMover
from simulator.scenarios.expect import JobOutcome, ScenarioRun, job_problems
from simulator.scenarios.tally import JobTally
from simulator.scenarios.volumes import ScenarioVolume, build_volume
from orchestrator.drivers.memory import MemoryDriver
from simulator.scenarios.jobs import ScenarioJobs
from orchestrator.job import JobReport
from orchestrator.ops import MoverLimits
from simulator.driver import SimDriver, TimingBackend
from simulator.faults import FaultInjector, random_faults
from simulator.from_topology import san_from_topology
from simulator.scenarios.load import CiScenario, VolumeSpec
from simulator.synthetic import DrivePool
from topology.graph import SanState
from topology.index import TopologyIndex
from topology.load import load_topology, topology_from_data
from topology.model import Topology

log = logging.getLogger(__name__)

#: fault kinds that leave a component down; at 0 s they are down before any job verifies its paths
DOWN_AT_START = {"link_down", "isl_down", "switch_port_down", "mover_hang", "agent_down", "lan_down", "tape_error"}
SIM_LIMITS = MoverLimits(max_segment_count=64, max_descriptor_list_length=4096, total_concurrent_copies=4)


class StalledError(RuntimeError):
    """The simulation ran out of events while a job still waited: a hang, reported instead of hanging."""


class ScenarioRunner(ScenarioJobs):
    """Builds the simulated world of one scenario, then runs its steps in order."""

    def __init__(self, scen: CiScenario, base_dir: Path = Path("."), *, seed: int | None = None,
                 source: str = "scenario", workdir: Path | None = None,
                 progress: Callable[[str, float], None] | None = None, sink: Callable[[dict], Any] | None = None):
        self.scen, self.base_dir, self.source = scen, base_dir, source
        self.sink = sink  # detail totals: each finished job's record (JobOutcome.as_dict), instead of keeping it
        self.lazy = True  # jobs waiting for a tape drive are made when they get one (False: all at the start)
        self.seed = scen.seed if seed is None else seed
        self.progress = progress
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="serverfree-scenario-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.catalogue: Catalogue | None = None
        try:
            self._build()
        except BaseException:
            self.close()  # no temporary NTFS images left behind by a bad scenario
            raise

    def _build(self) -> None:
        scen, source = self.scen, self.source
        self.topology = self._topology()
        self.index = TopologyIndex.build(self.topology)
        self.san = san_from_topology(self.topology, scen.calibration, detail=scen.keeps_jobs)
        self.with_bytes = scen.mode == "exact" or scen.tape is not None or any(
            s.restore or s.mode == "incremental" or s.change or
            str(s.options.get("mode", scen.options.get("mode", ""))).lower() == "incremental" for s in scen.jobs)
        self.volumes: dict[str, ScenarioVolume] = {}
        for step in scen.jobs:
            self._volume(step.volume)
        self._arm_faults()
        self.paths_at_start = compose.domain_paths(self.topology, self._down_at_start())
        self.pools = self._pools()  # destination pools of the scenario's volumes, by name
        self.drives = sorted(self.san.dev.drives)
        named = dict(self.index.drives)
        self.designators = {d: (named[d].naa if d in named and named[d].naa else f"6{i + 1:031x}")
                            for i, d in enumerate(self.drives)}
        for pool in self.pools.values():
            self.designators.update({d: n for d, n in pool.designators.items() if n and d not in self.drives})
        self.memory: MemoryDriver | None = None
        self.driver = self._driver()
        self.run = ScenarioRun(scen, self.san, volumes=self.volumes,
                               tally=None if scen.keeps_jobs else JobTally(self.sink))

    # -- setup ------------------------------------------------------------------------------
    def _topology(self) -> Topology:
        topo = self.scen.topology
        if isinstance(topo, dict):
            return topology_from_data(topo, file=f"{self.source} (inline topology)")
        path = Path(topo)
        return load_topology(path if path.is_absolute() else self.base_dir / path)

    def _volume(self, vid: str) -> ScenarioVolume:
        if vid in self.volumes:
            return self.volumes[vid]
        tv = next((v for v in self.topology.volumes if v.id == vid), None)
        if tv is None:
            known = ", ".join(sorted(v.id for v in self.topology.volumes)) or "none"
            raise LookupError(f"{self.source}: volume {vid!r} is not in topology {self.topology.name} "
                              f"(known: {known})")
        spec = next((v for v in self.scen.volumes if v.id == vid), None) or VolumeSpec(id=vid)
        ref = self.index.resolve_lun(tv.lun)
        vol = build_volume(spec, tv, f"{ref.array}:{ref.number}", ref.naa, base_dir=self.base_dir,
                           seed=self.seed, with_bytes=self.with_bytes, workdir=self.workdir)
        self.volumes[vid] = vol
        return vol

    def _arm_faults(self) -> None:
        faults = list(self.scen.faults)
        if self.scen.random_faults:
            jobs = [s.name or s.volume for s in self.scen.jobs]
            horizon = sum(v.size for v in self.volumes.values()) / max(1, len(self.san.dev.drives)) / (
                self.scen.calibration.tape_native_mb_s * 1e6)
            faults += random_faults(self.seed, self.scen.random_faults, self.san, max(horizon, 1.0), jobs=jobs)
        self.faults = faults
        FaultInjector(self.san, faults).arm()

    def _driver(self) -> SimDriver:
        snaps = {f"snap:{v.disk}": v.disk for v in self.volumes.values()}
        self._exact: dict[str, Any] = {}
        tape_pools = {name for name, p in self.pools.items() if p.is_tape}
        if not self.with_bytes:
            where = {name: self._pool_device(p) for name, p in self.pools.items()}
            backend = TimingBackend(next(iter(where.values())), pools=where)
            drives = sorted({d for p in self.pools.values() if p.is_tape for d in p.devices})
            return SimDriver(self.san, backend.execute, devices=snaps, tape_pools=tape_pools,
                             drive_pool=DrivePool(self.san, drives) if drives else None)
        capacity = 2 * sum(v.size * s.count for s in self.scen.jobs if s.backup
                           for v in [self.volumes[s.backup]]) + (64 << 20)
        self.catalogue = Catalogue(":memory:")
        devices = {v.disk: v.buf for v in self.volumes.values() if v.buf is not None}
        pool_bufs: dict[str, bytearray] = {}
        for n, (name, pool) in enumerate(self.pools.items(), 1):
            dev = self._pool_device(pool)
            pool_bufs[dev] = bytearray(capacity)
            self.catalogue.add_pool_volume(name, f"SIMVOL{n}", dev, capacity)
        devices.update(pool_bufs)
        seg = {m.name: m.max_segment_bytes for m in self.topology.datamovers if m.max_segment_bytes}
        self.memory = MemoryDriver(devices, self.catalogue, {
            m: replace(SIM_LIMITS, max_segment_length=seg.get(m, 0)) for m in self.san.dev.movers})
        tapes = self._tape_pool(seg) if self.scen.tape is not None and tape_pools else {}
        exact = None
        if self.scen.mode == "exact":
            luns = {v.disk: BytearrayLun(v.disk, v.buf, naa=bytes.fromhex(v.naa))
                    for v in self.volumes.values() if v.buf is not None}
            for dev, buf in pool_bufs.items():
                luns[dev] = BytearrayLun(dev, buf, naa=bytes.fromhex(self.designators[dev]))
            luns.update(tapes)  # a tape pool: the movers write and read the very tapes the catalogue points to
            # the mover's operating parameters as the topology declares them (segment length)
            exact = {m: ExactMover(self.san, m, luns, limits=self._engine_limits(seg, m)) for m in self.san.dev.movers}
        self._exact = exact or {}
        return SimDriver(self.san, self.memory.execute, devices=snaps, exact=exact)

    def _engine_limits(self, seg: dict[str, int], mover: str) -> CopyLimits:
        """A mover engine's limits: the segment length the topology declares, the chunk the calibration models
        (so exact mode's engine and the flow model move the same chunks)."""
        chunk = {"chunk_bytes": self.scen.calibration.mover_chunk_kib * 1024}
        return CopyLimits(max_segment_length=seg[mover], **chunk) if mover in seg else CopyLimits(**chunk)

    def _tape_pool(self, seg: dict[str, int]) -> dict[str, Any]:
        """Tape semantics for the drives (scenario ``tape:``): record-list tapes the memory driver and the
        movers share, movers that implement the stream segments (00h, 01h, 10h)."""
        tapes = {d: MemoryTapeLun(d, naa=bytes.fromhex(self.designators[d])) for d in self.drives}
        disks = {v.disk: (v.buf, v.naa) for v in self.volumes.values() if v.buf is not None}
        engines = {m: self._engine_limits(seg, m) for m in self.san.dev.movers}
        self.memory.tapes = MemoryTapes(disks, tapes, engines)
        self.memory.movers = {m: self.memory.tapes.limits(m) for m in self.san.dev.movers}
        return tapes

    def _down_at_start(self) -> set[str]:
        """Components a scenario fault takes down at 0 s: down before any job verifies its paths."""
        down = set()
        for f in self.scen.faults:
            if f.at_s == 0 and f.kind in DOWN_AT_START:
                try:
                    SanState.build(self.topology, {f.target})
                except LookupError:
                    continue  # a simulator-only name (a LUN, a route's link): the fault still strikes at 0 s
                down.add(f.target)
        return down

    def _pools(self) -> dict[str, compose.DestinationPool]:
        """The destination pool of every volume a step names, from its management class."""
        out: dict[str, compose.DestinationPool] = {}
        for step in self.scen.jobs:
            vol = self._volume(step.volume)
            pool = self.paths_at_start[vol.id].pool
            if pool is None or not pool.devices:
                mc = next(v.mgmtclass for v in self.topology.volumes if v.id == vol.id)
                raise LookupError(f"{self.source}: volume {vol.id}: management class {mc} "
                                  f"names no storage pool with a tape drive or disk-pool LUN in topology "
                                  f"{self.topology.name}")
            out[pool.name] = pool
        return out

    def _pool_of(self, vid: str) -> compose.DestinationPool:
        pool = self.paths_at_start[vid].pool
        assert pool is not None  # _pools() refused volumes without one
        return pool

    def _pool_device(self, pool: compose.DestinationPool) -> str:
        """The device a pool's objects land on when no drive is mounted (its first LUN or drive)."""
        return pool.devices[0]

    # -- composition --------------------------------------------------------------------------
    # -- running ------------------------------------------------------------------------------
    def phases(self) -> list[list[int]]:
        out: list[list[int]] = []
        for i, step in enumerate(self.scen.jobs):
            if step.concurrent and out:
                out[-1].append(i)
            else:
                out.append([i])
        return out

    def execute(self) -> ScenarioRun:
        rng = random.Random(f"{self.seed}:changes")
        phases = self.phases()
        for n, phase in enumerate(phases):
            procs: list[tuple[int, int, str, str, Any]] = []
            t0, cpu0 = self.san.env.now, self.cpu()
            for i in phase:
                self._arm_step_faults(self.scen.jobs[i].faults)
            # without tape semantics the pool "drive" is a byte array the exact mover cannot read as a tape:
            # such restores move their (real) bytes through the memory driver, timed by the fluid model
            tape_restore = self.scen.tape is None and any(
                self.scen.jobs[i].restore and self._pool_of(self.scen.jobs[i].volume).is_tape for i in phase)
            self.driver.exact = {} if tape_restore else self._exact
            early: list[JobOutcome] = []  # jobs that could not start (a failed report instead of a job)
            waiting = [sum(self.scen.jobs[i].count for i in phase)]  # jobs of the phase not ended yet
            ended = self.san.env.event()

            def one_ended(_: Any) -> None:
                waiting[0] -= 1
                if not waiting[0]:
                    ended.succeed()

            def start(i: int, c: int, name: str, client: str, drive: str | None = None) -> None:
                step = self.scen.jobs[i]
                job = self.backup(step, c)[0] if step.backup else self.restore(step)
                kind = "backup" if step.backup else "restore"
                if isinstance(job, JobReport):
                    early.append(JobOutcome(i, c, kind, name, job))
                    if drive is not None:
                        self.driver.drive_pool.release(drive)
                    one_ended(None)
                    return
                proc = self.driver.process(job, name=name, client=client, drive=drive,
                                           since=None if drive is None else t0)
                proc.callbacks.append(one_ended)
                procs.append((i, c, kind, name, proc))

            for i in phase:
                step = self.scen.jobs[i]
                vol = self._volume(step.volume)
                if step.change:
                    if vol.buf is None:
                        raise ValueError(f"{self.source}: jobs.{i}.change needs a volume with bytes")
                    vol.change(step.change, rng)
                names = [(step.name or step.volume) + (f"#{c + 1}" if step.count > 1 else "")
                         for c in range(step.count)]
                if self._admitted_lazily(step):
                    # every copy waits for a tape drive: as one entry of the drive pool's queue, its job made
                    # only when it has a drive (a waiting job holds no spec, extents or plan)
                    self.driver.drive_pool.admit_many(step.count, lambda c, drive, i=i, names=names, client=vol.client:
                                                      start(i, c, names[c], client, drive))
                    continue
                for c in range(step.count):
                    start(i, c, names[c], vol.client)
            for outcome in sorted(early, key=lambda o: (o.index, o.copy)):
                self._finished(outcome)
            early.clear()
            if waiting[0]:  # (ended triggers when the last one ends)
                try:
                    self.san.env.run(until=ended)
                except RuntimeError as exc:  # simpy: no events left while a job still waits
                    stuck = [name for _, _, _, name, p in procs if not p.triggered] or ["(jobs waiting for a drive)"]
                    raise StalledError(f"{self.source}: the simulation stalled at {self.san.env.now:.3f} s; "
                                       f"job(s) {', '.join(stuck)} never finished ({exc})") from None
            for outcome in sorted(early, key=lambda o: (o.index, o.copy)):
                self._finished(outcome)
            procs.sort(key=lambda p: (p[0], p[1]))
            cpu = {h: round(v - cpu0.get(h, 0.0), 4) for h, v in self.cpu().items()}
            for i, c, kind, name, proc in procs:
                outcome = JobOutcome(i, c, kind, name, proc.value, started_s=t0, ended_s=self.san.env.now,
                                     cpu_seconds=cpu, bottlenecks=self.san.attribution.report(name, forget=True))
                if kind == "restore":
                    vol = self._volume(self.scen.jobs[i].volume)
                    if outcome.report.ok:
                        outcome.byte_identical, outcome.compare_note = vol.compare(self.scen.jobs[i].incremental)
                    else:
                        outcome.byte_identical, outcome.compare_note = False, "restore failed"
                self._finished(outcome)
            del procs  # a phase's jobs are not kept past it (detail totals)
            if self.progress:
                self.progress(f"{self.scen.name}: step {n + 1}/{len(phases)}", (n + 1) / len(phases))
        self.run.jobs.sort(key=lambda j: (j.index, j.copy))
        return self.run

    def _admitted_lazily(self, step: Any) -> bool:
        """Whether the step's jobs queue for a tape drive before they exist: timing runs (nothing before the
        mount takes simulated time) of backups to a tape pool mounted from the drive pool."""
        return (self.lazy and not self.with_bytes and bool(step.backup) and self.driver.drive_pool is not None
                and self._pool_of(step.volume).is_tape)

    def _finished(self, outcome: JobOutcome) -> None:
        """Keep the job's record (detail jobs), or check it now and add it to the running totals."""
        if self.run.tally is None:
            self.run.jobs.append(outcome)
        else:
            self.run.tally.add(outcome, job_problems(self.scen, outcome))

    def cpu(self) -> dict[str, float]:
        return {h: self.san.net.work_done(host.cpu) for h, host in self.san.dev.hosts.items()}

    def _arm_step_faults(self, faults: list) -> None:
        """Faults of one step: at_s is relative to the moment the step starts."""
        if not faults:
            return
        now = self.san.env.now
        shifted = [f.model_copy(update={"at_s": now + f.at_s}) if f.at_s is not None else f for f in faults]
        self.faults += shifted
        FaultInjector(self.san, shifted).arm()

    def close(self) -> None:
        if self.catalogue is not None:
            self.catalogue.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def run_ci_scenario(scen: CiScenario, base_dir: Path = Path("."), *, seed: int | None = None,
                    source: str = "scenario", progress: Callable[[str, float], None] | None = None,
                    sink: Callable[[dict], Any] | None = None) -> ScenarioRun:
    """Build and run one scenario; the run holds every job's report (or, detail totals, their running
    totals: each record goes to ``sink``) and the SAN for the summary."""
    runner = ScenarioRunner(scen, base_dir, seed=seed, source=source, progress=progress, sink=sink)
    try:
        return runner.execute()
    finally:
        runner.close()
