"""Exceptions a device backend raises, so callers can tell failures apart.

* :class:`DeviceCheckCondition` -- the device answered CHECK CONDITION.  It *is*
  pyscsi's ``SCSICheckCondition`` (so ``except SCSICheckCondition`` works) and
  carries the raw sense bytes untouched in ``.sense`` for the caller's own
  sense decoder (fixed or descriptor format, field pointers, COPY ABORTED ...).
* :class:`DeviceConnectionError` / :class:`DeviceLoginError` -- the session
  could not be set up or was lost; the command's fate is unknown.
* :class:`DeviceTimeout` -- no answer in time; the command's fate is unknown.
* :class:`DeviceStatusError` -- another SCSI status (BUSY, RESERVATION
  CONFLICT, TASK SET FULL ...).

Connection errors and timeouts derive from ``OSError`` so the CLI prints them
as one line; the orchestrator treats all of them as a SAN path failure.
"""
from __future__ import annotations

from pyscsi.pyscsi.scsi_sense import SCSICheckCondition, sense_ascq_dict, sense_key_dict

_STATUS_NAMES = {0x00: "GOOD", 0x02: "CHECK CONDITION", 0x04: "CONDITION MET", 0x08: "BUSY",
                 0x18: "RESERVATION CONFLICT", 0x28: "TASK SET FULL", 0x30: "ACA ACTIVE",
                 0x40: "TASK ABORTED"}


def status_name(status: int) -> str:
    return _STATUS_NAMES.get(status, f"status {status:#04x}")


class DeviceError(Exception):
    """Base of every failure a device backend reports (other than CHECK CONDITION)."""


class DeviceConnectionError(DeviceError, ConnectionError):
    """The transport to the device could not be set up or broke down."""


class DeviceLoginError(DeviceConnectionError):
    """The iSCSI login was refused (wrong target name, CHAP secret, ACL ...)."""


class DeviceTimeout(DeviceError, TimeoutError):
    """The device did not answer within the configured timeout."""


class DeviceStatusError(DeviceError):
    """The device returned a SCSI status other than GOOD or CHECK CONDITION."""

    def __init__(self, status: int, cdb: bytes = b""):
        self.status = status
        self.cdb = bytes(cdb)
        op = f" to opcode {cdb[0]:02X}h" if cdb else ""
        super().__init__(f"device answered {status_name(status)} ({status:#04x}){op}")


class DeviceCheckCondition(SCSICheckCondition):
    """CHECK CONDITION with the raw sense bytes passed through.

    pyscsi's own constructor only understands complete fixed-format sense, so
    this one parses just enough (key, ASC, ASCQ for fixed and descriptor format)
    to give a readable message, and never fails on short or odd sense.
    """

    def __init__(self, sense: bytes | bytearray, *, status: int = 0x02, cdb: bytes = b""):
        self.sense = bytes(sense)
        self.status = status
        self.cdb = bytes(cdb)
        self.show_data = False
        s = self.sense
        self.response_code = s[0] & 0x7F if s else 0
        self.valid = s[0] & 0x80 if s else 0
        key = asc = ascq = None
        if self.response_code in (0x70, 0x71):
            key = s[2] & 0x0F if len(s) > 2 else None
            asc = s[12] if len(s) > 12 else None
            ascq = s[13] if len(s) > 13 else None
        elif self.response_code in (0x72, 0x73):
            key = s[1] & 0x0F if len(s) > 1 else None
            asc = s[2] if len(s) > 2 else None
            ascq = s[3] if len(s) > 3 else None
        self.sense_key = key
        self.asc = asc
        self.ascq = ascq
        if self.response_code == 0x70 and len(s) >= 18:
            self.data = self.unmarshall_fixed_format_sense_data(bytearray(s))
        else:
            self.data = {k: v for k, v in (("response_code", self.response_code), ("sense_key", key),
                                           ("additional_sense_code", asc),
                                           ("additional_sense_code_qualifier", ascq)) if v is not None}
        Exception.__init__(self, self.describe())

    def describe(self) -> str:
        if not self.sense:
            return "CHECK CONDITION without sense data"
        parts = ["CHECK CONDITION"]
        if self.sense_key is not None:
            parts.append(f"{sense_key_dict.get(self.sense_key, 'sense key')} ({self.sense_key:X}h)")
        if self.asc is not None and self.ascq is not None:
            name = sense_ascq_dict.get((self.asc << 8) | self.ascq, "")
            parts.append(f"ASC/ASCQ {self.asc:02X}h/{self.ascq:02X}h" + (f" {name}" if name else ""))
        elif self.response_code not in (0x70, 0x71, 0x72, 0x73):
            parts.append(f"unknown sense response code {self.response_code:02X}h")
        return ", ".join(parts) + f"; sense {self.sense.hex(' ')}"

    def __str__(self) -> str:
        return self.describe()

    def __reduce__(self):
        return (_rebuild_check_condition, (self.sense, self.status, self.cdb))


def _rebuild_check_condition(sense: bytes, status: int, cdb: bytes) -> DeviceCheckCondition:
    return DeviceCheckCondition(sense, status=status, cdb=cdb)
