"""A CI scenario's steps made into the orchestrator's real backup and restore jobs.

Each step goes through what a real client does: the dsm.opt parser for its
options, :mod:`topology.verify` for the paths and the data movers serving the
volume, the eligibility rules for the starting path; the result is a job
generator (or, when no job can start, a failed report).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.catalogue import Catalogue
from simulator.scenarios.volumes import ScenarioVolume
from orchestrator.eligibility import NoPathError, decide
from orchestrator.job import (
    BackupSpec,
    DeviceSpec,
    JobReport,
    PathPlan,
    RestoreSpec,
    backup_job,
    object_spec,
    restore_job,
)
from orchestrator.ops import PathKind
from orchestrator.options import ClientOptions, parse_options
from simulator.scenarios.load import CiScenario, JobStep
from topology.model import Topology
from topology.verify import verify

SERVER = "simulated-server:1500"
NO_SIM_TAPE_READ = "the simulator cannot yet model a data mover reading the tape pool (server-free restore)"
PATH_KEY = {PathKind.SERVER_FREE: "serverfree", PathKind.LAN_FREE: "lanfree", PathKind.LAN: "lan"}


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
    """ScenarioRunner's composition of jobs (a mixin over the runner's world: topology, SAN, catalogue, volumes)."""

    scen: CiScenario
    source: str
    topology: Topology
    san: Any
    catalogue: Catalogue | None
    designators: dict[str, str]
    drives: list[str]
    _verdicts: dict[str, tuple[Any, list[str]]]
    _volume: Callable[[str], ScenarioVolume]
    _pool_name: Callable[[], str]
    _tape_plan: Callable[[], Any]

    def options(self, step: JobStep, node: str) -> ClientOptions:
        values: dict[str, Any] = {"imagetype": "static", "nodename": node}
        values.update(self.scen.options)
        values.update(step.options)
        if step.mode:
            values["mode"] = step.mode
        return parse_options(options_text(values), f"{self.source} options")

    def verdict(self, vid: str) -> tuple[Any, list[str]]:
        """The topology verdict for a volume and the data movers that serve it, in configured order."""
        if vid not in self._verdicts:
            verdict = verify(self.topology, redundancy=False).volume(vid)
            movers: list[str] = []
            if verdict.server_free:
                names = [m.name for m in self.topology.movers_in_order()]
                for name in names:
                    others = [n for n in names if n != name]
                    if verify(self.topology, failed=others, redundancy=False).volume(vid).server_free:
                        movers.append(name)
            self._verdicts[vid] = (verdict, movers)
        return self._verdicts[vid]

    @staticmethod
    def lan_free_allowed(elig: Any, opts: ClientOptions) -> bool:
        """A verified LAN-free path, unless the options say enablelanfree no (unset: allowed)."""
        return bool(elig.lan_free and (opts.enablelanfree or opts.source_of("enablelanfree") == "default"))

    def first_path(self, elig: Any, opts: ClientOptions) -> tuple[bool, PathKind, list[str]]:
        """(LAN-free allowed, the path to start on, why): eligibility's start, on the LAN if LAN-free is off."""
        lan_free = self.lan_free_allowed(elig, opts)
        start, reasons = elig.start, list(elig.reasons)
        if start == PathKind.LAN_FREE and not lan_free:
            start = PathKind.LAN
            reasons.append("LAN-free: enablelanfree is no")
        return lan_free, start, reasons

    def backup(self, step: JobStep, copy: int) -> tuple[Any, str]:
        """(job generator or failed JobReport, job name) for one backup."""
        vol = self._volume(step.volume)
        filespace = vol.mount if step.count == 1 else f"{vol.mount}#{copy + 1}"
        opts = self.options(step, vol.client)
        vopts = opts.for_volume(vol.mount)
        verdict, movers = self.verdict(vol.id)
        try:
            elig = decide(enableserverfree=vopts.enableserverfree, file_system=vol.filesystem,
                          encryption=vopts.encrypted, verdict=verdict, movers=movers)
        except NoPathError as exc:
            return failed_report("backup", vol.client, filespace, str(exc)), ""
        extents = vol.extents(vopts.gap_size(PATH_KEY[elig.start if elig.start != PathKind.LAN_FREE
                                                     or self.lan_free_allowed(elig, opts) else PathKind.LAN]))
        base_id, digests = None, {}
        if str(vopts.mode) == "incremental":
            if self.catalogue is None:
                raise ValueError(f"{self.source}: incremental backups need bytes (exact mode or a restore)")
            try:
                chain = self.catalogue.restore_chain(vol.client, filespace, incremental=True)
            except LookupError as exc:
                return failed_report("backup", vol.client, filespace, f"mode incremental: {exc}"), ""
            base_id, digests = chain[0].id, self.catalogue.digests(chain)
        lan_free, start, reasons = self.first_path(elig, opts)
        paths = PathPlan(start=start, reasons=reasons, notes=elig.notes, movers=elig.movers,
                         lan_free=lan_free, lan=elig.lan, server=SERVER,
                         pool_designators=dict(self.designators) if elig.server_free else {},  # every drive
                         batch_mb=opts.serverfreebatchsize, tape=self._tape_plan())
        spec = BackupSpec(node=vol.client, filespace=filespace,
                          source=DeviceSpec(name=vol.disk, designator=vol.naa if elig.server_free else ""),
                          volume_offset=vol.offset, volume_size=vol.size, file_system=vol.filesystem,
                          extents=extents, mode=str(vopts.mode), image_type=str(vopts.imagetype),
                          management_class=vopts.mgmtclass, pool=self._pool_name(),
                          compression=vopts.compression, presnapshotcmd=vopts.presnapshotcmd or "",
                          postsnapshotcmd=vopts.postsnapshotcmd or "", snapshot_cache_size=vopts.snapshotcachesize,
                          snapshot_fsidle_retries=vopts.snapshotfsidleretries,
                          snapshot_fsidle_wait=vopts.snapshotfsidlewait, base_object_id=base_id,
                          base_digests=digests, paths=paths)
        vol.record_backup(extents, full=str(vopts.mode) != "incremental")
        return backup_job(spec), ""

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
        verdict, movers = self.verdict(vol.id)
        try:
            elig = decide(enableserverfree=opts.enableserverfree, file_system=chain[0].file_system,
                          verdict=verdict, movers=movers)
        except NoPathError as exc:
            return failed_report("restore", vol.client, vol.mount, str(exc))
        lan_free, start, reasons = self.first_path(elig, opts)
        if start == PathKind.SERVER_FREE and any(o.pool_device in self.san.dev.drives and not o.tape_location
                                                 for o in chain):
            # the simulated data movers read disk LUNs only (simulator/fluid.py, simulator/exact.py)
            start = PathKind.LAN_FREE if lan_free else PathKind.LAN
            reasons.append(NO_SIM_TAPE_READ)
        sf = start == PathKind.SERVER_FREE
        paths = PathPlan(start=start, reasons=reasons, movers=elig.movers if sf else [], lan_free=lan_free,
                         lan=elig.lan, server=SERVER,
                         pool_designators={d: self.designators[d] for d in self.drives} | {
                             o.pool_device: self.designators[o.pool_device] for o in chain} if sf
                         else {}, batch_mb=opts.serverfreebatchsize)
        vol.buf[vol.offset:vol.offset + vol.size] = bytes(vol.size)
        spec = RestoreSpec(node=vol.client, filespace=vol.mount, chain=[object_spec(o) for o in chain],
                           destination=DeviceSpec(name=vol.disk, designator=vol.naa if sf else ""),
                           destination_offset=vol.offset, destination_size=vol.size,
                           incremental=step.incremental, deletefiles=step.deletefiles, paths=paths)
        return restore_job(spec)
