"""LUN command emulation, in process: what each CDB answers, byte by byte."""
from __future__ import annotations

import struct

import pytest

from scsi.luns.file import FileBlockLun
from scsi.luns.memory import MemoryBlockLun
from scsi.result import Nexus, ScsiResult
from scsi.sense import Sense, SenseKey
from scsi.target.blockdev import BlockLunDevice
from scsi.target.scsitarget import ScsiTarget
from tests.fixtures import inproc_scsi
from tests.fixtures.inproc_scsi import key_asc as asc
from tests.fixtures.inproc_scsi import sense_of

NEXUS = Nexus("iqn.2026-11.org.test:host", "iqn.2026-11.org.test:dm", 0)


class FakeCopyManager:
    """Stands in for scsi.copymgr: records what reaches it."""

    def __init__(self):
        self.calls = []

    def execute(self, nexus, cdb, data_out, data_in_len):
        self.calls.append((nexus, bytes(cdb)))
        return ScsiResult(data=b"\x00" * 8)

    def vpd_8f(self) -> bytes:
        return bytes([0x00, 0x8F, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF])


def run(dev, cdb: bytes, data_out: bytes = b"", n: int = 4096, nexus: Nexus = NEXUS) -> ScsiResult:
    return inproc_scsi.run(dev, cdb, data_out, nexus, alloc=n)


def test_standard_inquiry_spc4_sbc3_and_no_3pc_without_copy_manager(dev):
    r = run(dev, bytes([0x12, 0, 0, 0, 96, 0]))
    assert r.ok and r.data[0] == 0x00 and r.data[2] == 0x06  # disk, SPC-4
    assert r.data[5] & 0x08 == 0  # 3PC clear
    descriptors = {int.from_bytes(r.data[i:i + 2], "big") for i in range(58, 74, 2)}
    assert {0x0460, 0x04C0} <= descriptors
    assert r.data[4] == len(r.data) - 5


def test_3pc_and_vpd_8f_when_the_lun_accepts_extended_copy(lun):
    cm = FakeCopyManager()
    dev = BlockLunDevice(lun, copy_manager=cm, accepts_xcopy=True)
    assert run(dev, bytes([0x12, 0, 0, 0, 96, 0])).data[5] & 0x08
    pages = run(dev, bytes([0x12, 1, 0, 0, 255, 0])).data
    assert 0x8F in pages[4:4 + pages[3]]
    assert run(dev, bytes([0x12, 1, 0x8F, 0, 255, 0])).data[4:] == b"\xde\xad\xbe\xef"
    cdb = bytes([0x83]) + bytes(15)
    assert run(dev, cdb, b"x" * 16).ok and cm.calls[-1] == (NEXUS, cdb)


def test_extended_copy_is_invalid_opcode_without_copy_manager(dev):
    r = run(dev, bytes([0x83]) + bytes(15))
    assert asc(r) == (SenseKey.ILLEGAL_REQUEST, 0x20, 0x00)
    assert sense_of(r).sks.byte == 0 and sense_of(r).sks.in_cdb


def test_vpd_83_has_one_naa6_designator_stable_per_serial(dev, tmp_path):
    page = run(dev, bytes([0x12, 1, 0x83, 0, 255, 0])).data
    assert page[1] == 0x83 and int.from_bytes(page[2:4], "big") == len(page) - 4
    first = page[4:8]
    assert first[1] & 0x0F == 3 and first[3] == 16  # NAA, 16 bytes
    naa = page[8:24]
    assert naa[0] >> 4 == 6
    other = tmp_path / "other.img"
    other.write_bytes(b"\0" * 4096)
    again = FileBlockLun("x", other, serial="SERIAL0001")
    try:
        assert BlockLunDevice(again).vpd(0x83)[8:24] == naa  # same serial -> same designator
    finally:
        again.close()
    serial = run(dev, bytes([0x12, 1, 0x80, 0, 255, 0])).data
    assert serial[4:] == b"SERIAL0001"


def test_unknown_vpd_page_points_at_page_code(dev):
    r = run(dev, bytes([0x12, 1, 0xC7, 0, 255, 0]))
    s = sense_of(r)
    assert (s.asc, s.ascq, s.sks.byte, s.sks.in_cdb) == (0x24, 0, 2, True)


def test_block_limits_page_length_and_limits(dev):
    page = run(dev, bytes([0x12, 1, 0xB0, 0, 255, 0])).data
    assert len(page) == 64 and page[3] == 0x3C
    assert struct.unpack(">I", page[8:12])[0] == dev.max_transfer_blocks
    assert struct.unpack(">I", page[20:24])[0] > 0  # UNMAP supported on a sparse file


