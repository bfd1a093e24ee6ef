"""Run the orchestrator's sans-I/O jobs as simpy processes on the simulated SAN.

Each job (``orchestrator.job.backup_job`` / ``restore_job``) is a generator of
operations.  :class:`SimDriver` turns the data-moving ones into fluid flows
(:mod:`simulator.fluid`), so they take simulated time and meet scheduled
faults; everything else -- catalogue, snapshots, commands, and the bytes
themselves when a run must be restorable -- goes to a *backend* executor, for
instance :class:`orchestrator.drivers.memory.MemoryDriver`.  When the
simulation stops a copy at batch k, list l, the backend is asked to move only
what the simulated mover finished, so the bytes on the pool always agree with
the result the job was given.  Many jobs run at once: one process each.

Without a backend, :class:`simulator.timing_backend.TimingBackend` (re-exported
here) answers the bookkeeping operations so that large timing runs need no bytes.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Collection, Generator, Mapping

import simpy

from orchestrator.ops import (
    AbandonObject,
    Batch,
    BeginObject,
    CommitObject,
    CopyBatches,
    CopyResult,
    Failure,
    LanFreeRead,
    LanFreeWrite,
    LanReceive,
    LanSend,
    MoverLimits,
    ObjectStarted,
    OperatingParametersResult,
    Operation,
    ReadOperatingParameters,
    Result,
    TransferResult,
    VerifyPool,
)
from orchestrator.ops.tape import (
    CopyStatusResult,
    LocateTape,
    ReadCopyStatus,
    TapeClientRead,
    TapeClientWrite,
    TapePositioned,
    TapeServerRead,
    TapeServerWrite,
)
from orchestrator.ops.tape_records import read_piece, write_piece
from scsi.copymgr.cdb import extended_copy_cdb
from scsi.copymgr.client import Client
from scsi.luns.base import LunError, SpaceCode
from scsi.result import Nexus, Status
from scsi.sense import Sense, SenseError
from simulator.calibration import MB
from simulator.fluid import copy_batches, transfer
from simulator.san import SimSAN
from simulator.timing_backend import TimingBackend

log = logging.getLogger(__name__)

Execute = Callable[[Operation], Result]


class SimDriver:
    """Executes job operations in simulated time; ``process(job)`` returns the job's simpy process."""

    def __init__(self, san: SimSAN, backend: Execute | None = None, *,
                 devices: dict[str, str] | None = None, pool_devices: Callable[[str], str] | None = None,
                 drive_pool: Any = None, tape_pools: Collection[str] | None = None,
                 exact: Mapping[str, Any] | None = None):
        self.san = san
        self.backend: Execute = backend or TimingBackend(next(iter(san.dev.drives), "")).execute
        self.devices = dict(devices or {})  # job device name -> SAN device name (snapshots, aliases)
        self.pool_devices = pool_devices  # pool volume -> device, for LAN sends
        self.drive_pool = drive_pool  # a simulator.synthetic.DrivePool: a drive is mounted per object
        self.tape_pools = None if tape_pools is None else set(tape_pools)  # pools it mounts for (None: every one)
        self._mounted: dict[str, str] = {}  # job -> drive it has mounted now
        self._given: dict[str, str] = {}  # job -> drive it was given before it started (not mounted yet)
        self._alias: dict[str, dict[str, str]] = {}  # job -> {drive the job was given: drive mounted now}
        self.exact = dict(exact or {})  # mover name -> simulator.exact.ExactMover (exact mode)
        self.ops = 0
        self._last_failed: dict[str, tuple[str, int, int, int]] = {}  # job -> (mover, list, segments, bytes)

    def _dev(self, name: str, job: str = "") -> str:
        alias = self._alias.get(job)
        if alias and name in alias:
            return alias[name]
        return self.devices.get(name, name)

    def _remount(self, job: str):
        """The job's drive failed: dismount it (the pool sets it aside) and mount another, as a server would."""
        drive = self._mounted.get(job)
        if drive is None or not self.san.drive(drive).failed:
            return
        self.drive_pool.release(drive)
        new = yield from self.drive_pool.acquire()
        if self.san.cal.tape_mount_s:
            yield self.san.env.timeout(self.san.cal.tape_mount_s)
        self._mounted[job] = new
        alias = self._alias.setdefault(job, {})
        for given, now in list(alias.items()):
            if now == drive:
                alias[given] = new
        alias.setdefault(drive, new)
        self.san.timeline.event(self.san.env.now, "remount", job, failed=drive, drive=new)

    def process(self, job: Generator[Operation, Result, Any], *, name: str, client: str | None = None,
                start: float = 0.0, drive: str | None = None, since: float | None = None) -> simpy.Process:
        """Run ``job`` from simulated time ``start``; the process's value is the job's report.

        ``drive``: a drive of the drive pool this job was already given (it queued for one before its
        job existed, `DrivePool.admit_many`); its object is mounted there instead of queueing again.
        ``since``: when the job began to wait for it (its span, and waiting time, start there)."""
        if drive is not None:
            self._given[name] = drive
        return self.san.env.process(self._run(job, name, client, start, since))

    def _run(self, job, name: str, client: str | None, start: float = 0.0, since: float | None = None):
        if start > 0:
            yield self.san.env.timeout(start)
        t0 = self.san.env.now if since is None else since
        try:
            op = next(job)
            while True:
                self.ops += 1
                result = yield from self._execute(op, name, client)
                op = job.send(result)
        except StopIteration as stop:
            if name in self._given:  # it ended before it mounted the drive it was given
                self.drive_pool.release(self._given.pop(name))
            self.san.attribution.job_span(name, t0, self.san.env.now)
            self.san.end_job(name, t0, self.san.env.now, attribution=False)  # whoever runs it reports it
            self._last_failed.pop(name, None)  # the job's COPY STATUS answers end with it
            return stop.value

    # -- operations ---------------------------------------------------------------------
    def _execute(self, op: Operation, name: str, client: str | None):
        san = self.san
        if isinstance(op, BeginObject):
            san.register_job(name, op.image_size)
            if self.drive_pool is not None and (self.tape_pools is None or op.pool in self.tape_pools):
                drive = self._given.pop(name, None) or (yield from self.drive_pool.acquire())
                if san.cal.tape_mount_s:
                    yield san.env.timeout(san.cal.tape_mount_s)
                self._mounted[name] = drive
                started = self.backend(op)
                return replace(started, pool_device=drive) if isinstance(started, ObjectStarted) else started
        if isinstance(op, (CommitObject, AbandonObject)) and name in self._mounted:
            self.drive_pool.release(self._mounted.pop(name))
            self._alias.pop(name, None)
        if name in self._mounted and isinstance(op, (CopyBatches, LanFreeWrite, LanSend, VerifyPool)):
            yield from self._remount(name)
        if isinstance(op, CopyBatches):
            if op.mover in self.exact:
                return (yield from self._copy_exact(op, name))
            return (yield from self._copy(op, name))
        if isinstance(op, (LanFreeWrite, LanSend, LanFreeRead, LanReceive)):
            return (yield from self._transfer(op, name, client))
        if isinstance(op, LocateTape):
            return (yield from self._locate(op, name))
        if isinstance(op, ReadCopyStatus):
            return self._copy_status(op, name)
        if isinstance(op, (TapeClientWrite, TapeClientRead, TapeServerWrite, TapeServerRead)):
            return (yield from self._tape_client(op, name, client))
        if isinstance(op, ReadOperatingParameters):
            mover = san.dev.movers.get(op.mover)
            if mover is not None and mover.state == "hung":
                yield san.env.timeout(san.cal.scsi_timeout_s)
                return OperatingParametersResult(failure=Failure("timeout", "RECEIVE COPY RESULTS timed out",
                                                                 op.mover))
            if mover is not None and mover.state == "resetting":
                return OperatingParametersResult(failure=Failure("lost-connection", "data mover is resetting",
                                                                 op.mover))
            if op.mover in self.exact:  # ask the engine itself (RECEIVE COPY RESULTS, OPERATING PARAMETERS)
                params = Client(self.exact[op.mover].manager, Nexus(f"sim:{name}", op.mover)).operating_parameters()
                return OperatingParametersResult(MoverLimits.from_operating_parameters(params))
        if isinstance(op, VerifyPool):
            yield from self._read_back(op, name)
        return self.backend(op)

    def _copy(self, op: CopyBatches, name: str):
        sim_op = replace(op, source=self._dev(op.source, name), destination=self._dev(op.destination, name))
        res: CopyResult = yield from copy_batches(self.san, sim_op, job=name)
        if res.ok:
            real = self.backend(op)
            return real if isinstance(real, CopyResult) and not real.ok else res
        # move in the backend only what the simulated mover completed
        sent = op.batches[op.first_batch:]
        self._remember_failure(name, op.mover, sent, res)
        done = list(sent[:res.batches_done])
        if res.batches_done < len(sent):
            part = sent[res.batches_done]
            lists = list(part.lists[:res.lists_done])
            if res.segments_done and res.lists_done < len(part.lists):  # segments COPY ABORTED reports done
                plist = part.lists[res.lists_done]
                lists.append(replace(plist, segments=plist.segments[:res.segments_done]))
            if lists:
                done.append(Batch(part.index, tuple(lists)))
        if done:
            real = self.backend(replace(op, batches=tuple(done), first_batch=0))
            if isinstance(real, CopyResult) and not real.ok:
                return real
        return res

    def _copy_exact(self, op: CopyBatches, name: str):
        """Each parameter list as a real EXTENDED COPY into the shared engine, timed by the flow model."""
        env, mover = self.san.env, self.exact[op.mover]
        t0 = env.now
        nexus = Nexus(f"sim:{name}", op.mover)
        sent = op.batches[op.first_batch:]
        for bi, batch in enumerate(sent):
            for li, plist in enumerate(batch.lists):
                if not plist.data:
                    raise ValueError(f"exact mode on {op.mover}: parameter list {plist.list_id} of batch "
                                     f"{batch.index} is not encoded (the planner needs scsi.xcopy)")
                if self.san.mover(op.mover).state == "hung":
                    waited = env.now
                    yield env.timeout(self.san.cal.scsi_timeout_s)
                    self.san.attribution.failed(name, env.now, since=waited)
                    r = None
                else:
                    r = yield from mover.extended_copy(nexus, extended_copy_cdb(len(plist.data)), plist.data,
                                                       job=name)
                if r is None:  # the mover never answered (hung): the initiator's timeout fires
                    return CopyResult(bi, Failure("timeout", "EXTENDED COPY timed out: data mover does not answer",
                                                  op.mover, status=Status.TASK_ABORTED), li, None, env.now - t0)
                if not r.ok:
                    segment = None
                    if r.sense:
                        try:
                            segment = Sense.decode(r.sense).segment
                        except SenseError:
                            pass
                    failure = Failure("sense" if r.sense else "error", "EXTENDED COPY failed", op.mover,
                                      r.sense, int(r.status))
                    self.san.attribution.failed(name, env.now)  # segments before the failed one are kept
                    return CopyResult(bi, failure, li, segment, env.now - t0)
        return CopyResult(len(sent), None, 0, None, env.now - t0)

    # -- tape pools -----------------------------------------------------------------------
    def _exact_lun(self, device: str, kind: str):
        """The exact-mode LUN named ``device`` whose ``kind`` ("is_stream"/"is_block") is true, if any."""
        for mover in self.exact.values():
            lun = mover.luns.get(device)
            if lun is not None and getattr(lun, kind, False):
                return lun
        return None

    def _tape_lun(self, device: str):
        return self._exact_lun(device, "is_stream")

    def _locate(self, op: LocateTape, name: str):
        """LOCATE (or SPACE to end of data): a reposition's time on the drive; real positions in exact mode."""
        san = self.san
        dev = self._dev(op.device, name)
        drive = san.dev.drives.get(dev)
        if drive is not None and drive.failed:
            return TapePositioned(failure=Failure("sense", "LOCATE failed", dev, drive.sense,
                                                  int(Status.CHECK_CONDITION)))
        if drive is not None and san.cal.tape_reposition_s:
            yield san.env.timeout(san.cal.tape_reposition_s)
        lun = self._tape_lun(dev)
        if lun is None:  # no bytes here: the backend may keep tapes, else positions are nominal
            try:
                return self.backend(op)
            except (TypeError, AttributeError):
                return TapePositioned(op.position or 0, 0)
        try:
            if op.position is None:
                lun.space(SpaceCode.END_OF_DATA, 0)
            else:
                lun.locate(op.position)
        except LunError as e:
            return TapePositioned(failure=Failure("sense", f"LOCATE failed: {e}", dev, e.sense,
                                                  int(Status.CHECK_CONDITION)))
        pos = lun.position()
        if hasattr(lun, "file_number"):
            return TapePositioned(pos, lun.file_number(pos))
        return TapePositioned(pos, sum(1 for o in lun.objects()[:pos] if o is None))

    def _tape_client(self, op: Any, name: str, client: str | None):
        """Records to or from tape moved by the client (LAN-free) or by the server for it (LAN): that
        transfer's time on the model; the records themselves in exact mode, else in the backend."""
        if isinstance(op, TapeClientWrite):
            timing: Any = LanFreeWrite(op.source, op.drive, 0, op.pieces, False, op.source_offset)
        elif isinstance(op, TapeServerWrite):
            timing = LanSend(op.server, op.source, op.drive, 0, op.pieces, False, op.source_offset)
        elif isinstance(op, TapeClientRead):
            timing = LanFreeRead(op.drive, 0, op.destination, op.destination_offset, op.pieces)
        else:
            timing = LanReceive(op.server, op.drive, 0, op.destination, op.destination_offset, op.pieces)
        writing = isinstance(op, (TapeClientWrite, TapeServerWrite))
        if writing:
            src, dest = self._dev(op.source, name), self._dev(op.drive, name)
        else:
            src, dest = self._dev(op.drive, name), self._dev(op.destination, name)
        res: TransferResult = yield from transfer(self.san, timing, client=client, job=name, source=src,
                                                  destination=dest)
        done = res.pieces_done
        part = replace(op, pieces=op.pieces[:done], **({"close": op.close and res.ok} if writing else {}))
        tape, disk = self._tape_lun(src if not writing else dest), self._block_lun(src if writing else dest)
        if tape is None or disk is None:  # no bytes here: the backend may keep them
            if done or (writing and part.close):
                try:
                    real = self.backend(part)
                except (TypeError, AttributeError):
                    real = None
                if isinstance(real, TransferResult) and real.failure is not None:
                    return real
            return TransferResult(done, res.stored, res.failure, res.elapsed)
        bs = disk.block_size
        for p in part.pieces:
            if writing:
                at = (op.source_offset + p.volume_offset) // bs
                write_piece(tape, disk.read(at, p.length // bs), op.fmt)
            else:
                disk.write((op.destination_offset + p.volume_offset) // bs, read_piece(tape, p.length, op.fmt))
        if writing and part.close:
            tape.write_filemarks(1)
        return TransferResult(done, res.stored, res.failure, res.elapsed)

    def _block_lun(self, device: str):
        return self._exact_lun(device, "is_block")

    def _remember_failure(self, name: str, mover: str, sent, res: CopyResult) -> None:
        """COPY STATUS of the list a fluid copy stopped in: the segments the backend was given."""
        if res.batches_done < len(sent) and res.lists_done < len(sent[res.batches_done].lists):
            plist = sent[res.batches_done].lists[res.lists_done]
            k = res.segments_done or 0
            self._last_failed[name] = (mover, plist.list_id, k, sum(s.length for s in plist.segments[:k]))

    def _copy_status(self, op: ReadCopyStatus, name: str):
        if op.mover in self.exact:
            mv = self.san.dev.movers.get(op.mover)
            if mv is not None and mv.state in ("hung", "resetting"):
                return CopyStatusResult(failure=Failure("lost-connection", "data mover does not answer",
                                                        op.mover))
            try:
                st = Client(self.exact[op.mover].manager, Nexus(f"sim:{name}", op.mover)).copy_status(op.list_id)
            except AssertionError as e:  # the mover answered CHECK CONDITION (e.g. list id unknown)
                return CopyStatusResult(failure=Failure("error", f"COPY STATUS of list {op.list_id}: {e}",
                                                        op.mover))
            return CopyStatusResult(st.segments_processed, st.bytes_transferred)
        last = self._last_failed.get(name)
        if last is not None and last[:2] == (op.mover, op.list_id):
            return CopyStatusResult(last[2], last[3])
        return CopyStatusResult(failure=Failure("error", f"no COPY STATUS of list {op.list_id} on {op.mover}",
                                                op.mover))

    def _transfer(self, op: Any, name: str, client: str | None):
        if isinstance(op, LanFreeWrite):
            src, dest = self._dev(op.source, name), self._dev(op.pool_device, name)
        elif isinstance(op, LanSend):
            src, dest = self._dev(op.source, name), self._mounted.get(name) or self._pool_device(op.pool_volume)
        elif isinstance(op, LanFreeRead):
            src, dest = self._dev(op.pool_device, name), self._dev(op.destination, name)
        else:
            src, dest = (self._mounted.get(name) or self._pool_device(op.pool_volume),
                         self._dev(op.destination, name))
        res: TransferResult = yield from transfer(self.san, op, client=client, job=name, source=src,
                                                  destination=dest)
        if res.pieces_done == 0:
            return res
        real = self.backend(op if res.ok else replace(op, pieces=op.pieces[:res.pieces_done]))
        if not isinstance(real, TransferResult):
            return res
        if real.failure is not None:
            return real
        return TransferResult(res.pieces_done, real.stored or res.stored, res.failure, res.elapsed)

    def _pool_device(self, volume: str) -> str | None:
        """The device behind a pool volume: ``pool_devices``, else the backend's catalogue if it has one."""
        if self.pool_devices is not None:
            return self._dev(self.pool_devices(volume))
        lookup = getattr(getattr(self.backend, "__self__", None), "catalogue_device", None)
        if lookup is not None:
            try:
                return self._dev(lookup(volume))
            except LookupError:
                return None
        return None

    def _read_back(self, op: VerifyPool, name: str):
        """Verification reads the object back from the pool device: time on that device, at the device's
        rate or at ``calibration.verify_mb_s`` (the backup server's own read + digest of the pool)."""
        dev = self._dev(op.pool_device, name)
        target = self.san.dev.drives.get(dev) or self.san.dev.disks.get(dev)
        total = sum(p.stored for p in op.pieces)
        if target is None or total == 0:
            return
        verify = self.san.cal.verify_mb_s * MB  # the server's own read + digest of the pool, when measured
        weight = target.resource.nominal / verify if verify > 0 else 1.0
        flow = self.san.start_flow(total, [(target.resource, weight)], job=name, label=f"verify:{dev}",
                                   meta={"kind": "verify", "source": dev}, counts=False)
        yield flow.finished


__all__ = ["SimDriver", "TimingBackend"]
