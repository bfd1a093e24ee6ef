"""CDB checks, TEST UNIT READY, REQUEST SENSE and INQUIRY as every LUN type answers them (block and tape alike).

Written once so the block and tape devices cannot drift apart; each device
supplies only what differs, its VPD pages.
"""
from __future__ import annotations

from typing import Callable

from scsi.luns.base import Lun
from scsi.result import ScsiResult
from scsi.sense import SenseKey, sense_for
from scsi.target import cdbs, errors, inquiry
from scsi.target.cdbs import INQUIRY_CDB, REQUEST_SENSE_CDB


def check_cdb(cdb: bytes) -> None:
    """Refuse a CDB too short for its opcode (or of an unknown length) and one asking for ACA (NACA set)."""
    op = cdb[0]
    length = cdbs.cdb_length(op)
    if length is None or len(cdb) < length:
        raise errors.invalid_opcode(op)
    if cdb[length - 1] & 0x04:  # NACA in the CONTROL byte: ACA is not supported
        raise errors.invalid_byte(length - 1, 2, "NACA is not supported")


def test_unit_ready(lun: Lun) -> ScsiResult:
    """TEST UNIT READY: GOOD, or the LUN's own error (raised) when it is not ready."""
    lun.test_unit_ready()
    return ScsiResult()


def request_sense(cdb: bytes) -> ScsiResult:
    """REQUEST SENSE: no deferred errors are kept, so always NO SENSE in the format asked for."""
    c = REQUEST_SENSE_CDB.decode(cdb[:6], strict=False)
    data = sense_for(SenseKey.NO_SENSE, 0, 0).encode("descriptor" if c["desc"] else "fixed")
    return ScsiResult(data=data[:c["allocation_length"]])


def inquiry_response(cdb: bytes, identity: inquiry.Identity, vpd: Callable[[int], bytes]) -> ScsiResult:
    """INQUIRY: standard data, or the VPD page ``vpd(page_code)`` gives (it raises for pages it lacks)."""
    c = INQUIRY_CDB.decode(cdb[:6], strict=False)
    if c["obsolete"]:
        raise errors.invalid_field(INQUIRY_CDB, "obsolete", "CMDDT is not supported")
    if not c["evpd"]:
        if c["page_code"]:
            raise errors.invalid_field(INQUIRY_CDB, "page_code", "PAGE CODE set without EVPD")
        data = inquiry.standard_inquiry(identity)
    else:
        data = vpd(c["page_code"])
    return ScsiResult(data=data[:c["allocation_length"]])
