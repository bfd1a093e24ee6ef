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

Without a backend, :class:`TimingBackend` answers the bookkeeping operations
so that large timing runs need no bytes at all.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from typing import Any, Callable, Generator

import simpy

from orchestrator.ops import (AbandonObject, Batch, BeginObject, CatalogueDone, CommandResult, CommitObject,
                              CopyBatches, CopyResult, DigestResult, DigestVolume, Failure,
                              LanFreeWrite, LanSend, MoverLimits, ObjectStarted, Operation,
                              OperatingParametersResult, ReadOperatingParameters, ReleaseSnapshot, Result,
                              RunCommand, SnapshotReleased, SnapshotResult, TakeSnapshot, TransferResult,
                              VerifyPool, VerifyResult)
from simulator.fluid import copy_batches, transfer
from simulator.san import SimSAN

log = logging.getLogger(__name__)

Execute = Callable[[Operation], Result]


class TimingBackend:
    """Bookkeeping answers for timing-only runs: objects are numbered, pools are ``pool_device``."""

    def __init__(self, pool_device: str, pool_volume: str = "SIMVOL"):
        self.pool_device, self.pool_volume = pool_device, pool_volume
        self._ids = itertools.count(1)
        self._offset = 0

    def execute(self, op: Operation) -> Result:
        if isinstance(op, BeginObject):
            start, self._offset = self._offset, self._offset + op.image_size
            return ObjectStarted(next(self._ids), self.pool_volume, self.pool_device, start)
        if isinstance(op, (CommitObject, AbandonObject)):
            return CatalogueDone(op.object_id)
        if isinstance(op, RunCommand):
            return CommandResult(0, "simulated")
        if isinstance(op, TakeSnapshot):
            return SnapshotResult(True, op.source, designator="simulated")
        if isinstance(op, ReleaseSnapshot):
            return SnapshotReleased()
        if isinstance(op, VerifyPool):
            return VerifyResult(True)
        if isinstance(op, DigestVolume):
            return DigestResult(())
        if isinstance(op, ReadOperatingParameters):
            return OperatingParametersResult(MoverLimits(max_segment_count=64, max_descriptor_list_length=4096,
                                                         total_concurrent_copies=4))
        if isinstance(op, (LanFreeWrite, LanSend)):
            return TransferResult(len(op.pieces))
        if isinstance(op, CopyBatches):
            return CopyResult(len(op.batches) - op.first_batch)
        raise TypeError(f"the timing backend cannot answer {type(op).__name__}")


class SimDriver:
    """Executes job operations in simulated time; ``process(job)`` returns the job's simpy process."""

    def __init__(self, san: SimSAN, backend: Execute | None = None, *,
                 devices: dict[str, str] | None = None, pool_devices: Callable[[str], str] | None = None):
        self.san = san
        self.backend: Execute = backend or TimingBackend(next(iter(san.dev.drives), "")).execute
        self.devices = dict(devices or {})  # job device name -> SAN device name (snapshots, aliases)
        self.pool_devices = pool_devices  # pool volume -> device, for LAN sends
        self.ops = 0

    def _dev(self, name: str) -> str:
        return self.devices.get(name, name)

    def process(self, job: Generator[Operation, Result, Any], *, name: str, client: str | None = None
                ) -> simpy.Process:
        return self.san.env.process(self._run(job, name, client))

    def _run(self, job, name: str, client: str | None):
        try:
            op = next(job)
            while True:
                self.ops += 1
                result = yield from self._execute(op, name, client)
                op = job.send(result)
        except StopIteration as stop:
            return stop.value

    # -- operations ---------------------------------------------------------------------
    def _execute(self, op: Operation, name: str, client: str | None):
        san = self.san
        if isinstance(op, BeginObject):
            san.register_job(name, op.image_size)
        if isinstance(op, CopyBatches):
            return (yield from self._copy(op, name))
        if isinstance(op, (LanFreeWrite, LanSend)):
            return (yield from self._transfer(op, name, client))
        if isinstance(op, ReadOperatingParameters):
            mover = san.dev.movers.get(op.mover)
            if mover is not None and mover.state == "hung":
                yield san.env.timeout(san.cal.scsi_timeout_s)
                return OperatingParametersResult(failure=Failure("timeout", "RECEIVE COPY RESULTS timed out",
                                                                 op.mover))
            if mover is not None and mover.state == "resetting":
                return OperatingParametersResult(failure=Failure("lost-connection", "data mover is resetting",
                                                                 op.mover))
        if isinstance(op, VerifyPool):
            yield from self._read_back(op, name)
        return self.backend(op)

    def _copy(self, op: CopyBatches, name: str):
        sim_op = replace(op, source=self._dev(op.source), destination=self._dev(op.destination))
        res: CopyResult = yield from copy_batches(self.san, sim_op, job=name)
        if res.ok:
            real = self.backend(op)
            return real if isinstance(real, CopyResult) and not real.ok else res
        # move in the backend only what the simulated mover completed
        sent = op.batches[op.first_batch:]
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

    def _transfer(self, op: LanFreeWrite | LanSend, name: str, client: str | None):
        dest = None
        if isinstance(op, LanFreeWrite):
            dest = self._dev(op.pool_device)
        elif self.pool_devices is not None:
            dest = self._dev(self.pool_devices(op.pool_volume))
        res: TransferResult = yield from transfer(self.san, op, client=client, job=name,
                                                  source=self._dev(op.source), destination=dest)
        if res.pieces_done == 0:
            return res
        real = self.backend(op if res.ok else replace(op, pieces=op.pieces[:res.pieces_done]))
        if not isinstance(real, TransferResult):
            return res
        if real.failure is not None:
            return real
        return TransferResult(res.pieces_done, real.stored or res.stored, res.failure, res.elapsed)

    def _read_back(self, op: VerifyPool, name: str):
        """Verification reads the object back from the pool device: time on that device."""
        dev = self._dev(op.pool_device)
        target = self.san.dev.drives.get(dev) or self.san.dev.disks.get(dev)
        total = sum(p.stored for p in op.pieces)
        if target is None or total == 0:
            return
        flow = self.san.start_flow(total, [(target.resource, 1.0)], job="", label=f"verify:{dev}",
                                   meta={"kind": "verify", "source": dev})
        yield flow.finished


__all__ = ["SimDriver", "TimingBackend"]
