"""The composition root: options + topology verdict + eligibility + used extents + site -> a job spec.

This is the only place where those facts meet.  `backup image` and
`restore image` (:mod:`orchestrator.cli`), the scenario runner and `sim run`
(:mod:`simulator.scenarios`), the demo (a scenario) and `paths` all call it,
so the same inputs give the same starting path, data-mover order, gap size
and destination pool everywhere:

* :func:`domain_paths` / :func:`volume_paths`: the topology verdict of a
  volume with some components down, the data movers that serve it in
  configured order, and the destination pool its management class names;
* :func:`start_path`: eligibility from the volume's
  options -- one rule for ``enablelanfree`` (unset means no, as in TSM);
* :func:`gap_size`: the ``imagegapsize`` of the path the job starts on;
* :func:`backup_spec` / :func:`restore_spec`: the specs the job core reads.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from orchestrator.eligibility import Eligibility, decide
from orchestrator.job.spec import BackupSpec, DeviceSpec, PathPlan, RestoreSpec, TapePlan, object_spec
from orchestrator.ops import PathKind
from orchestrator.piece_stream import PieceStream
from topology.model import Topology
from topology.report import VolumeVerdict

PATH_KEY = {PathKind.SERVER_FREE: "serverfree", PathKind.LAN_FREE: "lanfree", PathKind.LAN: "lan"}
FIXED_NO_LAN_FREE = ("a fixed-block tape pool has no LAN-free path: the client's tape I/O is variable-block "
                     "only (no MODE SELECT of the block length)")


@dataclass(frozen=True)
class DestinationPool:
    """The storage pool a volume's management class sends it to, and the devices that hold it."""

    name: str
    kind: Literal["disk", "tape"]
    devices: tuple[str, ...]  # disk-pool LUNs as ARRAY:NUMBER, or tape drive names
    designators: dict[str, str] = field(default_factory=dict)  # device -> VPD 83h NAA where the topology has it
    nonblocked: bool = True

    @property
    def is_tape(self) -> bool:
        return self.kind == "tape"


@dataclass(frozen=True)
class VolumePaths:
    """What the topology says of one volume with some components down."""

    verdict: VolumeVerdict
    movers: list[str]  # data movers that serve the volume on their own, in configured order
    pool: DestinationPool | None


def destination_pool(topology: Topology, volume_id: str) -> DestinationPool | None:
    """The pool the volume's management class names (None when the class names no known pool)."""
    vol = next((v for v in topology.volumes if v.id == volume_id), None)
    if vol is None:
        raise LookupError(f"volume {volume_id!r} is not in topology {topology.name}")
    mc = next((m for m in topology.mgmtclasses if m.name == vol.mgmtclass), None)
    pool = next((p for p in topology.stgpools if mc is not None and p.name == mc.destination), None)
    if pool is None:
        return None
    from topology.index import index_of  # the SAN graph layers load only where a topology is judged

    ix = index_of(topology)
    devices = ix.pool_devices(pool)
    designators: dict[str, str] = {}
    for kind, name, _ in devices:
        if kind == "lun":
            designators[name] = ix.resolve_lun(name).naa or ""
        else:
            designators[name] = ix.drives[name].naa or "" if name in ix.drives else ""
    kind = "tape" if any(k == "drive" for k, _, _ in devices) else "disk"
    return DestinationPool(pool.name, kind, tuple(n for _, n, _ in devices), designators, pool.non_blocked)


def domain_paths(topology: Topology, failed: Iterable[str] = ()) -> dict[str, VolumePaths]:
    """:class:`VolumePaths` of every volume with ``failed`` components down (names as `paths --fail`)."""
    failed = set(failed)
    from topology.graph import SanState  # networkx: only where a topology is judged (not a client of the server)
    from topology.verify import verify

    report = verify(topology, state=SanState.build(topology, failed), redundancy=False)
    names = [m.name for m in topology.movers_in_order()]
    serves: dict[str, list[str]] = {v.volume: [] for v in report.volumes}
    if any(v.server_free for v in report.volumes):
        for name in names:  # a mover serves a volume when the volume goes server-free with every other mover down
            alone = verify(topology, state=SanState.build(topology, failed | (set(names) - {name})),
                           redundancy=False)
            for v in alone.volumes:
                if v.server_free and report.volume(v.volume).server_free:
                    serves[v.volume].append(name)
    return {v.volume: VolumePaths(v, serves[v.volume], destination_pool(topology, v.volume))
            for v in report.volumes}


def volume_paths(topology: Topology, volume_id: str, failed: Iterable[str] = ()) -> VolumePaths:
    try:
        return domain_paths(topology, failed)[volume_id]
    except KeyError:
        raise LookupError(f"volume {volume_id!r} is not in topology {topology.name}") from None


