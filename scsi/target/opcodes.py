"""REPORT SUPPORTED OPERATION CODES (SPC-4 r36f 6.35): the command table a LUN answers with.

Each supported command is listed once with its CDB usage data (which bits of
each CDB byte the LUN looks at); the all-commands and one-command formats
and the timeouts descriptor are built from that table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from scsi.layout import Field, Layout, bits, flag

from scsi.target import cdbs, errors
from scsi.target.cdbs import RSOC_CDB


@dataclass(frozen=True)
class CommandInfo:
    opcode: int
    service_action: int | None
    usage: bytes  # CDB usage data, byte 0 is the opcode

    @property
    def servactv(self) -> bool:
        return self.service_action is not None


@dataclass(frozen=True)
class Command:
    """One entry of a device's command table: what REPORT SUPPORTED OPERATION CODES lists and who runs it.

    ``needs`` names a feature the LUN must have for the command to exist ("" always; the device
    decides which features it has, e.g. "thin" or "xcopy").
    """

    opcode: int
    service_action: int | None
    usage_hex: str
    run: Callable[..., Any]
    needs: str = ""

    @classmethod
    def each(cls, opcode: int, service_actions, usage_hex: str, run: Callable[..., Any],
             needs: str = "") -> tuple["Command", ...]:
        """One entry per service action, all run by ``run`` with the same usage data."""
        return tuple(cls(opcode, sa, usage_hex, run, needs) for sa in service_actions)

    @classmethod
    def all_of(cls, infos: tuple[CommandInfo, ...], run: Callable[..., Any], needs: str = "") -> tuple["Command", ...]:
        """Entries for commands whose usage data is declared elsewhere (the copy manager's)."""
        return tuple(cls(i.opcode, i.service_action, i.usage.hex(" "), run, needs) for i in infos)

    @property
    def info(self) -> CommandInfo:
        return CommandInfo(self.opcode, self.service_action, bytes.fromhex(self.usage_hex))


def _u(*parts: int | bytes) -> bytes:
    out = b""
    for p in parts:
        out += p if isinstance(p, bytes) else bytes([p])
    return out


FF4 = b"\xff" * 4
XCOPY_COMMANDS = (
    CommandInfo(cdbs.EXTENDED_COPY, 0x00, _u(0x83, 0x1F, b"\0" * 8, FF4, 0, 0)),
    *(CommandInfo(cdbs.RECEIVE_COPY_RESULTS, sa, _u(0x84, 0x1F, 0xFF, b"\0" * 7, FF4, 0, 0))
      for sa in (0x00, 0x01, 0x03, 0x04)),
)

ALL_DESCRIPTOR = Layout("command descriptor", 8, [
    Field("opcode", 0), Field("service_action", 2, size=2), flag("ctdp", 5, 1), flag("servactv", 5, 0),
    Field("cdb_length", 6, size=2),
])
ONE_COMMAND = Layout("one-command parameter data", 4, [
    flag("ctdp", 1, 7), bits("support", 1, 0, 3), Field("cdb_size", 2, size=2),
])
TIMEOUTS = Layout("command timeouts descriptor", 12, [
    Field("length", 0, size=2), Field("command_specific", 3), Field("nominal", 4, size=4),
    Field("recommended", 8, size=4),
])
SUPPORTED_STANDARD = 0b011
NOT_SUPPORTED = 0b001


def _timeouts() -> bytes:
    return TIMEOUTS.encode(length=0x0A, nominal=0, recommended=30)


def report_supported_opcodes(cdb: bytes, table: tuple[CommandInfo, ...]) -> bytes:
    """The answer to one REPORT SUPPORTED OPERATION CODES CDB (untrimmed)."""
    c = RSOC_CDB.decode(cdb[:RSOC_CDB.size], strict=False)
    rctd, options = c["rctd"], c["options"]
    if options == 0:
        body = b""
        for info in table:
            body += ALL_DESCRIPTOR.encode(opcode=info.opcode, service_action=info.service_action or 0,
                                          ctdp=rctd, servactv=int(info.servactv), cdb_length=len(info.usage))
            if rctd:
                body += _timeouts()
        return len(body).to_bytes(4, "big") + body
    op, sa = c["requested_opcode"], c["requested_sa"]
    by_op = [i for i in table if i.opcode == op]
    has_sa = any(i.servactv for i in by_op)
    if options == 1:
        if has_sa:
            raise errors.invalid_field(RSOC_CDB, "options", f"opcode {op:#04x} has service actions")
        match = by_op[0] if by_op else None
    elif options == 2:
        if by_op and not has_sa:
            raise errors.invalid_field(RSOC_CDB, "options", f"opcode {op:#04x} has no service actions")
        match = next((i for i in by_op if i.service_action == sa), None)
    elif options == 3:
        match = next((i for i in by_op if not i.servactv or i.service_action == sa), None)
    else:
        raise errors.invalid_field(RSOC_CDB, "options")
    if match is None:
        return ONE_COMMAND.encode(support=NOT_SUPPORTED, cdb_size=0)
    out = ONE_COMMAND.encode(ctdp=rctd, support=SUPPORTED_STANDARD, cdb_size=len(match.usage)) + match.usage
    return out + (_timeouts() if rctd else b"")
