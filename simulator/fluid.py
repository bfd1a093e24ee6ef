"""Fluid mode: one orchestrator data operation = one flow, with analytic failure positions.

``copy`` runs a server-free copy (many batches of EXTENDED COPY parameter
lists) as a single flow disk -> mover -> drive.  When a fault stops the flow,
the copy layout says which batch, list and segment were in flight, and the
fault says what the orchestrator sees: COPY ABORTED with the segment number
and the failing device's sense forwarded, a timeout, or a lost connection --
the same :class:`orchestrator.ops.CopyResult` the real driver returns.
``transfer`` does the same for LAN-free and LAN transfers
(:class:`orchestrator.ops.TransferResult`).

Both are simpy process generators: ``result = yield env.process(copy(...))``.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Generator, Sequence, Union

import numpy as np
import simpy

from orchestrator.ops import (
    CopyBatches,
    CopyResult,
    Failure,
    LanFreeRead,
    LanFreeWrite,
    LanReceive,
    LanSend,
    Piece,
    StoredPiece,
    TransferResult,
)
from scsi.asc import COPY_TARGET_DEVICE_NOT_REACHABLE, POWER_ON_RESET, THIRD_PARTY_DEVICE_FAILURE
from scsi.result import Status
from scsi.sense import SenseKey, copy_aborted, sense_for
from simulator.copy_plan import CopyPlan, Position, copy_plan_from_batches
from simulator.faults import FaultHit
from simulator.san import SimSAN

log = logging.getLogger(__name__)

Proc = Generator[simpy.Event, object, object]


def copy_failure(hit: FaultHit | None, pos: Position, mover: str, reason: str = "") -> tuple[Failure, bool]:
    """What the initiator sees when a copy stops; second item: is the segment number known."""
    if hit is None:
        return Failure("error", reason or "copy stopped", device=mover), False
    if hit.timeout:
        return Failure("timeout", f"EXTENDED COPY timed out: data mover does not answer ({hit.describe()})",
                       device=mover, status=Status.TASK_ABORTED), False
    if hit.reset:
        sense = sense_for(SenseKey.UNIT_ATTENTION, *POWER_ON_RESET).encode()
        return Failure("sense", f"data mover was reset, copy lost ({hit.describe()})", device=mover,
                       sense=sense, status=Status.CHECK_CONDITION), False
    seg = min(pos.segment_in_list, 0xFFFF)
    if hit.role in ("source", "destination"):
        area = (int(Status.CHECK_CONDITION), hit.device_sense)
        sense = copy_aborted(*THIRD_PARTY_DEVICE_FAILURE, segment=seg,
                             **{hit.role: area}).encode()
        msg = f"copy {hit.role} {hit.target} failed ({hit.describe()})"
    else:
        sense = copy_aborted(*COPY_TARGET_DEVICE_NOT_REACHABLE, segment=seg).encode()
        msg = f"copy target not reachable ({hit.describe()})"
    return Failure("sense", msg, device=mover, sense=sense, status=Status.CHECK_CONDITION), True


def _refusal(san: SimSAN, mover: str, source: str, destination: str) -> FaultHit | None:
    """A fault already in place when the copy starts: the mover answers at once (or never)."""
    mv = san.mover(mover)
    if mv.state == "hung":
        return FaultHit("mover_hang", mover, "mover", timeout=True)
    if mv.state == "resetting":
        return FaultHit("mover_reset", mover, "mover", reset=True)
    if source not in san.dev.drives:
        san.disk(source)  # a clear LookupError for a device the SAN does not have
    hit = _device_refusal(san, source, "source") or _device_refusal(san, destination, "destination")
    if hit is not None:  # a restore from tape reads a drive; a backup to tape writes one
        return hit
    if not san.route_is_up(source, mover):
        return FaultHit("path_down", f"{source}->{mover}", "link")
    if not san.route_is_up(mover, destination):
        return FaultHit("path_down", f"{mover}->{destination}", "link")
    return None


def copy(san: SimSAN, mover: str, source: str, destination: str, layout: CopyPlan, *,
         job: str = "", label: str = "") -> Proc:
    """Copy ``layout.total`` bytes server-free; returns a :class:`CopyResult` (batches from the first sent)."""
    env = san.env
    t0 = env.now
    mv = san.mover(mover)
    slot = mv.slots.request()
    yield slot
    try:
        hit = _refusal(san, mover, source, destination)
        if hit is not None:
            if hit.timeout:
                yield env.timeout(san.cal.scsi_timeout_s)
            failure, known = copy_failure(hit, Position(0, 0, 0, 0), mover)
            san.attribution.failed(job, env.now, since=t0)
            san.timeline.event(env.now, "copy-failed", job or mover, mover=mover, batch=0, why=failure.message)
            return CopyResult(0, failure, 0, 0 if known else None, env.now - t0)
        path, streaming = san.server_free_path(source, mover, destination, layout.total,
                                               extents=layout.extents, commands=layout.n_lists)
        flow = san.start_flow(layout.total, path, streaming=streaming, job=job,
                              label=label or f"server-free:{mover}->{destination}",
                              meta={"source": source, "kind": "copy", "mover": mover})
        end = yield flow.finished
    finally:
        mv.slots.release(slot)
    if end.ok:
        return CopyResult(layout.n_batches, None, 0, None, env.now - t0)
    pos = layout.locate(end.bytes_done)
    cause = end.cause
    if isinstance(cause, FaultHit) and cause.role == "destination" and cause.target == source:
        cause = replace(cause, role="source")  # a drive that fails while a restore reads it
    failure, known = copy_failure(cause, pos, mover, end.reason)
    san.attribution.failed(job, env.now, flow=flow, kept_bytes=pos.done_bytes)
    san.timeline.event(env.now, "copy-failed", job or mover, mover=mover, batch=pos.batch,
                       list=pos.list_in_batch, segment=pos.segment_in_list, why=failure.message)
    return CopyResult(pos.batch, failure, pos.list_in_batch, pos.segment_in_list if known else None,
                      env.now - t0)


def copy_batches(san: SimSAN, op: CopyBatches, *, job: str = "") -> Proc:
    """Fluid execution of the orchestrator's :class:`CopyBatches` (sends ``batches[first_batch:]``)."""
    layout = copy_plan_from_batches(op.batches[op.first_batch:])
    return (yield from copy(san, op.mover, op.source, op.destination, layout, job=job))


