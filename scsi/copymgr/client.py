"""A thin in-process client for a CopyManager: build the CDBs, decode the answers.

Used by tests, the simulator and tools that talk to a manager without a
transport in between.
"""
from __future__ import annotations

from dataclasses import dataclass

from scsi.copymgr.cdb import (SA_COPY_STATUS, SA_FAILED_SEGMENT_DETAILS, SA_OPERATING_PARAMETERS,
                              SA_RECEIVE_DATA, extended_copy_cdb, receive_copy_results_cdb)
from scsi.result import Nexus, ScsiResult
from scsi.sense import Sense
from scsi.xcopy import IdentificationCscd, ParameterList
from scsi.xcopy.results import CopyStatus, FailedSegmentDetails, OperatingParameters, ReceiveData


def cscd_for_lun(lun, *, pad: bool = False, fixed: bool = False, block_length: int | None = None,
                 **kw) -> IdentificationCscd:
    """An E4h descriptor naming ``lun`` by its NAA designator."""
    if block_length is None:
        block_length = lun.block_size if lun.is_block else 0
    return IdentificationCscd(designator=lun.naa.hex(), pdt=int(lun.pdt), pad=pad, fixed=fixed,
                              block_length=block_length, **kw)


@dataclass
class Client:
    manager: object
    nexus: Nexus = Nexus("iqn.2024-01.test:initiator", "iqn.2024-01.test:mover")

    def xcopy(self, plist: ParameterList | bytes, *, length: int | None = None) -> ScsiResult:
        raw = plist.encode() if isinstance(plist, ParameterList) else bytes(plist)
        n = len(raw) if length is None else length
        return self.manager.execute(self.nexus, extended_copy_cdb(n), raw, 0)

    def rcr(self, sa: int, list_id: int = 0, alloc: int = 1024) -> ScsiResult:
        return self.manager.execute(self.nexus, receive_copy_results_cdb(sa, list_id, alloc), b"", alloc)

    def copy_status(self, list_id: int) -> CopyStatus:
        return CopyStatus.decode(self._ok(self.rcr(SA_COPY_STATUS, list_id)))

    def operating_parameters(self) -> OperatingParameters:
        return OperatingParameters.decode(self._ok(self.rcr(SA_OPERATING_PARAMETERS)))

    def failed_segment_details(self, list_id: int) -> FailedSegmentDetails:
        return FailedSegmentDetails.decode(self._ok(self.rcr(SA_FAILED_SEGMENT_DETAILS, list_id)))

    def receive_data(self, list_id: int) -> ReceiveData:
        return ReceiveData.decode(self._ok(self.rcr(SA_RECEIVE_DATA, list_id, 1 << 20)))

    @staticmethod
    def _ok(r: ScsiResult) -> bytes:
        if not r.ok:
            raise AssertionError(f"status {r.status:#x}: {Sense.decode(r.sense) if r.sense else ''}")
        return r.data


def sense_of(r: ScsiResult) -> Sense:
    if r.ok:
        raise AssertionError("command was GOOD, expected CHECK CONDITION")
    return Sense.decode(r.sense)
