"""EXTENDED COPY (LID1) and RECEIVE COPY RESULTS as pyscsi commands.

They follow pyscsi's own ``scsi_cdb_*`` classes (``_cdb_bits``, ``unmarshall``)
so that ``SCSI(device).execute(cmd)`` runs them over any pyscsi device; the
bytes come from the single declarations in :mod:`scsi.xcopy.cdb` and
:mod:`scsi.xcopy.results`, and ``cmd.unmarshall()`` leaves a typed object in
``cmd.result``.
"""
from __future__ import annotations

from typing import Any

from pyscsi.pyscsi.scsi_command import SCSICommand
from pyscsi.pyscsi.scsi_enum_command import spc

from scsi.sense import Sense, SenseKey, sks_from_bytes
from scsi.xcopy.cdb import (EXTENDED_COPY_CDB, EXTENDED_COPY_OPCODE, RECEIVE_COPY_RESULTS_CDB,
                            RECEIVE_COPY_RESULTS_OPCODE, RcrServiceAction, pyscsi_bits)
from scsi.xcopy.param_list import ParameterList
from scsi.xcopy.results import CopyStatus, FailedSegmentDetails, OperatingParameters, ReceiveData

__all__ = [
    "ExtendedCopy", "ReceiveCopyResults", "RcrServiceAction", "CopyStatus", "FailedSegmentDetails",
    "OperatingParameters", "ReceiveData", "extended_copy", "receive_copy_results", "copy_status",
    "operating_parameters", "failed_segment_details", "receive_data", "sense_from_exception",
]

RESULT_TYPES = {
    RcrServiceAction.COPY_STATUS: CopyStatus,
    RcrServiceAction.RECEIVE_DATA: ReceiveData,
    RcrServiceAction.OPERATING_PARAMETERS: OperatingParameters,
    RcrServiceAction.FAILED_SEGMENT_DETAILS: FailedSegmentDetails,
}
DEFAULT_ALLOCATION = {
    RcrServiceAction.COPY_STATUS: 12,
    RcrServiceAction.RECEIVE_DATA: 1024,
    RcrServiceAction.OPERATING_PARAMETERS: 1024,
    RcrServiceAction.FAILED_SEGMENT_DETAILS: 1024,
}


def _opcode(opcode: Any, code: int, name: str) -> Any:
    """pyscsi OpCode to use: the given one, or spc's (checked to be the right operation code)."""
    op = opcode if opcode is not None else getattr(spc, name)
    if op.value != code:
        raise ValueError(f"{name} needs operation code {code:02X}h, got {op.value:02X}h ({op.name})")
    return op


class ExtendedCopy(SCSICommand):
    """EXTENDED COPY (LID1): opcode 83h, service action 00h, PARAMETER LIST LENGTH in bytes 10-13."""

    _cdb_bits = pyscsi_bits(EXTENDED_COPY_CDB)

    def __init__(self, opcode: Any = None, param_list: bytes | ParameterList = b""):
        data = param_list.encode() if isinstance(param_list, ParameterList) else bytes(param_list)
        op = _opcode(opcode, EXTENDED_COPY_OPCODE, "EXTENDED_COPY")
        SCSICommand.__init__(self, op, len(data), 0)
        self.dataout = bytearray(data)
        self.cdb = bytearray(EXTENDED_COPY_CDB.encode(service_action=0, parameter_list_length=len(data)))

    @property
    def param_list(self) -> ParameterList:
        return ParameterList.decode(bytes(self.dataout))

    def unmarshall(self, **kwargs: Any) -> None:
        self.result = {}  # EXTENDED COPY has no data-in

    @classmethod
    def unmarshall_cdb(cls, cdb: bytes) -> dict[str, Any]:
        return EXTENDED_COPY_CDB.decode(bytes(cdb))


