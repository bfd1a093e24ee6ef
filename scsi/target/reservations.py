"""PERSISTENT RESERVE IN for a target without persistent reservations.

PERSISTENT RESERVE OUT is not implemented, so no key can ever be registered
and no reservation held; PR IN says exactly that (empty key list, no
reservation, no supported reservation types) instead of failing, which lets
initiators that probe reservations (libiscsi, cluster software) carry on.
"""
from __future__ import annotations

from scsi.layout import Field, Layout, bits, flag

from scsi.target import errors

PRIN_CDB = Layout("PERSISTENT RESERVE IN", 10, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), Field("allocation_length", 7, size=2),
    Field("control", 9),
])
PRIN_HEADER = Layout("PR IN header", 8, [
    Field("generation", 0, size=4), Field("additional_length", 4, size=4),
])
REPORT_CAPABILITIES = Layout("PR IN REPORT CAPABILITIES", 8, [
    Field("length", 0, size=2), flag("crh", 2, 4), flag("sip_c", 2, 3), flag("atp_c", 2, 2),
    flag("ptpl_c", 2, 0), flag("tmv", 3, 7), bits("allow_commands", 3, 4, 3), flag("ptpl_a", 3, 0),
    Field("type_mask", 4, size=2),
])
READ_KEYS, READ_RESERVATION, REPORT_CAPS, READ_FULL_STATUS = 0, 1, 2, 3


def persistent_reserve_in(cdb: bytes) -> bytes:
    c = PRIN_CDB.decode(cdb[:10], strict=False)
    sa = c["service_action"]
    if sa in (READ_KEYS, READ_RESERVATION, READ_FULL_STATUS):
        data = PRIN_HEADER.encode(generation=0, additional_length=0)
    elif sa == REPORT_CAPS:
        data = REPORT_CAPABILITIES.encode(length=8, tmv=1, type_mask=0)
    else:
        raise errors.invalid_field(PRIN_CDB, "service_action", f"PR IN service action {sa:#x}")
    return data[:c["allocation_length"]]