# --------------------------------------------------------------------------- LAN-free / LAN
def _extents(pieces: Sequence[Piece]) -> int:
    n, prev = 0, None
    for p in pieces:
        if p.volume_offset != prev:
            n += 1
        prev = p.volume_offset + p.length
    return max(n, 1)


def _transfer_failure(hit: FaultHit | None, reason: str, device: str) -> Failure:
    if hit is None:
        return Failure("error", reason or "transfer stopped", device=device)
    if hit.role in ("source", "destination") and hit.device_sense:
        return Failure("sense", f"{hit.target} failed ({hit.describe()})", device=hit.target,
                       sense=hit.device_sense, status=Status.CHECK_CONDITION)
    return Failure("lost-connection", f"connection lost ({hit.describe()})", device=hit.target)


Transfer = Union[LanFreeWrite, LanSend, LanFreeRead, LanReceive]


def transfer(san: SimSAN, op: Transfer, *, client: str | None = None, job: str = "",
             source: str | None = None, destination: str | None = None) -> Proc:
    """A LAN-free or LAN transfer, backup or restore, of ``op.pieces``; returns a :class:`TransferResult`.

    ``source``/``destination`` override the SAN device names (a snapshot's disk, a pool volume's
    device).  Restores move each piece's stored (possibly compressed) size.
    """
    env = san.env
    t0 = env.now
    pieces = tuple(op.pieces)
    lengths = np.fromiter((getattr(p, "stored", p.length) for p in pieces), dtype=np.int64, count=len(pieces))
    total = float(lengths.sum())
    restore = isinstance(op, (LanFreeRead, LanReceive))
    lan = isinstance(op, (LanSend, LanReceive))
    if restore:
        src = source or (op.pool_device if isinstance(op, LanFreeRead) else _pool_device(san, op.pool_volume))
        dest = destination or op.destination
        client = client or san.owners.get(dest)
    else:
        src = source or op.source
        dest = destination or (op.pool_device if isinstance(op, LanFreeWrite) else _pool_device(san, op.pool_volume))
        client = client or san.owners.get(src)
    if client is None:
        raise LookupError(f"{type(op).__name__}: no client owns {dest if restore else src}; give client=")
    kind = "lan" if lan else "lan-free"
    agent = None if lan else san.agent_of.get(client)
    refusal = _transfer_refusal(san, src, dest, client=client, agent=agent, lan=lan, restore=restore)
    if refusal is not None:
        failure = _transfer_failure(refusal, "", dest)
        san.attribution.failed(job, env.now, since=t0)
        san.timeline.event(env.now, "transfer-failed", job or client, path=kind, why=failure.message)
        return TransferResult(0, (), failure, env.now - t0)
    if lan:
        path, streaming = san.lan_path(client, src, dest, total, extents=_extents(pieces), restore=restore)
    else:
        path, streaming = san.lan_free_path(client, src, dest, total, extents=_extents(pieces), agent=agent)
    flow = san.start_flow(total, path, streaming=streaming, job=job, label=f"{kind}:{src}->{dest}",
                          meta={"source": src, "kind": kind})
    end = yield flow.finished
    done = int(np.searchsorted(np.cumsum(lengths), end.bytes_done + 1e-6, side="right"))
    stored: tuple[StoredPiece, ...] = ()
    if not restore:
        stored = tuple(StoredPiece(p.image_offset, p.volume_offset, p.length, compressed=op.compress)
                       for p in pieces[:done])
    if end.ok:
        return TransferResult(len(pieces), stored, None, env.now - t0)
    failure = _transfer_failure(end.cause, end.reason, dest)
    san.attribution.failed(job, env.now, flow=flow, kept_bytes=float(lengths[:done].sum()))
    san.timeline.event(env.now, "transfer-failed", job or client, path=kind, pieces_done=done, why=failure.message)
    return TransferResult(done, stored, failure, env.now - t0)


