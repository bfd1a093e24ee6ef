"""READ/WRITE(12), WRITE SAME(10/16), VERIFY(10/12/16) and the LUN RESET unit attention, byte by byte."""
from __future__ import annotations

import os
import struct

import pytest

from scsi.luns.file import FileBlockLun
from scsi.result import Nexus, ScsiResult
from scsi.sense import Sense, SenseKey
from scsi.target.blockdev import BlockLunDevice
from scsi.target.scsitarget import ScsiTarget
from tests.fixtures.inproc_scsi import A, B, run
from tests.fixtures.inproc_scsi import key_asc as asc
from tests.fixtures.inproc_scsi import sense_of as sense

BLOCKS = 2048  # sizes the conftest's file LUN


def pointer(r: ScsiResult) -> tuple[int, int | None]:
    s = sense(r)
    return s.sks.byte, s.sks.bit


def rw12(op: int, lba: int, n: int, flags: int = 0) -> bytes:
    return struct.pack(">BBIIBB", op, flags, lba, n, 0, 0)


def ws10(lba: int, n: int, flags: int = 0) -> bytes:
    return struct.pack(">BBIBHB", 0x41, flags, lba, 0, n, 0)


def ws16(lba: int, n: int, flags: int = 0) -> bytes:
    return struct.pack(">BBQIBB", 0x93, flags, lba, n, 0, 0)


def verify10(lba: int, n: int, bytchk: int = 0) -> bytes:
    return struct.pack(">BBIBHB", 0x2F, bytchk << 1, lba, 0, n, 0)


def verify12(lba: int, n: int, bytchk: int = 0) -> bytes:
    return struct.pack(">BBIIBB", 0xAF, bytchk << 1, lba, n, 0, 0)


def verify16(lba: int, n: int, bytchk: int = 0) -> bytes:
    return struct.pack(">BBQIBB", 0x8F, bytchk << 1, lba, n, 0, 0)


def read16(dev, lba: int, n: int) -> bytes:
    r = run(dev, struct.pack(">BBQIBB", 0x88, 0, lba, n, 0, 0))
    assert r.ok, r
    return r.data


ILLEGAL_FIELD = (SenseKey.ILLEGAL_REQUEST, 0x24, 0x00)
LBA_RANGE = (SenseKey.ILLEGAL_REQUEST, 0x21, 0x00)


# -- READ(12) / WRITE(12) ------------------------------------------------------------------------
def test_write12_then_read12_round_trip(dev):
    payload = os.urandom(3 * 512)
    assert run(dev, rw12(0xAA, 100, 3), payload).ok
    assert run(dev, rw12(0xA8, 100, 3)).data == payload
    assert read16(dev, 100, 3) == payload
    assert dev.counters["write_bytes"] == 3 * 512


def test_read12_write12_range_and_protect_errors(dev):
    assert asc(run(dev, rw12(0xA8, BLOCKS - 1, 2))) == LBA_RANGE
    assert asc(run(dev, rw12(0xAA, BLOCKS, 1), bytes(512))) == LBA_RANGE
    r = run(dev, rw12(0xA8, 0, 1, flags=0x20))  # RDPROTECT=001b
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 7)
    assert run(dev, rw12(0xA8, 0, 0)).data == b""


def test_write12_data_out_length_comes_from_the_12_byte_transfer_length(dev):
    assert dev.data_out_length(rw12(0xAA, 0, 7)) == 7 * 512
    assert dev.data_out_length(rw12(0xAA, 0, 7)[:10]) is None


# -- WRITE SAME --------------------------------------------------------------------------------
def test_write_same10_repeats_the_block(dev):
    block = bytes(range(256)) * 2
    assert run(dev, ws10(10, 5), block).ok
    assert read16(dev, 9, 7) == bytes(512) + block * 5 + bytes(512)


def test_write_same16_ndob_writes_zeros_without_data_out(dev):
    run(dev, rw12(0xAA, 20, 4), b"\xff" * 2048)
    assert dev.data_out_length(ws16(20, 4, flags=0x01)) == 0
    assert dev.data_out_length(ws16(20, 4)) == 512
    assert run(dev, ws16(20, 4, flags=0x01)).ok
    assert read16(dev, 20, 4) == bytes(2048)


def test_write_same_unmap_deallocates_and_reads_zero(dev, lun):
    run(dev, rw12(0xAA, 0, 64), b"\xa5" * (64 * 512))
    assert run(dev, ws16(0, 64, flags=0x08), bytes(512)).ok
    assert read16(dev, 0, 64) == bytes(64 * 512)
    status = run(dev, struct.pack(">BBQIBB", 0x9E, 0x12, 0, 32, 0, 0))
    assert status.ok and status.data[8 + 12] & 0x0F == 1  # first extent deallocated
    assert dev.counters["write_same_unmapped_bytes"] == 64 * 512