class ReceiveCopyResults(SCSICommand):
    """RECEIVE COPY RESULTS (84h) for SA 00h, 01h, 03h, 04h; ``unmarshall()`` gives the typed answer."""

    _cdb_bits = pyscsi_bits(RECEIVE_COPY_RESULTS_CDB)

    def __init__(self, opcode: Any = None, service_action: int = RcrServiceAction.OPERATING_PARAMETERS,
                 list_id: int = 0, alloc_len: int | None = None):
        try:
            self.service_action = RcrServiceAction(service_action)
        except ValueError:
            raise ValueError(f"RECEIVE COPY RESULTS service action {service_action:02X}h is not one of "
                             f"{', '.join(f'{s.value:02X}h {s.name}' for s in RcrServiceAction)}") from None
        if alloc_len is None:
            alloc_len = DEFAULT_ALLOCATION[self.service_action]
        op = _opcode(opcode, RECEIVE_COPY_RESULTS_OPCODE, "RECEIVE_COPY_RESULTS")
        SCSICommand.__init__(self, op, 0, alloc_len)
        self.list_id = list_id
        self.cdb = bytearray(RECEIVE_COPY_RESULTS_CDB.encode(
            service_action=int(self.service_action), list_id=list_id, allocation_length=alloc_len))

    def unmarshall(self, **kwargs: Any) -> None:
        self.result = self.unmarshall_datain(self.datain, service_action=self.service_action)

    @classmethod
    def unmarshall_datain(cls, data: bytes, service_action: int = RcrServiceAction.OPERATING_PARAMETERS):
        return RESULT_TYPES[RcrServiceAction(service_action)].decode(bytes(data))

    @classmethod
    def marshall_datain(cls, result) -> bytes:
        """The copy manager's side: encode a CopyStatus / ReceiveData / OperatingParameters / FailedSegmentDetails."""
        return result.encode()

    @classmethod
    def unmarshall_cdb(cls, cdb: bytes) -> dict[str, Any]:
        return RECEIVE_COPY_RESULTS_CDB.decode(bytes(cdb))


# -- the pyscsi ``SCSI`` object way: run and unmarshall ------------------------------------
def extended_copy(scsi: Any, param_list: bytes | ParameterList) -> ExtendedCopy:
    """Send EXTENDED COPY through a pyscsi ``SCSI`` object (raises its CheckCondition on failure)."""
    cmd = ExtendedCopy(getattr(getattr(scsi.device, "opcodes", None), "EXTENDED_COPY", None), param_list)
    scsi.execute(cmd)
    return cmd


def receive_copy_results(scsi: Any, service_action: int, list_id: int = 0, alloc_len: int | None = None):
    """Send RECEIVE COPY RESULTS and return the typed answer."""
    op = getattr(getattr(scsi.device, "opcodes", None), "RECEIVE_COPY_RESULTS", None)
    cmd = ReceiveCopyResults(op, service_action, list_id, alloc_len)
    scsi.execute(cmd)
    cmd.unmarshall()
    return cmd.result


def copy_status(scsi: Any, list_id: int) -> CopyStatus:
    return receive_copy_results(scsi, RcrServiceAction.COPY_STATUS, list_id)


def operating_parameters(scsi: Any) -> OperatingParameters:
    return receive_copy_results(scsi, RcrServiceAction.OPERATING_PARAMETERS)


def failed_segment_details(scsi: Any, list_id: int) -> FailedSegmentDetails:
    return receive_copy_results(scsi, RcrServiceAction.FAILED_SEGMENT_DETAILS, list_id)


def receive_data(scsi: Any, list_id: int, alloc_len: int = 1024) -> ReceiveData:
    return receive_copy_results(scsi, RcrServiceAction.RECEIVE_DATA, list_id, alloc_len)


def sense_from_exception(exc: BaseException) -> Sense | None:
    """The sense of a pyscsi ``CheckCondition`` (or any exception carrying sense).

    Backends that pass the raw bytes through (attribute ``raw_sense``,
    ``sense_data`` or a bytes-valued ``sense``) get them decoded exactly;
    otherwise the fields pyscsi itself unpacked from fixed-format sense are used.
    """
    for name in ("raw_sense", "sense_data", "sense"):
        value = getattr(exc, name, None)
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value):
            return Sense.decode(bytes(value))
        if isinstance(value, Sense):
            return value
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and "sense_key" in data:
        sks_raw = ((data.get("sksv", 0) << 23) | data.get("sense_key_specific_information", 0)).to_bytes(3, "big")
        return Sense(response_code=data.get("response_code", 0x70), key=SenseKey(data["sense_key"]),
                     asc=data.get("additional_sense_code", 0), ascq=data.get("additional_sense_code_qualifier", 0),
                     information=data.get("information") if data.get("valid") else None,
                     command_specific=data.get("command_specific_information", 0),
                     sks=sks_from_bytes(data["sense_key"], sks_raw),
                     fru=data.get("field_replaceable_unit_code", 0))
    return None
