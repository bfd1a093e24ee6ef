"""InProcessDevice under pyscsi's own SCSI object, against a small handler."""
from __future__ import annotations

import pytest
from pyscsi.pyscsi.scsi import SCSI
from pyscsi.pyscsi.scsi_enum_command import sbc
from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

from scsi.devices import DeviceError, DeviceStatusError, InProcessDevice
from scsi.result import Nexus, ScsiResult, Status

BLOCK = 512
NBLOCKS = 64
# Sense written by hand: ILLEGAL REQUEST / LBA OUT OF RANGE (21h/00h)
LBA_OOR = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0])


class RamDisk:
    """A minimal direct-access LUN: INQUIRY, READ CAPACITY(16), READ/WRITE(16), TUR."""

    def __init__(self) -> None:
        self.blocks = bytearray(BLOCK * NBLOCKS)
        self.seen: list[tuple[Nexus, bytes, bytes, int]] = []

    def execute(self, nexus, cdb, data_out, data_in_len):
        self.seen.append((nexus, cdb, data_out, data_in_len))
        op = cdb[0]
        if op == 0x12:
            std = bytes([0x00, 0, 0x05, 0x02, 31, 0, 0, 0x02]) + b"SERVFREE" + b"RAMDISK".ljust(16) + b"0001"
            return ScsiResult(data=std[:data_in_len])
        if op == 0x00:
            return ScsiResult()
        if op == 0x9E and cdb[1] & 0x1F == 0x10:  # READ CAPACITY(16)
            data = (NBLOCKS - 1).to_bytes(8, "big") + BLOCK.to_bytes(4, "big") + bytes(20)
            return ScsiResult(data=data[:data_in_len])
        if op in (0x88, 0x8A):
            lba = int.from_bytes(cdb[2:10], "big")
            n = int.from_bytes(cdb[10:14], "big")
            if lba + n > NBLOCKS:
                return ScsiResult(Status.CHECK_CONDITION, sense=LBA_OOR)
            if op == 0x88:
                return ScsiResult(data=bytes(self.blocks[lba * BLOCK:(lba + n) * BLOCK]))
            self.blocks[lba * BLOCK:(lba + n) * BLOCK] = data_out
            return ScsiResult()
        return ScsiResult(Status.BUSY)


@pytest.fixture
def disk():
    return RamDisk()


def test_pyscsi_commands_run_through_the_handler(disk):
    dev = InProcessDevice(disk, nexus=Nexus("iqn.test:init", "iqn.test:tgt", 3))
    s = SCSI(dev, BLOCK)
    assert s.inquiry().result["t10_vendor_identification"].startswith(b"SERVFREE")
    assert dev.devicetype == 0
    cap = s.readcapacity16().result
    assert (cap["returned_lba"], cap["block_length"]) == (NBLOCKS - 1, BLOCK)
    payload = bytes(range(256)) * 4
    s.write16(5, 2, bytearray(payload))
    assert disk.blocks[5 * BLOCK:7 * BLOCK] == payload
    assert bytes(s.read16(5, 2).datain) == payload
    nexus, cdb, data_out, data_in_len = disk.seen[-1]
    assert nexus == Nexus("iqn.test:init", "iqn.test:tgt", 3)
    assert cdb[0] == 0x88 and data_out == b"" and data_in_len == 2 * BLOCK


def test_check_condition_carries_the_handlers_sense(disk):
    s = SCSI(InProcessDevice(disk), BLOCK)
    with pytest.raises(SCSICheckCondition) as info:
        s.read16(NBLOCKS, 1)
    assert info.value.sense == LBA_OOR
    assert (info.value.asc, info.value.ascq) == (0x21, 0x00)


def test_other_status_is_a_status_error(disk):
    s = SCSI(InProcessDevice(disk), BLOCK)
    with pytest.raises(DeviceStatusError, match="BUSY") as info:
        s.getlbastatus(0)
    assert info.value.status == Status.BUSY


def test_short_data_in_leaves_the_rest_zero_and_long_is_cut():
    class Short:
        def execute(self, nexus, cdb, data_out, data_in_len):
            return ScsiResult(data=b"\xff" * (data_in_len // 2 if cdb[0] == 0x9E else data_in_len + 10))

    dev = InProcessDevice(Short())
    s = SCSI.__new__(SCSI)  # skip the INQUIRY that SCSI() sends on creation
    s.device, s._blocksize = dev, BLOCK
    dev.opcodes = sbc
    cmd = s.readcapacity16()
    assert bytes(cmd.datain[:16]) == b"\xff" * 16 and bytes(cmd.datain[16:]) == bytes(16)
    inq = s.inquiry(alloclen=96)
    assert len(inq.datain) == 96 and bytes(inq.datain) == b"\xff" * 96


def test_handler_must_answer_a_scsiresult():
    class Wrong:
        def execute(self, nexus, cdb, data_out, data_in_len):
            return b"\x00" * data_in_len

    with pytest.raises(DeviceError, match="answered bytes, not a ScsiResult"):
        SCSI(InProcessDevice(Wrong()))


def test_handler_without_execute_is_rejected():
    with pytest.raises(TypeError, match="no execute"):
        InProcessDevice(object())  # type: ignore[arg-type]


def test_closed_device_refuses(disk):
    dev = InProcessDevice(disk)
    dev.close()
    with pytest.raises(DeviceError, match="closed"):
        SCSI(dev)