def test_write_same_zero_blocks_runs_to_the_last_lba(dev):
    assert run(dev, ws10(BLOCKS - 3, 0), b"\x11" * 512).ok
    assert read16(dev, BLOCKS - 4, 4) == bytes(512) + b"\x11" * 1536


def test_write_same_errors_point_at_the_field(dev, mem_dev):
    r = run(dev, ws10(0, 1, flags=0x10), bytes(512))  # ANCHOR
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 4)
    r = run(dev, ws16(0, 1, flags=0x04), bytes(512))  # PBDATA
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 2)
    r = run(dev, ws10(0, 1, flags=0x40), bytes(512))  # WRPROTECT
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 7)
    r = run(mem_dev, ws10(0, 1, flags=0x08), bytes(512))  # UNMAP on a fully provisioned LUN
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 3)
    assert asc(run(dev, ws10(BLOCKS - 1, 2), bytes(512))) == LBA_RANGE
    assert asc(run(dev, ws16(BLOCKS + 1, 0), bytes(512))) == LBA_RANGE
    assert asc(run(dev, ws10(0, 1), bytes(256))) == (SenseKey.ILLEGAL_REQUEST, 0x1A, 0x00)
    assert asc(run(dev, ws10(0, 1), bytes(1024))) == (SenseKey.ILLEGAL_REQUEST, 0x1A, 0x00)


def test_write_same_longer_than_the_advertised_maximum_is_refused(tmp_path):
    path = tmp_path / "big.img"
    with open(path, "wb") as f:
        f.truncate(64 * 512)
    lun = FileBlockLun("big", path)
    d = BlockLunDevice(lun, max_transfer_bytes=16 * 512)
    try:
        vpd_b0 = run(d, bytes([0x12, 1, 0xB0, 0, 64, 0])).data
        assert int.from_bytes(vpd_b0[36:44], "big") == 16
        r = run(d, ws16(0, 17), bytes(512))
        assert asc(r) == ILLEGAL_FIELD and pointer(r)[0] == 10
        assert asc(run(d, ws16(0, 0), bytes(512))) == ILLEGAL_FIELD  # 64 blocks to the end > 16
        assert run(d, ws16(48, 0), bytes(512)).ok  # 16 blocks to the end
    finally:
        d.close()
        lun.close()


def test_write_same_on_a_read_only_lun_is_data_protect(tmp_path):
    path = tmp_path / "ro.img"
    path.write_bytes(bytes(16 * 512))
    lun = FileBlockLun("ro", path, read_only=True)
    d = BlockLunDevice(lun)
    try:
        assert asc(run(d, ws10(0, 1), bytes(512))) == (SenseKey.DATA_PROTECT, 0x27, 0x00)
    finally:
        d.close()
        lun.close()


def test_thin_lun_advertises_write_same_unmap(dev, mem_dev):
    b2 = run(dev, bytes([0x12, 1, 0xB2, 0, 64, 0])).data
    assert b2[5] & 0xE0 == 0xE0  # LBPU, LBPWS, LBPWS10
    rc16 = run(dev, struct.pack(">BBQIBB", 0x9E, 0x10, 0, 32, 0, 0)).data
    assert rc16[14] & 0xC0 == 0xC0  # LBPME, LBPRZ
    assert asc(run(mem_dev, bytes([0x12, 1, 0xB2, 0, 64, 0]))) == ILLEGAL_FIELD


# -- VERIFY ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cdb", [verify10, verify12, verify16])
def test_verify_bytchk_0_and_1(dev, cdb):
    payload = os.urandom(4 * 512)
    run(dev, rw12(0xAA, 40, 4), payload)
    assert run(dev, cdb(40, 4)).ok
    assert dev.data_out_length(cdb(40, 4)) == 0
    assert dev.data_out_length(cdb(40, 4, 1)) == 4 * 512
    assert run(dev, cdb(40, 4, 1), payload).ok
    wrong = bytearray(payload)
    wrong[1000] ^= 0xFF
    r = run(dev, cdb(40, 4, 1), bytes(wrong))
    s = sense(r)
    assert (int(s.key), s.asc, s.ascq) == (SenseKey.MISCOMPARE, 0x1D, 0x00)
    assert s.information == 1000
    assert asc(run(dev, cdb(BLOCKS - 2, 4))) == LBA_RANGE
    assert run(dev, cdb(0, 0, 1)).ok


def test_verify_bytchk_3_compares_one_block_against_each(dev):
    run(dev, rw12(0xAA, 0, 3), b"\x5a" * 1536)
    assert dev.data_out_length(verify16(0, 3, 3)) == 512
    assert run(dev, verify16(0, 3, 3), b"\x5a" * 512).ok
    s = sense(run(dev, verify16(0, 4, 3), b"\x5a" * 512))  # block 3 is still zeros
    assert s.key == SenseKey.MISCOMPARE and s.information == 0


