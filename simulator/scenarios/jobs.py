"""A CI scenario's steps made into the orchestrator's real backup and restore jobs.

Each step goes through what a real client does: the dsm.opt parser for its
options, then the composition root (:mod:`orchestrator.compose`) for the
topology verdict, the data movers serving the volume, the destination pool
its management class names, the starting path and the spec -- the same calls
`backup image` and `restore image` make.  The result is a job generator (or,
when no job can start, a failed report).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator import compose
from orchestrator.catalogue import Catalogue
from orchestrator.eligibility import NoPathError
from orchestrator.job import DeviceSpec, JobReport, backup_job, restore_job
from orchestrator.job.spec import TapePlan
from orchestrator.ops import PathKind
from orchestrator.options import ClientOptions, parse_options
from simulator.scenarios.load import CiScenario, JobStep
from simulator.scenarios.volumes import ScenarioVolume
from topology.model import Topology

SERVER = "simulated-server:1500"
NO_SIM_TAPE_READ = "the simulator cannot yet model a data mover reading the tape pool (server-free restore)"


def failed_report(kind: str, node: str, filespace: str, message: str, reasons: list[str] | None = None) -> JobReport:
    """A job that could not even start (no path, no base image ...) is a failed job, not a crash."""
    return JobReport(kind, node, filespace, outcome="failed", message=message, reasons=list(reasons or []))


def options_text(values: dict[str, Any]) -> str:
    """dsm.opt lines from a scenario's ``name: value`` mapping (yes/no for booleans)."""
    lines = []
    for name, value in values.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


class ScenarioJobs:
    """ScenarioRunner's jobs (a mixin over the runner's world: topology, SAN, catalogue, volumes)."""

    scen: CiScenario
    source: str
    topology: Topology
    san: Any
    catalogue: Catalogue | None
    designators: dict[str, str]
    paths_at_start: dict[str, compose.VolumePaths]
    _volume: Callable[[str], ScenarioVolume]

    def options(self, step: JobStep, node: str) -> ClientOptions:
        values: dict[str, Any] = {"imagetype": "static", "nodename": node}
        values.update(self.scen.options)
        values.update(step.options)
        if step.mode:
            values["mode"] = step.mode
        return parse_options(options_text(values), f"{self.source} options")

    def paths(self, vid: str) -> compose.VolumePaths:
        """The topology verdict, movers in order and destination pool, with the components down at 0 s."""
        return self.paths_at_start[vid]

    def tape_plan(self, pool: compose.DestinationPool | None) -> TapePlan | None:
        """Tape semantics for a tape pool when the scenario asks for them (``tape:``)."""
        t = self.scen.tape
        if t is None or pool is None or not pool.is_tape:
            return None
        return TapePlan(record_bytes=t.record_bytes, fixed=t.fixed, block_length=t.block_length,
                        drives=list(pool.devices))

    def pool_designators(self, pool: compose.DestinationPool | None) -> dict[str, str]:
        return {d: self.designators[d] for d in (pool.devices if pool is not None else ())}

    def backup(self, step: JobStep, copy: int) -> tuple[Any, str]:
        """(job generator or failed JobReport, job name) for one backup."""
        spec = self.backup_spec(step, copy)
        if isinstance(spec, JobReport):
            return spec, ""
        self._volume(step.volume).record_backup(spec.extents, full=spec.mode != "incremental")
        return backup_job(spec), ""

    def backup_spec(self, step: JobStep, copy: int) -> Any:
        """The BackupSpec of one backup (or a failed JobReport when no job can start)."""
        vol = self._volume(step.volume)
        filespace = vol.mount if step.count == 1 else f"{vol.mount}#{copy + 1}"
        opts = self.options(step, vol.client)
        vopts = opts.for_volume(vol.mount)
        paths = self.paths(vol.id)
        tape = self.tape_plan(paths.pool)
        try:
            elig = compose.start_path(vopts, file_system=vol.filesystem, paths=paths,
                                      fixed_tape=bool(tape and tape.fixed))
        except (NoPathError, ValueError) as exc:
            return failed_report("backup", vol.client, filespace, str(exc))
        extents = vol.extents(compose.gap_size(vopts, elig))
        base_id, digests = None, {}
        if str(vopts.mode) == "incremental":
            if self.catalogue is None:
                raise ValueError(f"{self.source}: incremental backups need bytes (exact mode or a restore)")
            try:
                chain = self.catalogue.restore_chain(vol.client, filespace, incremental=True, stream=True)
            except LookupError as exc:
                return failed_report("backup", vol.client, filespace, f"mode incremental: {exc}")
            base_id, digests = chain[0].id, self.catalogue.digest_runs(chain)
        plan = compose.path_plan(elig, server=SERVER, pool_designators=self.pool_designators(paths.pool),
                                 batch_mb=opts.serverfreebatchsize, tape=tape)
        return compose.backup_spec(node=vol.client, filespace=filespace, vopts=vopts, elig=elig,
                                   source=DeviceSpec(name=vol.disk, designator=vol.naa if elig.server_free else ""),
                                   volume_offset=vol.offset, volume_size=vol.size, file_system=vol.filesystem,
                                   extents=extents, pool=paths.pool.name if paths.pool else "", paths=plan,
                                   base_object_id=base_id, base_digests=digests)

    def restore(self, step: JobStep) -> Any:
        """A restore job onto the volume's own LUN (zeroed first, so nothing stale can pass for restored)."""
        vol = self._volume(step.volume)
        if self.catalogue is None or vol.buf is None:
            raise ValueError(f"{self.source}: restores need bytes")
        opts = self.options(step, vol.client)
        try:
            chain = self.catalogue.restore_chain(vol.client, vol.mount, incremental=step.incremental)
        except LookupError as exc:
            return failed_report("restore", vol.client, vol.mount, str(exc))
        paths = self.paths(vol.id)
        try:
            elig = compose.start_path(opts.for_volume(vol.mount), file_system=chain[0].file_system, paths=paths)
        except NoPathError as exc:
            return failed_report("restore", vol.client, vol.mount, str(exc))
        start, reasons = elig.start, list(elig.reasons)
        if start == PathKind.SERVER_FREE and any(o.pool_device in self.san.dev.drives and not o.tape_location
                                                 for o in chain):
            # the simulated data movers read disk LUNs only (simulator/fluid.py, simulator/exact.py)
            start = PathKind.LAN_FREE if elig.lan_free else PathKind.LAN
            reasons.append(NO_SIM_TAPE_READ)
        sf = start == PathKind.SERVER_FREE
        desig = self.pool_designators(paths.pool) | {o.pool_device: self.designators[o.pool_device] for o in chain}
        plan = compose.path_plan(elig, server=SERVER, pool_designators=desig, batch_mb=opts.serverfreebatchsize,
                                 start=start, reasons=reasons, movers=elig.movers if sf else [])
        vol.buf[vol.offset:vol.offset + vol.size] = bytes(vol.size)
        spec = compose.restore_spec(node=vol.client, filespace=vol.mount, chain=chain,
                                    destination=DeviceSpec(name=vol.disk, designator=vol.naa if sf else ""),
                                    destination_offset=vol.offset, destination_size=vol.size,
                                    incremental=step.incremental, deletefiles=step.deletefiles, paths=plan)
        return restore_job(spec)