def test_read_capacity_10_and_16(dev):
    r10 = run(dev, bytes([0x25]) + bytes(9)).data
    assert struct.unpack(">II", r10) == (2047, 512)
    r16 = run(dev, bytes([0x9E, 0x10]) + bytes(8) + struct.pack(">I", 32) + bytes(2)).data
    assert struct.unpack(">QI", r16[:12]) == (2047, 512) and r16[14] & 0x80  # LBPME


def test_write_then_read_10_and_16_round_trip(dev):
    data = bytes(range(256)) * 4
    w = run(dev, bytes([0x2A, 0]) + struct.pack(">IBH", 10, 0, 2) + b"\0", data)
    assert w.ok
    r = run(dev, bytes([0x28, 0]) + struct.pack(">IBH", 10, 0, 2) + b"\0")
    assert r.data == data
    r16 = run(dev, bytes([0x88, 0x08]) + struct.pack(">QI", 10, 2) + b"\0\0")
    assert r16.data == data


def test_beyond_end_of_lun_is_lba_out_of_range(dev):
    r = run(dev, bytes([0x28, 0]) + struct.pack(">IBH", 2047, 0, 2) + b"\0")
    assert asc(r) == (SenseKey.ILLEGAL_REQUEST, 0x21, 0x00)
    assert run(dev, bytes([0x28, 0]) + struct.pack(">IBH", 2048, 0, 0) + b"\0").ok  # 0 blocks at end


def test_rdprotect_is_invalid_field_with_bit_pointer(dev):
    s = sense_of(run(dev, bytes([0x28, 0x20]) + struct.pack(">IBH", 0, 0, 1) + b"\0"))
    assert (s.asc, s.sks.byte, s.sks.bit) == (0x24, 1, 7)


def test_short_write_data_writes_only_the_whole_blocks_received(dev):
    run(dev, bytes([0x2A, 0]) + struct.pack(">IBH", 0, 0, 2) + b"\0", b"a" * 1024)
    r = run(dev, bytes([0x2A, 0]) + struct.pack(">IBH", 0, 0, 2) + b"\0", b"b" * 700)  # transport cut it short
    assert r.ok
    assert run(dev, bytes([0x28, 0]) + struct.pack(">IBH", 0, 0, 2) + b"\0").data == b"b" * 512 + b"a" * 512
    assert dev.data_out_length(bytes([0x2A, 0]) + struct.pack(">IBH", 0, 0, 2) + b"\0") == 1024


def test_write_protected_lun(tmp_path):
    path = tmp_path / "ro.img"
    path.write_bytes(b"\0" * 4096)
    lun = FileBlockLun("ro", path, read_only=True)
    try:
        dev = BlockLunDevice(lun)
        r = run(dev, bytes([0x2A, 0]) + struct.pack(">IBH", 0, 0, 1) + b"\0", b"x" * 512)
        assert asc(r) == (SenseKey.DATA_PROTECT, 0x27, 0x00)
        ms = run(dev, bytes([0x1A, 0, 0x3F, 0, 255, 0])).data
        assert ms[2] & 0x80  # WP
    finally:
        lun.close()


@pytest.mark.parametrize("opcode", [0x04, 0x15, 0xA5, 0xC0, 0xFF])
def test_everything_else_is_invalid_command_operation_code(dev, opcode):
    assert asc(run(dev, bytes([opcode]) + bytes(15))) == (SenseKey.ILLEGAL_REQUEST, 0x20, 0x00)


def test_mode_sense_6_and_10_pages(dev):
    ms6 = run(dev, bytes([0x1A, 0, 0x08, 0, 255, 0])).data
    assert ms6[0] == len(ms6) - 1 and ms6[2] & 0x10 and ms6[3] == 8  # DPOFUA, block descriptor
    assert ms6[12] & 0x3F == 0x08 and ms6[14] & 0x04  # caching page, WCE
    ms10 = run(dev, bytes([0x5A, 0x08, 0x3F, 0, 0, 0, 0, 0x10, 0, 0])).data  # DBD
    assert int.from_bytes(ms10[:2], "big") == len(ms10) - 2 and ms10[6:8] == b"\0\0"
    assert asc(run(dev, bytes([0x1A, 0, 0x19, 0, 255, 0])))[1] == 0x24  # unsupported page
    assert asc(run(dev, bytes([0x1A, 0, 0xC8, 0, 255, 0])))[1] == 0x39  # saved values