def _pool_device(san: SimSAN, pool_volume: str) -> str:
    """The device behind a pool volume: the volume itself when it is a device, else the first drive."""
    if pool_volume in san.dev.drives or pool_volume in san.dev.disks:
        return pool_volume
    if not san.dev.drives:
        raise LookupError(f"pool volume {pool_volume}: the simulated SAN has no drive or pool LUN of that name")
    return sorted(san.dev.drives)[0]


def _device_refusal(san: SimSAN, name: str, role: str) -> FaultHit | None:
    if name in san.dev.drives and san.dev.drives[name].failed:
        return FaultHit("tape_error", name, role, san.dev.drives[name].sense)
    if name in san.dev.disks and not san.dev.disks[name].ready:
        return FaultHit("lun_not_ready", name, role, san.dev.disks[name].sense)
    return None


def _transfer_refusal(san: SimSAN, source: str, dest: str, *, client: str, agent: str | None = None,
                      lan: bool = False, restore: bool = False) -> FaultHit | None:
    """A fault already in place when the transfer starts: the first I/O fails at once."""
    hit = _device_refusal(san, source, "source") or _device_refusal(san, dest, "destination")
    if hit is not None:
        return hit
    if agent is not None and not san.agent(agent).up:
        return FaultHit("agent_down", agent, "agent")
    if lan and not san.lan().up:
        return FaultHit("lan_down", san.lan().name, "lan")
    hosts = (san.server, client) if (lan and restore) else (client, san.server) if lan else (client, client)
    for a, b in ((source, hosts[0]), (hosts[1], dest)):
        if a is not None and san.has_route(a, b) and not san.route_is_up(a, b):
            return FaultHit("path_down", f"{a}->{b}", "link")
    return None
