"""Every segment type the mover implements, byte-exact on memory, file and tape LUNs."""
from __future__ import annotations

import os

import pytest

from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.client import Client, cscd_for_lun, sense_of
from scsi.luns import FileBlockLun, MemoryBlockLun, TapeLun
from scsi.sense import SenseKey
from scsi.xcopy import (BlockOffsetToBlockOffset, BlockToBlock, BlockToStream, Header, InlineToStream,
                        ParameterList, StreamToBlock, StreamToDiscard, StreamToStream, VerifyCscd,
                        WriteFilemarks)

SMALL = CopyLimits(chunk_bytes=4096, io_depth=3, io_workers=4)  # many chunks even for small copies


def pattern(n: int, seed: int = 1) -> bytes:
    base = bytes((i * 7 + seed) & 0xFF for i in range(251))  # prime period: no block-aligned repeats
    return (base * (n // 251 + 1))[:n]


@pytest.fixture(params=["memory", "file"])
def disks(request, tmp_path):
    if request.param == "memory":
        yield MemoryBlockLun("a", num_blocks=2048), MemoryBlockLun("b", num_blocks=2048)
    else:
        a = FileBlockLun("a", tmp_path / "a.img", size=2048 * 512)
        b = FileBlockLun("b", tmp_path / "b.img", size=2048 * 512)
        yield a, b
        a.close()
        b.close()


@pytest.fixture
def tapes(tmp_path):
    t1 = TapeLun("t1", tmp_path / "t1.tape", create=True)
    t2 = TapeLun("t2", tmp_path / "t2.tape", create=True)
    yield t1, t2
    t1.close()
    t2.close()


def manager(*luns, limits=SMALL):
    return CopyManager({l.name: l for l in luns}, limits=limits)


def run(mgr, cscds, *segments, inline=b"", list_id=1, usage=0):
    return Client(mgr).xcopy(ParameterList(header=Header(list_id=list_id, list_id_usage=usage),
                                           cscds=tuple(cscds), segments=tuple(segments),
                                           inline_data=inline.hex()))


def test_02h_block_to_block(disks):
    a, b = disks
    data = pattern(300 * 512)
    a.write(7, data)
    m = manager(a, b)
    r = run(m, [cscd_for_lun(a), cscd_for_lun(b)],
            BlockToBlock(src=0, dst=1, block_count=300, src_lba=7, dst_lba=1000))
    assert r.ok
    assert b.read(1000, 300) == data
    assert b.read(999, 1) == bytes(512) and b.read(1300, 1) == bytes(512)
    st = Client(m).copy_status(1)
    assert (st.status, st.segments_processed, st.bytes_transferred) == (1, 1, 300 * 512)


def test_02h_same_lun_and_zero_blocks(disks):
    a, _ = disks
    a.write(0, pattern(4 * 512))
    m = manager(a)
    r = run(m, [cscd_for_lun(a)], BlockToBlock(src=0, dst=0, block_count=4, src_lba=0, dst_lba=100),
            BlockToBlock(src=0, dst=0, block_count=0, src_lba=0, dst_lba=0))
    assert r.ok and a.read(100, 4) == pattern(4 * 512)
    assert Client(m).copy_status(1).segments_processed == 2


def test_02h_dc_counts_destination_blocks_across_block_sizes():
    src = MemoryBlockLun("s", block_size=512, num_blocks=64)
    dst = MemoryBlockLun("d", block_size=4096, num_blocks=16)
    src.write(0, pattern(64 * 512))
    m = manager(src, dst)
    # DC=1: 2 destination blocks = 8192 bytes = 16 source blocks
    r = run(m, [cscd_for_lun(src), cscd_for_lun(dst)],
            BlockToBlock(src=0, dst=1, dc=True, block_count=2, src_lba=4, dst_lba=3))
    assert r.ok
    assert dst.read(3, 2) == pattern(64 * 512)[4 * 512:20 * 512]
    # DC=0: 16 source blocks of 512 = 2 destination blocks
    r = run(m, [cscd_for_lun(src), cscd_for_lun(dst)],
            BlockToBlock(src=0, dst=1, block_count=16, src_lba=0, dst_lba=10), list_id=2)
    assert r.ok and dst.read(10, 2) == pattern(64 * 512)[:16 * 512]


def test_inexact_segment_rules():
    src = MemoryBlockLun("s", block_size=512, num_blocks=64)
    dst = MemoryBlockLun("d", block_size=4096, num_blocks=16)
    data = pattern(64 * 512)
    src.write(0, data)
    m = manager(src, dst)
    seg = BlockToBlock(src=0, dst=1, block_count=9, src_lba=0, dst_lba=0)  # 4608 bytes: 1 block + 512
    # no CAT, no PAD: COPY ABORTED 26h/0Ah, the whole first block was still written
    r = run(m, [cscd_for_lun(src), cscd_for_lun(dst)], seg)
    s = sense_of(r)
    assert (s.key, s.asc, s.ascq, s.segment) == (SenseKey.COPY_ABORTED, 0x26, 0x0A, 0)
    assert Client(m).copy_status(1).bytes_transferred == 4096
    # destination PAD: the last block is zero-filled
    r = run(m, [cscd_for_lun(src), cscd_for_lun(dst, pad=True)], seg, list_id=2)
    assert r.ok and dst.read(0, 2) == data[:4608] + bytes(8192 - 4608)
    # source PAD only: the residue is dropped
    dst.write(5, b"\xee" * 4096)
    r = run(m, [cscd_for_lun(src, pad=True), cscd_for_lun(dst)],
            BlockToBlock(src=0, dst=1, block_count=9, src_lba=0, dst_lba=4), list_id=3)
    assert r.ok and dst.read(4, 1) == data[:4096] and dst.read(5, 1) == b"\xee" * 4096
    # CAT: the residue joins the next segment's data
    r = run(m, [cscd_for_lun(src), cscd_for_lun(dst)],
            BlockToBlock(src=0, dst=1, block_count=9, cat=True, src_lba=0, dst_lba=8),
            BlockToBlock(src=0, dst=1, block_count=7, src_lba=20, dst_lba=9), list_id=4)
    assert r.ok
    assert dst.read(8, 2) == data[:4608] + data[20 * 512:27 * 512]


def test_0ah_byte_offsets_read_modify_write(disks):
    a, b = disks
    data = pattern(2048 * 512, seed=3)
    a.write(0, data)
    b.write(0, b"\xaa" * (2048 * 512))
    m = manager(a, b)
    n = 3 * 4096 + 1000  # crosses several chunks, unaligned at both ends
    r = run(m, [cscd_for_lun(a), cscd_for_lun(b)],
            BlockOffsetToBlockOffset(src=0, dst=1, byte_count=n, src_lba=5, dst_lba=40,
                                     src_byte_offset=100, dst_byte_offset=300))
    assert r.ok
    d0 = 40 * 512 + 300
    got = b.read(0, 200)
    expect = bytearray(b"\xaa" * (200 * 512))
    expect[d0:d0 + n] = data[5 * 512 + 100:5 * 512 + 100 + n]
    assert got == bytes(expect)
    assert Client(m).copy_status(1).bytes_transferred == n


def test_0ah_inside_one_block():
    a = MemoryBlockLun("a", num_blocks=8)
    a.write(0, pattern(8 * 512))
    m = manager(a)
    r = run(m, [cscd_for_lun(a)], BlockOffsetToBlockOffset(src=0, dst=0, byte_count=10, src_lba=0,
                                                          dst_lba=3, src_byte_offset=1, dst_byte_offset=20))
    assert r.ok
    expect = bytearray(pattern(8 * 512)[3 * 512:4 * 512])
    expect[20:30] = pattern(8 * 512)[1:11]
    assert a.read(3, 1) == bytes(expect)


def test_00h_block_to_tape_variable_and_10h_filemarks(tapes):
    t, _ = tapes
    d = MemoryBlockLun("d", num_blocks=64)
    data = pattern(20 * 512)
    d.write(2, data)
    m = manager(d, t)
    r = run(m, [cscd_for_lun(d), cscd_for_lun(t)],
            BlockToStream(src=0, dst=1, stream_transfer_length=3000, block_count=20, lba=2),
            WriteFilemarks(dst=1, filemark_count=2))
    assert r.ok
    objs = t.objects()
    assert objs[-2:] == [None, None]
    records = objs[:-2]
    assert [len(x) for x in records] == [3000, 3000, 3000, 1240]  # short last record in variable mode
    assert b"".join(records) == data
    assert Client(m).copy_status(1).bytes_transferred == len(data)


def test_00h_fixed_mode_and_01h_back(tapes):
    t, _ = tapes
    d = MemoryBlockLun("d", num_blocks=64)
    data = pattern(16 * 512, seed=9)
    d.write(0, data)
    m = manager(d, t)
    fixed = cscd_for_lun(t, fixed=True, block_length=1024)
    r = run(m, [cscd_for_lun(d), fixed], BlockToStream(src=0, dst=1, stream_transfer_length=4,
                                                       block_count=16, lba=0))
    assert r.ok and [len(x) for x in t.objects()] == [1024] * 8
    t.rewind()
    r = run(m, [fixed, cscd_for_lun(d)], StreamToBlock(src=0, dst=1, stream_transfer_length=2,
                                                       block_count=16, lba=32), list_id=2)
    assert r.ok and d.read(32, 16) == data


def test_01h_tape_to_block_variable_records(tapes):
    t, _ = tapes
    data = pattern(10 * 512, seed=5)
    for i in range(0, len(data), 1000):
        t.write(data[i:i + 1000])
    t.rewind()
    d = MemoryBlockLun("d", num_blocks=64)
    m = manager(d, t)
    r = run(m, [cscd_for_lun(t), cscd_for_lun(d)],
            StreamToBlock(src=0, dst=1, stream_transfer_length=1000, block_count=10, lba=1))
    assert r.ok and d.read(1, 10) == data


def test_01h_filemark_is_data_underrun_with_forwarded_sense(tapes):
    t, _ = tapes
    t.write(b"x" * 512)
    t.write_filemarks(1)
    t.rewind()
    d = MemoryBlockLun("d", num_blocks=64)
    m = manager(d, t)
    r = run(m, [cscd_for_lun(t), cscd_for_lun(d)],
            StreamToBlock(src=0, dst=1, stream_transfer_length=512, block_count=4, lba=0))
    s = sense_of(r)
    assert (s.key, s.asc, s.ascq, s.segment) == (SenseKey.COPY_ABORTED, 0x0D, 0x04, 0)
    status, fwd = s.forwarded()["source"]
    assert status == 0x02 and fwd.filemark and (fwd.asc, fwd.ascq) == (0x00, 0x01)


def test_03h_tape_to_tape_and_06h_discard(tapes):
    t1, t2 = tapes
    for i in range(5):
        t1.write(pattern(700, seed=i))
    t1.rewind()
    m = manager(t1, t2)
    r = run(m, [cscd_for_lun(t1), cscd_for_lun(t2)],
            StreamToDiscard(src=0, stream_transfer_length=700, byte_count=700),
            StreamToStream(src=0, dst=1, src_transfer_length=700, dst_transfer_length=500, byte_count=2100))
    assert r.ok
    assert b"".join(t2.objects()) == b"".join(pattern(700, seed=i) for i in (1, 2, 3))
    assert [len(x) for x in t2.objects()] == [500, 500, 500, 500, 100]
    assert Client(m).copy_status(1).bytes_transferred == 2100


def test_04h_inline_data_to_tape(tapes):
    t, _ = tapes
    d = MemoryBlockLun("d", num_blocks=8)
    m = manager(d, t)
    inline = b"HEADER--" + b"label-0123456789"
    r = run(m, [cscd_for_lun(t)], InlineToStream(dst=0, stream_transfer_length=64, inline_offset=8,
                                                 byte_count=16), inline=inline)
    assert r.ok and t.objects() == [b"label-0123456789"]


def test_07h_verify(disks):
    a, _ = disks
    m = manager(a)
    r = run(m, [cscd_for_lun(a)], VerifyCscd(src=0, tur=True), VerifyCscd(src=0))
    assert r.ok and Client(m).copy_status(1).segments_processed == 2


def test_0dh_held_data_and_receive_data(disks):
    a, b = disks
    a.write(0, pattern(4 * 512))
    m = manager(a, b)
    r = run(m, [cscd_for_lun(a), cscd_for_lun(b)],
            BlockToBlock(type_code=0x0D, src=0, dst=1, block_count=4, src_lba=0, dst_lba=8))
    assert r.ok and b.read(8, 4) == pattern(4 * 512)
    c = Client(m)
    assert bytes.fromhex(c.receive_data(1).data) == pattern(4 * 512)
    assert c.receive_data(1).data == ""  # handed out once
    # usage 10b: held data is not kept and HDD says so
    r = run(m, [cscd_for_lun(a), cscd_for_lun(b)],
            BlockToBlock(type_code=0x0D, src=0, dst=1, block_count=4, src_lba=0, dst_lba=8), list_id=2, usage=2)
    assert r.ok and c.copy_status(2).hdd and c.receive_data(2).data == ""


def test_large_pipelined_copy_between_files(tmp_path):
    n = 8 << 20
    a = FileBlockLun("a", tmp_path / "a", size=n)
    b = FileBlockLun("b", tmp_path / "b", size=n)
    data = os.urandom(n)
    a.write(0, data)
    m = CopyManager({"a": a, "b": b})  # default 2 MiB chunks, 4 in flight
    segs = [BlockOffsetToBlockOffset(src=0, dst=1, byte_count=n, src_lba=0, dst_lba=0)]
    r = run(m, [cscd_for_lun(a), cscd_for_lun(b)], *segs)
    assert r.ok and b.read(0, n // 512) == data
    m.close()
    a.close()
    b.close()