def start_path(vopts: Any, *, file_system: str, paths: VolumePaths | Any | None, movers: Sequence[str] | None = None,
               lan_available: bool = True, pool_nonblocked: bool | None = None,
               fixed_tape: bool = False, encryption: bool | None = None) -> Eligibility:
    """Where the job starts and why: eligibility over the volume's options and the topology verdict.

    ``paths`` is a :class:`VolumePaths`, a verdict-like object (a site verified without a topology) or
    None (no topology: only the LAN is assumed); ``movers`` overrides the movers the paths name;
    ``encryption`` overrides the options' (a restore encrypts nothing).
    ``enableserverfree`` and ``enablelanfree`` are read from the options as they are (both default
    to no).  A fixed-block tape pool leaves no LAN-free path.  Raises NoPathError when no path can move it.
    """
    verdict = paths.verdict if isinstance(paths, VolumePaths) else paths
    if movers is None and isinstance(paths, VolumePaths):
        movers = paths.movers
    elig = decide(enableserverfree=bool(vopts.enableserverfree), file_system=file_system,
                  encryption=bool(getattr(vopts, "encrypted", False) if encryption is None else encryption), verdict=verdict, movers=movers,
                  pool_nonblocked=pool_nonblocked, lan_available=lan_available,
                  enablelanfree=bool(vopts.enablelanfree))
    return tape_limits(fixed_tape, elig)


def tape_limits(fixed: bool, elig: Eligibility) -> Eligibility:
    """The eligibility a fixed-block tape pool leaves: no LAN-free path (server-free or LAN)."""
    if not fixed or not (elig.lan_free or elig.start == PathKind.LAN_FREE):
        return elig
    if elig.start != PathKind.LAN_FREE:
        return elig.model_copy(update={"lan_free": False, "notes": [*elig.notes, FIXED_NO_LAN_FREE]})
    if not elig.lan:
        raise ValueError(f"{FIXED_NO_LAN_FREE}, server-free is not possible ({'; '.join(elig.reasons) or 'no reason'})"
                         " and no LAN path is configured (lan_pool in the site file)")
    return elig.model_copy(update={"start": PathKind.LAN, "lan_free": False,
                                   "reasons": [*elig.reasons, FIXED_NO_LAN_FREE]})


def gap_size(vopts: Any, elig: Eligibility) -> int:
    """The imagegapsize in force on the path the job starts on (serverfree/lanfree/lan overrides)."""
    return int(vopts.gap_size(PATH_KEY[elig.start]))


def build(model: Any, **fields: Any) -> Any:
    """Construct a pydantic spec, turning a validation error into one line naming the field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or model.__name__
        raise ValueError(f"{model.__name__}: {where}: {str(e['msg']).removeprefix('Value error, ')}") from None


def path_plan(elig: Eligibility, *, server: str, pool_designators: dict[str, str], batch_mb: int,
              tape: TapePlan | None = None, lan_free: bool = True, movers: Sequence[str] | None = None,
              start: PathKind | None = None, reasons: Sequence[str] | None = None) -> PathPlan:
    """The failover ladder a job may use.  ``lan_free`` is the site's own veto (a storage agent it lacks)."""
    return build(PathPlan, start=start or elig.start, reasons=list(elig.reasons if reasons is None else reasons),
                 notes=elig.notes, movers=list(elig.movers if movers is None else movers),
                 lan_free=elig.lan_free and lan_free, lan=elig.lan, server=server,
                 pool_designators=pool_designators if (start or elig.start) == PathKind.SERVER_FREE else {},
                 batch_mb=batch_mb, tape=tape)


def backup_spec(*, node: str, filespace: str, vopts: Any, elig: Eligibility, source: DeviceSpec, volume_offset: int,
                volume_size: int, file_system: str, extents: list[tuple[int, int]] | np.ndarray, pool: str,
                paths: PathPlan, base_object_id: int | None = None, base_digests: Any = None,
                base_coverage: Any = None, mode: str | None = None, resume: Any = None) -> BackupSpec:
    """The BackupSpec of one volume: its per-volume options, the start path and the extents at its gap size.

    ``mode`` overrides the options' (an incremental with no full image yet is taken as a full one).
    ``extents`` as the analysis' (n, 2) array go to the job as a stream over that array (16 bytes an
    extent, no Python object each; the job checks them as it reads them)."""
    given: dict[str, Any] = {"extents": extents}
    if isinstance(extents, np.ndarray):
        held = extents
        given = {"extent_stream": PieceStream.from_extents(lambda: (held,), volume_size)}
    return build(BackupSpec, node=node, filespace=filespace, source=source, volume_offset=volume_offset,
                 volume_size=volume_size, file_system=file_system, **given, mode=mode or str(vopts.mode),
                 image_type=str(vopts.imagetype), management_class=vopts.mgmtclass, pool=pool,
                 compression=vopts.compression, presnapshotcmd=vopts.presnapshotcmd or "",
                 postsnapshotcmd=vopts.postsnapshotcmd or "", snapshot_cache_size=vopts.snapshotcachesize,
                 snapshot_cache_location=vopts.snapshotcachelocation or "",
                 snapshot_fsidle_retries=vopts.snapshotfsidleretries,
                 snapshot_fsidle_wait=vopts.snapshotfsidlewait, base_object_id=base_object_id,
                 base_digests={} if base_digests is None else base_digests,
                 base_coverage=[] if base_coverage is None else base_coverage, paths=paths, resume=resume)


def restore_spec(*, node: str, filespace: str, chain: list, destination: DeviceSpec, destination_offset: int,
                 destination_size: int, incremental: bool, deletefiles: bool, paths: PathPlan) -> RestoreSpec:
    """The RestoreSpec of one image chain (full image first, then its incrementals)."""
    return build(RestoreSpec, node=node, filespace=filespace, chain=[object_spec(o) for o in chain],
                 destination=destination, destination_offset=destination_offset,
                 destination_size=destination_size, incremental=incremental, deletefiles=deletefiles,
                 paths=paths)
