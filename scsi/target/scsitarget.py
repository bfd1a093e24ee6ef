"""One SCSI target: its LUNs, which initiator sees which, and target-level commands.

:class:`ScsiTarget` is the :class:`scsi.result.CommandHandler` the iSCSI layer
calls for every command.  REPORT LUNS lists the LUNs the initiator may reach;
a command to any other LUN fails with LOGICAL UNIT NOT SUPPORTED (INQUIRY
answers peripheral qualifier 3), so an initiator cannot even probe a LUN its
ACL does not grant.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Mapping

from scsi.layout import Field, Layout
from scsi.result import CommandHandler, Nexus, ScsiResult
from scsi.target import cdbs, errors, inquiry
from scsi.target.cdbs import INQUIRY_CDB, REPORT_LUNS_CDB
from scsi.target.errors import CheckCondition

log = logging.getLogger(__name__)

LUN_LIST_HEADER = Layout("REPORT LUNS header", 8, [Field("lun_list_length", 0, size=4)])

Acl = Callable[[str], "frozenset[int] | None"]  # initiator -> LUNs it may reach (None: all)


def lun_entry(number: int) -> bytes:
    """8-byte LUN: peripheral device addressing below 256, flat space addressing above."""
    if number < 256:
        return bytes([0, number]) + bytes(6)
    return bytes([0x40 | (number >> 8), number & 0xFF]) + bytes(6)


class ScsiTarget:
    """Routes each command to the LUN named in its nexus, after the ACL check."""

    def __init__(self, name: str, devices: Mapping[int, CommandHandler], acl: Acl | None = None):
        self.name = name
        self.devices = dict(devices)
        self.acl = acl or (lambda initiator: None)
        self.counters: Counter[str] = Counter()

    def visible_luns(self, initiator: str) -> list[int]:
        allowed = self.acl(initiator)
        return sorted(n for n in self.devices if allowed is None or n in allowed)

    def may_access(self, initiator: str, lun: int) -> bool:
        allowed = self.acl(initiator)
        return lun in self.devices and (allowed is None or lun in allowed)

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        self.counters["commands"] += 1
        try:
            if cdb[:1] == bytes([cdbs.REPORT_LUNS]):
                return self._report_luns(nexus, cdb)
            if not self.may_access(nexus.initiator, nexus.lun):
                return self._absent_lun(nexus, cdb)
        except CheckCondition as e:
            return e.result()
        return self.devices[nexus.lun].execute(nexus, cdb, data_out, data_in_len)

    def lun_reset(self, nexus: Nexus) -> int:
        """LOGICAL UNIT RESET of ``nexus.lun`` by ``nexus``: the LUN's other I_T nexuses get unit attention 29h/03h.

        The transport aborts the tasks itself and then calls this; LUNs without unit attention support ignore it.
        """
        reset = getattr(self.devices.get(nexus.lun), "lun_reset", None)
        return reset(nexus) if reset is not None else 0

    def target_reset(self, nexus: Nexus) -> int:
        """TARGET RESET by ``nexus``: every LUN is reset as by LOGICAL UNIT RESET (its tasks the transport aborted)."""
        total = 0
        for lun, device in self.devices.items():
            reset = getattr(device, "lun_reset", None)
            if reset is not None:
                total += reset(Nexus(nexus.initiator, nexus.target, lun))
        return total

    def data_out_length(self, nexus: Nexus, cdb: bytes) -> int | None:
        """Bytes of data-out ``cdb`` asks for on this LUN (None: unknown), for transport residuals."""
        device = self.devices.get(nexus.lun) if self.may_access(nexus.initiator, nexus.lun) else None
        ask = getattr(device, "data_out_length", None)
        return ask(cdb) if ask is not None else None

    def _report_luns(self, nexus: Nexus, cdb: bytes) -> ScsiResult:
        if len(cdb) < REPORT_LUNS_CDB.size:
            raise errors.invalid_byte(0, message="REPORT LUNS CDB too short")
        c = REPORT_LUNS_CDB.decode(cdb[:12], strict=False)
        if c["select_report"] not in (0x00, 0x01, 0x02):
            raise errors.invalid_field(REPORT_LUNS_CDB, "select_report")
        if c["allocation_length"] < 16:
            raise errors.invalid_field(REPORT_LUNS_CDB, "allocation_length", "allocation length below 16")
        luns = [] if c["select_report"] == 0x01 else self.visible_luns(nexus.initiator)
        body = b"".join(lun_entry(n) for n in luns)
        data = LUN_LIST_HEADER.encode(lun_list_length=len(body)) + body
        return ScsiResult(data=data[:c["allocation_length"]])

    def _absent_lun(self, nexus: Nexus, cdb: bytes) -> ScsiResult:
        if cdb[:1] == bytes([cdbs.INQUIRY]) and len(cdb) >= 6:
            c = INQUIRY_CDB.decode(cdb[:6], strict=False)
            if not c["evpd"] and not c["page_code"]:
                data = inquiry.standard_inquiry(inquiry.Identity(pdt=0x1F), qualifier=3)
                return ScsiResult(data=data[:c["allocation_length"]])
        if cdb[:1] == bytes([cdbs.REQUEST_SENSE]) and len(cdb) >= 6:
            # SPC: REQUEST SENSE to an unsupported LUN succeeds and returns that condition as data.
            return ScsiResult(data=errors.lun_not_supported(nexus.lun).sense[:cdb[4]])
        log.info("initiator %s: LUN %d is not available on %s", nexus.initiator, nexus.lun, self.name)
        return errors.lun_not_supported(nexus.lun).result()
