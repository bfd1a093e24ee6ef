"""Bookkeeping answers for timing-only simulator runs (no bytes, no catalogue).

:class:`simulator.driver.SimDriver` uses a :class:`TimingBackend` when it is
given no real backend, so that large timing runs need no bytes at all.
"""
from __future__ import annotations

import itertools

from orchestrator.ops import (
    AbandonObject,
    BeginObject,
    CatalogueDone,
    CommandResult,
    CommitObject,
    CopyBatches,
    CopyResult,
    DigestResult,
    DigestVolume,
    LanFreeRead,
    LanFreeWrite,
    LanReceive,
    LanSend,
    MoverLimits,
    ObjectStarted,
    OperatingParametersResult,
    Operation,
    ReadOperatingParameters,
    ReleaseSnapshot,
    Result,
    RunCommand,
    SnapshotReleased,
    SnapshotResult,
    TakeSnapshot,
    TransferResult,
    VerifyPool,
    VerifyResult,
)
from orchestrator.ops.tape import CopyStatusResult, LocateTape, ReadCopyStatus, TapePositioned


class TimingBackend:
    """Bookkeeping answers for timing-only runs: objects are numbered, pools are ``pool_device``.

    ``pools`` maps a storage pool name to its device where a run has more than one pool (management
    classes sending volumes to different pools); a pool it does not name lands on ``pool_device``.
    """

    def __init__(self, pool_device: str, pool_volume: str = "SIMVOL", pools: dict[str, str] | None = None):
        self.pool_device, self.pool_volume = pool_device, pool_volume
        self.pools = dict(pools or {})
        self._ids = itertools.count(1)
        self._offset = 0

    def execute(self, op: Operation) -> Result:
        if isinstance(op, BeginObject):
            start, self._offset = self._offset, self._offset + op.image_size
            device = self.pools.get(op.pool, self.pool_device)
            return ObjectStarted(next(self._ids), self.pool_volume, device, start)
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
            # a mover that reaches tape drives implements the stream segments too (00h, 01h, 10h)
            return OperatingParametersResult(MoverLimits(max_segment_count=64, max_descriptor_list_length=4096,
                                                         total_concurrent_copies=4,
                                                         implemented_codes=(0x00, 0x01, 0x02, 0x10, 0xE4)))
        if isinstance(op, (LanFreeWrite, LanSend, LanFreeRead, LanReceive)):
            return TransferResult(len(op.pieces))
        if isinstance(op, CopyBatches):
            return CopyResult(len(op.batches) - op.first_batch)
        if isinstance(op, LocateTape):  # timing runs carry no tape contents: positions are nominal
            return TapePositioned(op.position or 0, 0)
        if isinstance(op, ReadCopyStatus):
            return CopyStatusResult()
        raise TypeError(f"the timing backend cannot answer {type(op).__name__}")


__all__ = ["TimingBackend"]
