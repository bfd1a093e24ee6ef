"""CDBs the copy manager serves: EXTENDED COPY (83h) and RECEIVE COPY RESULTS (84h).

The layouts are the shared declarations of :mod:`scsi.xcopy.cdb`.
"""
from __future__ import annotations

from scsi.xcopy.cdb import (EXTENDED_COPY_CDB, EXTENDED_COPY_OPCODE, RECEIVE_COPY_RESULTS_CDB,
                            RECEIVE_COPY_RESULTS_OPCODE, RcrServiceAction)

EXTENDED_COPY = EXTENDED_COPY_OPCODE
RECEIVE_COPY_RESULTS = RECEIVE_COPY_RESULTS_OPCODE
SA_COPY_STATUS = int(RcrServiceAction.COPY_STATUS)
SA_RECEIVE_DATA = int(RcrServiceAction.RECEIVE_DATA)
SA_OPERATING_PARAMETERS = int(RcrServiceAction.OPERATING_PARAMETERS)
SA_FAILED_SEGMENT_DETAILS = int(RcrServiceAction.FAILED_SEGMENT_DETAILS)
RCR_SERVICE_ACTIONS = tuple(int(sa) for sa in RcrServiceAction)

__all__ = ["EXTENDED_COPY", "EXTENDED_COPY_CDB", "RCR_SERVICE_ACTIONS", "RECEIVE_COPY_RESULTS",
           "RECEIVE_COPY_RESULTS_CDB", "SA_COPY_STATUS", "SA_FAILED_SEGMENT_DETAILS",
           "SA_OPERATING_PARAMETERS", "SA_RECEIVE_DATA", "extended_copy_cdb", "receive_copy_results_cdb"]


def extended_copy_cdb(parameter_list_length: int) -> bytes:
    """An EXTENDED COPY(LID1) CDB for a list of that many bytes."""
    return EXTENDED_COPY_CDB.encode(parameter_list_length=parameter_list_length)


def receive_copy_results_cdb(service_action: int, list_id: int = 0, allocation_length: int = 1024) -> bytes:
    return RECEIVE_COPY_RESULTS_CDB.encode(service_action=service_action, list_id=list_id,
                                           allocation_length=allocation_length)