def test_report_supported_opcodes_all_and_one(dev):
    cdb = bytes([0xA3, 0x0C, 0x00, 0, 0, 0]) + struct.pack(">I", 4096) + b"\0\0"
    data = run(dev, cdb).data
    n = struct.unpack(">I", data[:4])[0]
    ops = {(data[4 + i], data[4 + i + 5] & 1) for i in range(0, n, 8)}
    assert (0x28, 0) in ops and (0x9E, 1) in ops and (0x83, 1) not in ops
    one = run(dev, bytes([0xA3, 0x0C, 0x01, 0x28, 0, 0]) + struct.pack(">I", 64) + b"\0\0").data
    assert one[1] & 0x07 == 3 and one[4] == 0x28 and one[5] == 0x18  # DPO/FUA usable
    bad = run(dev, bytes([0xA3, 0x0C, 0x01, 0x9E, 0, 0]) + struct.pack(">I", 64) + b"\0\0")
    assert asc(bad)[1] == 0x24  # 9Eh has service actions
    unsupported = run(dev, bytes([0xA3, 0x0C, 0x01, 0xC0, 0, 0]) + struct.pack(">I", 64) + b"\0\0").data
    assert unsupported[1] & 0x07 == 1


def test_unmap_punches_and_get_lba_status_reports_it(dev):
    run(dev, bytes([0x2A, 0]) + struct.pack(">IBH", 0, 0, 16) + b"\0", b"\xff" * 8192)
    params = struct.pack(">HH4x", 22, 16) + struct.pack(">QI4x", 0, 16)
    assert run(dev, bytes([0x42, 0, 0, 0, 0, 0, 0]) + struct.pack(">H", 24) + b"\0", params).ok
    assert run(dev, bytes([0x28, 0]) + struct.pack(">IBH", 0, 0, 16) + b"\0").data == bytes(8192)
    st = run(dev, bytes([0x9E, 0x12]) + struct.pack(">QI", 0, 64) + b"\0\0").data
    assert st[8 + 12] & 0x0F == 1  # deallocated


def test_synchronize_cache_and_tur(dev):
    assert run(dev, bytes([0x35]) + bytes(9)).ok
    assert run(dev, bytes([0x91]) + bytes(15)).ok
    assert run(dev, bytes(6)).ok


def test_naca_is_refused(dev):
    s = sense_of(run(dev, bytes([0x00, 0, 0, 0, 0, 0x04])))
    assert (s.asc, s.sks.byte, s.sks.bit) == (0x24, 5, 2)


def test_report_luns_and_acl_hide_luns():
    a = BlockLunDevice(MemoryBlockLun("a", num_blocks=8))
    b = BlockLunDevice(MemoryBlockLun("b", num_blocks=8))
    acl = {"iqn.2026-11.org.test:only-a": frozenset({0})}
    target = ScsiTarget("iqn.2026-11.org.test:dm", {0: a, 300: b}, lambda ini: acl.get(ini))
    cdb = bytes([0xA0, 0, 0, 0, 0, 0]) + struct.pack(">I", 256) + b"\0\0"
    full = target.execute(Nexus("iqn.2026-11.org.test:any"), cdb, b"", 256).data
    assert struct.unpack(">I", full[:4])[0] == 16 and full[8:10] == b"\0\0" and full[16:18] == b"\x41\x2c"
    only_a = Nexus("iqn.2026-11.org.test:only-a", lun=300)
    assert struct.unpack(">I", target.execute(only_a, cdb, b"", 256).data[:4])[0] == 8
    r = target.execute(only_a, bytes([0x28, 0]) + struct.pack(">IBH", 0, 0, 1) + b"\0", b"", 512)
    assert asc(r) == (SenseKey.ILLEGAL_REQUEST, 0x25, 0x00)
    inq = target.execute(only_a, bytes([0x12, 0, 0, 0, 36, 0]), b"", 36).data
    assert inq[0] == 0x7F  # qualifier 3, type 1Fh
    assert asc(target.execute(only_a, bytes([0xA0]) + bytes(5) + struct.pack(">I", 8) + b"\0\0", b"", 8))[1] == 0x24
    rs = target.execute(only_a, bytes([0x03, 0, 0, 0, 18, 0]), b"", 18)
    assert rs.ok and Sense.decode(rs.data).asc == 0x25


def test_allocation_length_truncates(dev):
    assert len(run(dev, bytes([0x12, 0, 0, 0, 5, 0])).data) == 5
    assert run(dev, bytes([0x12, 0, 0, 0, 0, 0])).data == b""
