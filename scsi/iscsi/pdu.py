"""iSCSI PDUs (RFC 7143 section 11): the 48-byte Basic Header Segment per opcode.

Every BHS is declared once as a :class:`scsi.layout.Layout`; :class:`Pdu`
carries the decoded header fields, the AHS and the data segment, and knows how
to put itself on the wire (data padded to 4 bytes, with the CRC32C header and
data digests of RFC 7143 section 13.1 when the connection negotiated them).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import crc32c as _crc32c

from scsi.layout import Field, Layout, LayoutError, bits, flag, raw

BHS_LEN = 48
NO_TAG = 0xFFFFFFFF


class Op(IntEnum):
    NOP_OUT = 0x00
    SCSI_CMD = 0x01
    TMF_REQ = 0x02
    LOGIN_REQ = 0x03
    TEXT_REQ = 0x04
    DATA_OUT = 0x05
    LOGOUT_REQ = 0x06
    SNACK = 0x10
    NOP_IN = 0x20
    SCSI_RSP = 0x21
    TMF_RSP = 0x22
    LOGIN_RSP = 0x23
    TEXT_RSP = 0x24
    DATA_IN = 0x25
    LOGOUT_RSP = 0x26
    R2T = 0x31
    ASYNC = 0x32
    REJECT = 0x3F


class PduError(ValueError):
    """A PDU that cannot be parsed; ``reason`` is the Reject reason code to answer with."""

    def __init__(self, message: str, reason: int = 0x04, header: bytes = b"", fatal: bool = False,
                 answer: bool = True):
        super().__init__(message)
        self.reason = reason
        self.header = header
        self.fatal = fatal  # the byte stream cannot be resynchronised: close the connection
        self.answer = answer  # False: no Reject (the header itself cannot be trusted)


DIGEST_LEN = 4


def digest(*parts: bytes) -> bytes:
    """CRC32C (Castagnoli) over ``parts``, as iSCSI puts it on the wire: 4 bytes, least significant first."""
    crc = 0
    for part in parts:
        crc = _crc32c.crc32c(part, crc)
    return crc.to_bytes(4, "little")


def _common(*specific: Field) -> list[Field]:
    """Fields every BHS shares, followed by the opcode-specific ones."""
    return [
        flag("immediate", 0, 6),
        bits("opcode", 0, 0, 6),
        Field("total_ahs", 4),
        Field("dsl", 5, size=3),
        Field("itt", 16, size=4),
        *specific,
    ]


_LUN = raw("lun", 8, 8)
_SN_TRIPLE = (Field("statsn", 24, size=4), Field("expcmdsn", 28, size=4), Field("maxcmdsn", 32, size=4))

LAYOUTS: dict[int, Layout] = {
    Op.NOP_OUT: Layout("NOP-Out", BHS_LEN, _common(
        flag("final", 1, 7), _LUN, Field("ttt", 20, size=4),
        Field("cmdsn", 24, size=4), Field("expstatsn", 28, size=4))),
    Op.SCSI_CMD: Layout("SCSI Command", BHS_LEN, _common(
        flag("final", 1, 7), flag("read", 1, 6), flag("write", 1, 5), bits("attr", 1, 0, 3), _LUN,
        Field("edtl", 20, size=4), Field("cmdsn", 24, size=4), Field("expstatsn", 28, size=4),
        raw("cdb", 32, 16))),
    Op.TMF_REQ: Layout("Task Management Request", BHS_LEN, _common(
        flag("final", 1, 7), bits("function", 1, 0, 7), _LUN, Field("rtt", 20, size=4),
        Field("cmdsn", 24, size=4), Field("expstatsn", 28, size=4), Field("refcmdsn", 32, size=4),
        Field("expdatasn", 36, size=4))),
    Op.LOGIN_REQ: Layout("Login Request", BHS_LEN, _common(
        flag("transit", 1, 7), flag("cont", 1, 6), bits("csg", 1, 2, 2), bits("nsg", 1, 0, 2),
        Field("version_max", 2), Field("version_min", 3), raw("isid", 8, 6), Field("tsih", 14, size=2),
        Field("cid", 20, size=2), Field("cmdsn", 24, size=4), Field("expstatsn", 28, size=4))),
    Op.TEXT_REQ: Layout("Text Request", BHS_LEN, _common(
        flag("final", 1, 7), flag("cont", 1, 6), _LUN, Field("ttt", 20, size=4),
        Field("cmdsn", 24, size=4), Field("expstatsn", 28, size=4))),
    Op.DATA_OUT: Layout("SCSI Data-Out", BHS_LEN, _common(
        flag("final", 1, 7), _LUN, Field("ttt", 20, size=4), Field("expstatsn", 28, size=4),
        Field("datasn", 36, size=4), Field("buffer_offset", 40, size=4))),
    Op.LOGOUT_REQ: Layout("Logout Request", BHS_LEN, _common(
        flag("final", 1, 7), bits("reason", 1, 0, 7), Field("cid", 20, size=2),
        Field("cmdsn", 24, size=4), Field("expstatsn", 28, size=4))),
    Op.SNACK: Layout("SNACK Request", BHS_LEN, _common(
        flag("final", 1, 7), bits("type", 1, 0, 4), _LUN, Field("ttt", 20, size=4),
        Field("expstatsn", 28, size=4), Field("begrun", 40, size=4), Field("runlength", 44, size=4))),
    Op.NOP_IN: Layout("NOP-In", BHS_LEN, _common(
        flag("final", 1, 7), _LUN, Field("ttt", 20, size=4), *_SN_TRIPLE)),
    Op.SCSI_RSP: Layout("SCSI Response", BHS_LEN, _common(
        flag("final", 1, 7), flag("bidi_overflow", 1, 4), flag("bidi_underflow", 1, 3),
        flag("overflow", 1, 2), flag("underflow", 1, 1), Field("response", 2), Field("status", 3),
        Field("snack_tag", 20, size=4), *_SN_TRIPLE, Field("expdatasn", 36, size=4),
        Field("bidi_residual", 40, size=4), Field("residual", 44, size=4))),
    Op.TMF_RSP: Layout("Task Management Response", BHS_LEN, _common(
        flag("final", 1, 7), Field("response", 2), *_SN_TRIPLE)),
    Op.LOGIN_RSP: Layout("Login Response", BHS_LEN, _common(
        flag("transit", 1, 7), flag("cont", 1, 6), bits("csg", 1, 2, 2), bits("nsg", 1, 0, 2),
        Field("version_max", 2), Field("version_active", 3), raw("isid", 8, 6), Field("tsih", 14, size=2),
        *_SN_TRIPLE, Field("status_class", 36), Field("status_detail", 37))),
    Op.TEXT_RSP: Layout("Text Response", BHS_LEN, _common(
        flag("final", 1, 7), flag("cont", 1, 6), _LUN, Field("ttt", 20, size=4), *_SN_TRIPLE)),
    Op.DATA_IN: Layout("SCSI Data-In", BHS_LEN, _common(
        flag("final", 1, 7), flag("ack", 1, 6), flag("overflow", 1, 2), flag("underflow", 1, 1),
        flag("has_status", 1, 0), Field("status", 3), _LUN, Field("ttt", 20, size=4), *_SN_TRIPLE,
        Field("datasn", 36, size=4), Field("buffer_offset", 40, size=4), Field("residual", 44, size=4))),
    Op.LOGOUT_RSP: Layout("Logout Response", BHS_LEN, _common(
        flag("final", 1, 7), Field("response", 2), *_SN_TRIPLE,
        Field("time2wait", 40, size=2), Field("time2retain", 42, size=2))),
    Op.R2T: Layout("R2T", BHS_LEN, _common(
        flag("final", 1, 7), _LUN, Field("ttt", 20, size=4), *_SN_TRIPLE, Field("r2tsn", 36, size=4),
        Field("buffer_offset", 40, size=4), Field("desired_length", 44, size=4))),
    Op.ASYNC: Layout("Async Message", BHS_LEN, _common(
        flag("final", 1, 7), _LUN, *_SN_TRIPLE, Field("event", 36), Field("vcode", 37),
        Field("param1", 38, size=2), Field("param2", 40, size=2), Field("param3", 42, size=2))),
    Op.REJECT: Layout("Reject", BHS_LEN, _common(
        flag("final", 1, 7), Field("reason", 2), *_SN_TRIPLE, Field("datasn", 36, size=4))),
}

INITIATOR_OPS = frozenset({Op.NOP_OUT, Op.SCSI_CMD, Op.TMF_REQ, Op.LOGIN_REQ, Op.TEXT_REQ,
                           Op.DATA_OUT, Op.LOGOUT_REQ, Op.SNACK})


class Reject(IntEnum):
    """Reject reason codes (RFC 7143 11.17.1)."""

    DATA_DIGEST = 0x02
    SNACK_REJECT = 0x03
    PROTOCOL_ERROR = 0x04
    COMMAND_NOT_SUPPORTED = 0x05
    IMMEDIATE_REJECTED = 0x06
    TASK_IN_PROGRESS = 0x07
    INVALID_DATA_ACK = 0x08
    INVALID_PDU_FIELD = 0x09
    OUT_OF_RESOURCES = 0x0A
    NEGOTIATION_RESET = 0x0B
    WAITING_FOR_LOGOUT = 0x0C


@dataclass
class Pdu:
    """One PDU: opcode, decoded BHS fields, AHS and data segment."""

    opcode: int
    fields: dict[str, Any] = field(default_factory=dict)
    data: bytes = b""
    ahs: bytes = b""
    raw_header: bytes = b""
    data_digest_error: bool = False  # the data segment arrived with a wrong CRC32C (it was dropped)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @property
    def immediate(self) -> bool:
        return bool(self.fields.get("immediate"))

    @property
    def name(self) -> str:
        layout = LAYOUTS.get(self.opcode)
        return layout.name if layout else f"opcode {self.opcode:#04x}"

    def encode(self, *, header_digest: bool = False, data_digest: bool = False) -> bytes:
        """BHS + AHS [+ header digest] + data padded to a 4-byte boundary [+ data digest]."""
        return b"".join(self.encode_parts(header_digest=header_digest, data_digest=data_digest))

    def encode_parts(self, *, header_digest: bool = False, data_digest: bool = False) -> list[bytes]:
        """The wire form in pieces, so large data segments go to the socket without a copy."""
        layout = LAYOUTS[self.opcode]
        if len(self.ahs) % 4:
            raise LayoutError("AHS length must be a multiple of 4", layout=layout.name)
        values = {k: v for k, v in self.fields.items() if k not in ("opcode", "dsl", "total_ahs")}
        header = layout.encode(values, opcode=self.opcode, dsl=len(self.data), total_ahs=len(self.ahs) // 4)
        pad = b"\0" * ((-len(self.data)) % 4)
        parts = [header + self.ahs]
        if header_digest:
            parts.append(digest(parts[0]))
        parts += [self.data, pad]
        if data_digest and self.data:  # no digest on an empty data segment (RFC 7143 11.2)
            parts.append(digest(self.data, pad))
        return parts


def make(opcode: int, data: bytes = b"", **fields: Any) -> Pdu:
    return Pdu(opcode, dict(fields), data)


def parse_header(header: bytes) -> Pdu:
    """Decode a BHS; unknown or target-only opcodes raise PduError (reason: not supported)."""
    if len(header) != BHS_LEN:
        raise PduError(f"BHS must be {BHS_LEN} bytes, got {len(header)}", header=header)
    opcode = header[0] & 0x3F
    if opcode not in INITIATOR_OPS:
        raise PduError(f"opcode {opcode:#04x} at byte 0 is not an initiator opcode",
                       reason=Reject.COMMAND_NOT_SUPPORTED, header=header)
    layout = LAYOUTS[opcode]
    values = layout.unpack_from(header, strict=False)
    return Pdu(opcode, values, raw_header=bytes(header))


async def read_pdu(reader: asyncio.StreamReader, max_data: int, *, header_digest: bool = False,
                   data_digest: bool = False) -> Pdu:
    """Read one PDU; a data segment longer than ``max_data`` is a protocol error.

    The lengths are checked before the opcode, so a PDU with an unknown opcode
    is consumed whole and the connection stays in step (the caller rejects it).
    With digests (RFC 7143 7.8): a wrong header digest raises a fatal PduError that
    asks for no Reject (the lengths cannot be trusted, so the connection must close);
    a wrong data digest drops the data and sets ``data_digest_error`` for the caller
    to answer.  Raises ``asyncio.IncompleteReadError`` when the peer closes mid-PDU.
    """
    header = await reader.readexactly(BHS_LEN)
    ahs_len = header[4] * 4
    ahs = await reader.readexactly(ahs_len) if ahs_len else b""
    if header_digest:
        got = await reader.readexactly(DIGEST_LEN)
        if got != digest(header, ahs):
            raise PduError(f"header digest error: CRC32C {got.hex()} does not match the header "
                           f"(opcode {header[0] & 0x3F:#04x})", header=bytes(header), fatal=True, answer=False)
    dsl = int.from_bytes(header[5:8], "big")
    if dsl > max_data:
        raise PduError(f"DataSegmentLength {dsl} (bytes 5-7) exceeds the negotiated "
                       f"MaxRecvDataSegmentLength {max_data}", reason=Reject.PROTOCOL_ERROR,
                       header=bytes(header), fatal=True)
    padded = await reader.readexactly(dsl + (-dsl) % 4) if dsl else b""
    bad_data = False
    if data_digest and dsl:
        bad_data = await reader.readexactly(DIGEST_LEN) != digest(padded)
    pdu = parse_header(header)
    pdu.ahs = ahs
    if bad_data:
        pdu.data_digest_error = True
    else:
        pdu.data = padded[:dsl]
    return pdu


def extended_cdb(ahs: bytes) -> bytes:
    """Bytes of an Extended CDB AHS (type 1) to append to the 16-byte CDB field."""
    out, pos = b"", 0
    while pos + 3 <= len(ahs):
        length, kind = int.from_bytes(ahs[pos:pos + 2], "big"), ahs[pos + 2]
        body = ahs[pos + 4:pos + 3 + length]  # length counts the reserved byte after the type
        if kind == 1:
            out += body
        pos += 3 + length + (-(3 + length)) % 4
    return out


def decode_lun(lun_field: bytes) -> int:
    """LUN number from the 8-byte LUN field (peripheral or flat addressing, single level).

    Anything else maps to an impossible LUN number so the command fails as
    LOGICAL UNIT NOT SUPPORTED instead of reaching a real LUN.
    """
    method = lun_field[0] >> 6
    if method == 0 and lun_field[0] == 0:
        number = lun_field[1]
    elif method == 1:
        number = ((lun_field[0] & 0x3F) << 8) | lun_field[1]
    else:
        return 0xFFFFFFFF
    if any(lun_field[2:]):
        return 0xFFFFFFFF
    return number


def encode_lun(number: int) -> bytes:
    """8-byte LUN field: peripheral addressing below 256, flat addressing above."""
    if number < 256:
        return bytes([0, number]) + b"\0" * 6
    if number < 1 << 14:
        return bytes([0x40 | (number >> 8), number & 0xFF]) + b"\0" * 6
    raise ValueError(f"LUN {number} needs more than 14 bits")
