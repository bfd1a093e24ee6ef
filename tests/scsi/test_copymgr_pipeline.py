"""The sans-I/O core: what it asks a driver to do, batch by batch.

A recording driver stands in for threads or simulated time and shows that
several chunks are outstanding at once and that reads of the next chunks
travel with writes of the previous ones.
"""
from __future__ import annotations

from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.cdb import extended_copy_cdb
from scsi.copymgr.client import Client, cscd_for_lun
from scsi.copymgr.io import BlockRead, BlockWrite, perform, IoResult
from scsi.copymgr.manager import CopyJob
from scsi.luns import MemoryBlockLun
from scsi.result import Nexus
from scsi.xcopy import BlockToBlock, Header, ParameterList


class RecordingDriver:
    def __init__(self):
        self.batches = []

    def run_batch(self, batch):
        self.batches.append(list(batch))
        out = []
        for req in batch:
            try:
                out.append(IoResult(value=perform(req)))
            except Exception as e:  # noqa: BLE001 - handed back like a real driver would
                out.append(IoResult(error=e))
        return out


def test_batches_keep_depth_chunks_in_flight_and_overlap_reads_with_writes():
    a, b = MemoryBlockLun("a", num_blocks=1024), MemoryBlockLun("b", num_blocks=1024)
    a.write(0, bytes(range(256)) * 2 * 1024)
    drv = RecordingDriver()
    limits = CopyLimits(chunk_bytes=8192, io_depth=4)  # 16 blocks per request, 4 in flight
    m = CopyManager({"a": a, "b": b}, limits=limits, driver=drv)
    pl = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(a), cscd_for_lun(b)),
                       segments=(BlockToBlock(src=0, dst=1, block_count=256, src_lba=0, dst_lba=0),))
    assert Client(m).xcopy(pl).ok
    assert b.read(0, 256) == a.read(0, 256)
    io = [[r for r in batch if isinstance(r, (BlockRead, BlockWrite))] for batch in drv.batches]
    reads = [sum(isinstance(r, BlockRead) for r in batch) for batch in io]
    writes = [sum(isinstance(r, BlockWrite) for r in batch) for batch in io]
    assert reads[:4] == [4, 4, 4, 4] and sum(reads) == 16  # 256 blocks / 16 per read
    assert writes[0] == 0 and writes[1] == 4  # chunk k is written beside the read of chunk k+4
    assert all(r.count == 16 for batch in io for r in batch if isinstance(r, BlockRead))
    assert sum(writes) == 16


def test_prepare_hands_the_generator_to_any_driver():
    """What the simulator does: take the job and carry each batch itself."""
    a, b = MemoryBlockLun("a", num_blocks=64), MemoryBlockLun("b", num_blocks=64)
    a.write(0, b"\x77" * 512 * 8)
    m = CopyManager({"a": a, "b": b})
    pl = ParameterList(header=Header(list_id=5), cscds=(cscd_for_lun(a), cscd_for_lun(b)),
                       segments=(BlockToBlock(src=0, dst=1, block_count=8, src_lba=0, dst_lba=8),))
    raw = pl.encode()
    job = m.prepare(Nexus("iqn.sim"), extended_copy_cdb(len(raw)), raw)
    assert isinstance(job, CopyJob)
    gen = job.run()
    seen = 0
    try:
        batch = next(gen)
        while True:
            seen += len(batch)
            batch = gen.send([IoResult(value=perform(r)) for r in batch])
    except StopIteration as stop:
        result = stop.value
    assert result.ok and seen >= 2 and b.read(8, 8) == b"\x77" * 4096
    m.close()


def test_abandoned_job_is_recorded_as_failed():
    a, b = MemoryBlockLun("a", num_blocks=64), MemoryBlockLun("b", num_blocks=64)
    m = CopyManager({"a": a, "b": b}, limits=CopyLimits(chunk_bytes=4096, io_depth=1))
    pl = ParameterList(header=Header(list_id=6), cscds=(cscd_for_lun(a), cscd_for_lun(b)),
                       segments=(BlockToBlock(src=0, dst=1, block_count=32, src_lba=0, dst_lba=0),))
    raw = pl.encode()
    job = m.prepare(Nexus("iqn.sim"), extended_copy_cdb(len(raw)), raw)
    gen = job.run()
    next(gen)
    gen.close()
    assert not job.result.ok and m.records.running_count() == 0
    m.close()
