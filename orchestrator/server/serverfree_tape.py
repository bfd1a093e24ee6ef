"""Server-free copies to and from a tape pool, initiated by the server with the drive it holds.

The server plans the records (:mod:`orchestrator.job.move_tape`, the same
layout the LAN path writes), names the drive by its VPD 83h designator in the
EXTENDED COPY target descriptors, LOCATEs it itself (the copy manager writes
at the drive's position) and commits the object with its tape location.  The
drive is held from the object's BEGIN (backup; the catalogue picks the
cartridge, hence the drive) or from the start (restore) to the end; a drive
another job holds refuses the copy with that job's name, and the client's LAN
attempt is refused alike.  A tape copy that stops midway is abandoned (a tape
object is continued by the job core only on its own drive, within one job),
and the client moves the whole image over the LAN.
"""
from __future__ import annotations

from typing import Any

from orchestrator import compose
from orchestrator.job import DeviceSpec, backup_job, restore_job
from orchestrator.job.spec import TapePlan
from orchestrator.ops import AbandonObject, BeginObject
from orchestrator.plan.tape_position import TapeLocation
from orchestrator.server import tape


def _designators(server: Any, tp: tape.TapePool) -> dict[str, str]:
    """Designators of the pool's drives no job holds now (a held drive is not opened)."""
    held = server.drives.held()
    out: dict[str, str] = {}
    for drive, device in tp.drives.items():
        if drive in held:
            continue
        try:
            dev = tape.open_drive(drive, device)
        except (LookupError, OSError):
            continue
        try:
            out[drive] = tape.designator(dev, drive)
        except LookupError:
            pass
        finally:
            tape.close_drive(dev)
    return out


def backup(sf: Any, ops: Any, req: Any, mgmtclass: str, tp: tape.TapePool, extents: Any) -> tuple[dict, bytes]:
    """``extents``: the extent map as an (n, 2) array (NodeOps read it from the request's rows); the job reads it
    as a stream, block by block (no Python pair per extent: 5M extents would be 5M tuples)."""
    what = f"backup of {ops.node}:{req.filespace} to tape pool {tp.name}"
    movers, _, why = sf._start(ops, what, tp.name, req.topology_volume or f"{ops.node}:{req.filespace}",
                               req.source_designator, disk_pool=False)
    desig = _designators(sf.server, tp) if movers else {}
    if movers and not desig:
        movers, why = [], f"no drive of tape pool {tp.name} is free and answers with its designator (VPD 83h)"
    if not movers:
        return sf._refuse(ops, what, why)
    vopts = sf._options(mgmtclass, req.mode, req.image_type)
    elig, plan = sf._plan(vopts, req.file_system, movers, desig, TapePlan(record_bytes=tape.RECORD_BYTES))
    spec = compose.backup_spec(node=ops.node, filespace=req.filespace, vopts=vopts, elig=elig,
                               source=DeviceSpec(name="client-volume", designator=req.source_designator,
                                                 block_size=req.block_size),
                               volume_offset=req.volume_offset, volume_size=req.volume_size,
                               file_system=req.file_system, extents=extents,
                               pool=tp.name, paths=plan)
    devices: dict[str, Any] = {}
    held: list[str] = []

    def intercept(op: Any) -> Any:
        if not isinstance(op, BeginObject):
            return None
        with sf.server.pools.catalogue() as cat:
            started = cat.begin_object(op)
            drive = started.pool_device
            try:
                if drive not in tp.drives:
                    raise tape.DriveBusy(f"volume {started.pool_volume} sits in drive {drive}, which has no "
                                         "online PATH from the server with DEVICE=")
                sf.server.drives.acquire(drive, ops.who)
            except tape.DriveBusy as exc:
                cat.abandon_object(AbandonObject(started.object_id, str(exc)))
                raise
        held.append(drive)
        devices[drive] = tape.open_drive(drive, tp.drives[drive])
        return started

    try:
        return sf._run(ops, what, movers, [], backup_job(spec), intercept, devices)
    except tape.DriveBusy as exc:
        sf.server.pools.reclaim()
        return sf._refuse(ops, what, str(exc))
    finally:
        for drive in held:
            tape.close_drive(devices.pop(drive, None))
            sf.server.drives.release(drive, ops.who)


def restore(sf: Any, ops: Any, req: Any, obj: Any) -> tuple[dict, bytes]:
    what = f"restore of {ops.node}:{req.filespace} from tape volume {obj.pool_volume}"
    loc = TapeLocation.decode(obj.tape_location, f"object {obj.id}")
    drive = loc.drive or obj.pool_device
    movers, _, why = sf._start(ops, what, obj.pool, req.topology_volume or f"{ops.node}:{req.filespace}", "",
                               disk_pool=False)
    tp = tape.tape_pool(sf.server.store, obj.pool)
    if movers and (tp is None or drive not in tp.drives):
        movers, why = [], f"drive {drive} of object {obj.id} has no online PATH from the server with DEVICE="
    if not movers:
        return sf._refuse(ops, what, why)
    try:
        sf.server.drives.acquire(drive, ops.who)
    except tape.DriveBusy as exc:
        return sf._refuse(ops, what, str(exc))
    dev = None
    try:
        dev = tape.open_drive(drive, tp.drives[drive])
        naa = tape.designator(dev, drive)
        elig, plan = sf._plan(sf._options(obj.management_class), obj.file_system, movers, {drive: naa})
        spec = compose.restore_spec(node=ops.node, filespace=req.filespace, chain=[obj],
                                    destination=DeviceSpec(name="client-volume", designator=req.destination_designator,
                                                           block_size=req.block_size),
                                    destination_offset=req.destination_offset,
                                    destination_size=req.destination_size, incremental=False, deletefiles=False,
                                    paths=plan)
        return sf._run(ops, what, movers, [], restore_job(spec), None, {drive: dev})
    except (LookupError, OSError) as exc:
        return sf._refuse(ops, what, str(exc))
    finally:
        if dev is not None:
            tape.close_drive(dev)
        sf.server.drives.release(drive, ops.who)
