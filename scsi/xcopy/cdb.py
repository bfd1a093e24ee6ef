"""CDBs of EXTENDED COPY (83h) and RECEIVE COPY RESULTS (84h): SPC-4 r36f 6.5 (EXTENDED COPY(LID1))
and 6.21-6.23, 6.25 (SPC-4 splits SPC-3's four 84h service actions into RECEIVE COPY DATA(LID1),
RECEIVE COPY OPERATING PARAMETERS, RECEIVE COPY FAILURE DETAILS(LID1) and RECEIVE COPY STATUS(LID1)).

Declared once; the pyscsi command classes encode with them and the copy
manager decodes incoming CDBs with them (a bad CDB byte -> 24h/00h with C/D=1).
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any

from scsi.layout import Field, Layout, bits, reserved

EXTENDED_COPY_OPCODE = 0x83
RECEIVE_COPY_RESULTS_OPCODE = 0x84


class RcrServiceAction(IntEnum):
    COPY_STATUS = 0x00
    RECEIVE_DATA = 0x01
    OPERATING_PARAMETERS = 0x03
    FAILED_SEGMENT_DETAILS = 0x04


EXTENDED_COPY_CDB = Layout("EXTENDED COPY CDB", 16, [
    Field("opcode", 0, const=EXTENDED_COPY_OPCODE),
    reserved(1, bit=5, width=3), bits("service_action", 1, 0, 5),
    reserved(2, 8),
    Field("parameter_list_length", 10, size=4),
    reserved(14),
    Field("control", 15),
])

RECEIVE_COPY_RESULTS_CDB = Layout("RECEIVE COPY RESULTS CDB", 16, [
    Field("opcode", 0, const=RECEIVE_COPY_RESULTS_OPCODE),
    reserved(1, bit=5, width=3), bits("service_action", 1, 0, 5),
    Field("list_id", 2),
    reserved(3, 7),
    Field("allocation_length", 10, size=4),
    reserved(14),
    Field("control", 15),
])


def pyscsi_bits(layout: Layout) -> dict[str, Any]:
    """The same layout as a pyscsi ``_cdb_bits``/``_datain_bits`` dict ([mask, offset] or ('b', offset, n))."""
    out: dict[str, Any] = {}
    for f in layout.fields:
        if f.reserved:
            continue
        if f.kind == "bytes":
            out[f.name] = ("b", f.offset, f.size)
        elif f.bit is not None:
            out[f.name] = [f.max_value << f.bit, f.offset]
        else:
            out[f.name] = [f.max_value, f.offset]
    return out