def test_verify_reserved_bytchk_protect_and_short_data_out(dev):
    r = run(dev, verify10(0, 1, 2))
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 2)
    r = run(dev, bytes([0x2F, 0x20]) + bytes(8))  # VRPROTECT
    assert asc(r) == ILLEGAL_FIELD and pointer(r) == (1, 7)
    assert asc(run(dev, verify10(0, 2, 1), bytes(512))) == (SenseKey.ILLEGAL_REQUEST, 0x1A, 0x00)


# -- REPORT SUPPORTED OPERATION CODES -------------------------------------------------------------
def one_command(dev, opcode: int) -> bytes:
    r = run(dev, struct.pack(">BBBBHIBB", 0xA3, 0x0C, 0x01, opcode, 0, 512, 0, 0))
    assert r.ok, r
    assert r.data[1] & 0x07 == 0b011, f"{opcode:#x} not reported as supported"
    return r.data[4:4 + int.from_bytes(r.data[2:4], "big")]


@pytest.mark.parametrize("opcode, usage", [
    (0xA8, bytes([0xA8, 0x18]) + b"\xff" * 8 + bytes([0x1F, 0])),
    (0xAA, bytes([0xAA, 0x18]) + b"\xff" * 8 + bytes([0x1F, 0])),
    (0x2F, bytes([0x2F, 0x16]) + b"\xff" * 4 + bytes([0x1F, 0xFF, 0xFF, 0])),
    (0xAF, bytes([0xAF, 0x16]) + b"\xff" * 8 + bytes([0x1F, 0])),
    (0x8F, bytes([0x8F, 0x16]) + b"\xff" * 12 + bytes([0x1F, 0])),
    (0x41, bytes([0x41, 0x08]) + b"\xff" * 4 + bytes([0x1F, 0xFF, 0xFF, 0])),
    (0x93, bytes([0x93, 0x09]) + b"\xff" * 12 + bytes([0x1F, 0])),
])
def test_new_commands_are_reported_with_their_cdb_usage(dev, opcode, usage):
    assert one_command(dev, opcode) == usage


def test_write_same_usage_without_unmap_on_a_fully_provisioned_lun(mem_dev):
    assert one_command(mem_dev, 0x41)[1] == 0x00
    assert one_command(mem_dev, 0x93)[1] == 0x01


def test_all_commands_list_includes_the_new_opcodes(dev):
    data = run(dev, struct.pack(">BBBBHIBB", 0xA3, 0x0C, 0, 0, 0, 4096, 0, 0)).data
    listed = {data[4 + 8 * i] for i in range(int.from_bytes(data[:4], "big") // 8)}
    assert {0xA8, 0xAA, 0x2F, 0xAF, 0x8F, 0x41, 0x93} <= listed


# -- unit attention after LUN RESET --------------------------------------------------------------
TUR = bytes(6)


def test_lun_reset_gives_the_other_nexus_one_unit_attention(mem_dev):
    assert run(mem_dev, TUR, nexus=A).ok and run(mem_dev, TUR, nexus=B).ok
    assert mem_dev.lun_reset(A) == 1
    assert run(mem_dev, TUR, nexus=A).ok  # the nexus that reset sees nothing
    assert run(mem_dev, bytes([0x12, 0, 0, 0, 36, 0]), nexus=B).ok  # INQUIRY neither reports nor clears
    assert asc(run(mem_dev, TUR, nexus=B)) == (SenseKey.UNIT_ATTENTION, 0x29, 0x03)
    assert run(mem_dev, TUR, nexus=B).ok  # reported once


def test_request_sense_returns_and_clears_the_unit_attention(mem_dev):
    run(mem_dev, TUR, nexus=B)
    mem_dev.lun_reset(A)
    r = run(mem_dev, bytes([0x03, 0, 0, 0, 18, 0]), nexus=B)
    assert r.ok and len(r.data) == 18
    s = Sense.decode(r.data)
    assert (int(s.key), s.asc, s.ascq) == (SenseKey.UNIT_ATTENTION, 0x29, 0x03)
    assert run(mem_dev, TUR, nexus=B).ok


def test_forgotten_nexus_and_target_level_reset(mem_dev):
    target = ScsiTarget("iqn.2026-11.org.test:dm", {0: mem_dev})
    target.execute(A, TUR, b"", 0)
    target.execute(B, TUR, b"", 0)
    mem_dev.attentions.forget(B.initiator)
    assert target.lun_reset(A) == 0
    target.execute(B, TUR, b"", 0)
    assert target.lun_reset(A) == 1
    assert asc(target.execute(B, TUR, b"", 0)) == (SenseKey.UNIT_ATTENTION, 0x29, 0x03)
    assert target.lun_reset(Nexus(A.initiator, A.target, 7)) == 0  # no such LUN
