"""CHECK CONDITION answers of the LUN emulation, with sense from scsi.sense.

Command code raises :class:`CheckCondition` anywhere; the dispatcher turns it
into a :class:`scsi.result.ScsiResult` so no handler builds sense bytes itself.
"""
from __future__ import annotations

from scsi.layout import Layout
from scsi.result import ScsiResult, Status
from scsi.sense import SenseKey, illegal_request, sense_for


class CheckCondition(Exception):
    """A command that ends in CHECK CONDITION with the given sense bytes."""

    def __init__(self, sense: bytes, message: str = ""):
        super().__init__(message or "check condition")
        self.sense = sense

    def result(self) -> ScsiResult:
        return ScsiResult(status=Status.CHECK_CONDITION, sense=self.sense)


def invalid_field(layout: Layout, name: str, message: str = "") -> CheckCondition:
    """INVALID FIELD IN CDB (24h/00h) pointing at field ``name`` of ``layout``."""
    f = layout.field(name)
    sense = illegal_request(0x24, 0x00, field=f.offset, bit=f.msb, in_cdb=True).encode()
    return CheckCondition(sense, message or f"{layout.name}: invalid {name}")


def invalid_byte(offset: int, bit: int | None = None, message: str = "") -> CheckCondition:
    sense = illegal_request(0x24, 0x00, field=offset, bit=bit, in_cdb=True).encode()
    return CheckCondition(sense, message or f"invalid CDB byte {offset}")


def invalid_opcode(opcode: int) -> CheckCondition:
    """INVALID COMMAND OPERATION CODE (20h/00h), pointing at byte 0."""
    sense = illegal_request(0x20, 0x00, field=0, bit=7, in_cdb=True).encode()
    return CheckCondition(sense, f"opcode {opcode:#04x} not supported")


def lba_out_of_range(lba: int, count: int, num_blocks: int) -> CheckCondition:
    sense = illegal_request(0x21, 0x00).encode()
    return CheckCondition(sense, f"LBA {lba}+{count} beyond {num_blocks} blocks")


def lun_not_supported(lun: int) -> CheckCondition:
    sense = illegal_request(0x25, 0x00).encode()
    return CheckCondition(sense, f"LUN {lun} is not available to this initiator")


def param_list_length_error() -> CheckCondition:
    return CheckCondition(illegal_request(0x1A, 0x00).encode(), "parameter list length error")


def saving_not_supported(layout: Layout, name: str) -> CheckCondition:
    f = layout.field(name)
    sense = illegal_request(0x39, 0x00, field=f.offset, bit=f.msb, in_cdb=True).encode()
    return CheckCondition(sense, "saving parameters not supported")


def write_protected() -> CheckCondition:
    return CheckCondition(sense_for(SenseKey.DATA_PROTECT, 0x27, 0x00).encode(), "write protected")
