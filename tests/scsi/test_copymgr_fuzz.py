"""Thousands of mutated parameter lists and CDBs: always a clean GOOD or CHECK CONDITION.

Never an exception, never a hang, and the sense always decodes -- the copy
manager sits inside a network-facing target.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.cdb import extended_copy_cdb
from scsi.copymgr.client import cscd_for_lun
from scsi.luns import MemoryBlockLun, TapeLun
from scsi.result import Nexus, Status
from scsi.sense import Sense, SenseKey
from scsi.xcopy import (BlockOffsetToBlockOffset, BlockToBlock, BlockToStream, Header, InlineToStream,
                        ParameterList, StreamToBlock, StreamToDiscard, StreamToStream, VerifyCscd,
                        WriteFilemarks)

NEXUS = Nexus("iqn.fuzz", "iqn.mover")


@functools.lru_cache(maxsize=1)
def world():
    tmp = Path(tempfile.mkdtemp(prefix="copymgr-fuzz-"))
    atexit.register(shutil.rmtree, tmp, True)
    a = MemoryBlockLun("a", num_blocks=64)
    b = MemoryBlockLun("b", block_size=4096, num_blocks=8)
    t = TapeLun("t", tmp / "t.tape", create=True, capacity=1 << 20)
    for i in range(8):
        t.write(bytes([i]) * 700)
    m = CopyManager({"a": a, "b": b, "t": t},
                    limits=CopyLimits(chunk_bytes=8192, io_depth=2, io_workers=2, max_segment_length=1 << 20))
    atexit.register(m.close)
    atexit.register(t.close)
    A, B, T = cscd_for_lun(a), cscd_for_lun(b), cscd_for_lun(t)
    seeds = [
        ParameterList(header=Header(list_id=1), cscds=(A, B),
                      segments=(BlockToBlock(src=0, dst=1, block_count=16, src_lba=0, dst_lba=1),)),
        ParameterList(header=Header(list_id=2, list_id_usage=2), cscds=(A, B),
                      segments=(BlockOffsetToBlockOffset(src=0, dst=1, byte_count=5000, src_lba=1, dst_lba=0,
                                                         src_byte_offset=7, dst_byte_offset=9),
                                VerifyCscd(src=1, tur=True))),
        ParameterList(header=Header(list_id=3), cscds=(A, T),
                      segments=(BlockToStream(src=0, dst=1, stream_transfer_length=512, block_count=4, lba=0),
                                WriteFilemarks(dst=1, filemark_count=1),
                                StreamToDiscard(src=1, stream_transfer_length=700, byte_count=700))),
        ParameterList(header=Header(list_id=4), cscds=(T, A), inline_data="00" * 32,
                      segments=(StreamToBlock(src=0, dst=1, stream_transfer_length=700, block_count=2, lba=3),
                                StreamToStream(src=0, dst=0, src_transfer_length=700, dst_transfer_length=100,
                                               byte_count=700),
                                InlineToStream(dst=0, stream_transfer_length=16, inline_offset=4, byte_count=16))),
    ]
    return m, t, [s.encode() for s in seeds]


def check(result, what: bytes) -> None:
    assert result.status in (Status.GOOD, Status.CHECK_CONDITION, Status.BUSY), what.hex()
    if result.status == Status.CHECK_CONDITION:
        sense = Sense.decode(result.sense)
        assert sense.key in (SenseKey.ILLEGAL_REQUEST, SenseKey.COPY_ABORTED), (str(sense), what.hex())


mutation = st.tuples(st.integers(0, 10_000), st.integers(0, 255))


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 3), edits=st.lists(mutation, min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 400)), extra=st.binary(max_size=40))
def test_mutated_lists_fail_cleanly(seed, edits, cut, extra):
    m, tape, seeds = world()
    raw = bytearray(seeds[seed])
    for pos, value in edits:
        raw[pos % len(raw)] = value
    if cut is not None:
        raw = raw[:cut]
    raw += extra
    tape.rewind()
    check(m.execute(NEXUS, extended_copy_cdb(len(raw)), bytes(raw), 0), bytes(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(cdb=st.binary(min_size=0, max_size=20), data=st.binary(max_size=200), opcode=st.sampled_from([0x83, 0x84]))
def test_random_cdbs_fail_cleanly(cdb, data, opcode):
    m, tape, seeds = world()
    cdb = bytes([opcode]) + cdb
    r = m.execute(NEXUS, cdb, data + seeds[0], 4096)
    check(r, cdb)
