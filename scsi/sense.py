"""SCSI sense data: fixed (70h/71h) and descriptor (72h/73h) formats.

A copy manager answers bad parameter lists with ILLEGAL REQUEST and a field
pointer, and failed segments with COPY ABORTED, the segment number in
COMMAND-SPECIFIC INFORMATION bytes 2-3 and a segment pointer (SPC-4 r36f 5.17.7.4,
4.5.2.4.5).  The initiator side decodes the same bytes to decide what failed.  Every
byte layout is declared once with :mod:`scsi.layout`; the sense-key-specific
pointers live in :mod:`scsi.sense_sks` and are re-exported here.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field as PField

from scsi.asc import SenseKey, asc_label
from scsi.layout import Field, Layout, LayoutError, bits, flag, raw, reserved
from scsi.sense_sks import (FIELD_POINTER_SKS, SEGMENT_POINTER_SKS, FieldPointer, RawSks, SegmentPointer,
                            Sks, sks_from_bytes)


class SenseError(LayoutError):
    """Sense bytes that cannot be decoded (too short, unknown response code, bad descriptor)."""


FIXED_RESPONSE_CODES = (0x70, 0x71)
DESCRIPTOR_RESPONSE_CODES = (0x72, 0x73)

FIXED_SENSE = Layout("fixed sense", 18, [
    flag("valid", 0, 7),
    bits("response_code", 0, 0, 7),
    Field("obsolete", 1),
    flag("filemark", 2, 7),
    flag("eom", 2, 6),
    flag("ili", 2, 5),
    flag("sdat_ovfl", 2, 4),
    bits("sense_key", 2, 0, 4),
    Field("information", 3, size=4),
    Field("additional_length", 7),
    Field("command_specific", 8, size=4),
    Field("asc", 12),
    Field("ascq", 13),
    Field("fru", 14),
    raw("sks", 15, 3),
])

DESCRIPTOR_SENSE = Layout("descriptor sense", 8, [
    reserved(0, bit=7),
    bits("response_code", 0, 0, 7),
    reserved(1, bit=4, width=4),
    bits("sense_key", 1, 0, 4),
    Field("asc", 2),
    Field("ascq", 3),
    flag("sdat_ovfl", 4, 7),
    reserved(4, bit=0, width=7),
    reserved(5, 2),
    Field("additional_length", 7),
])

INFORMATION_DESC = Layout("information descriptor", 12, [
    Field("type", 0, const=0x00), Field("length", 1, const=0x0A),
    flag("valid", 2, 7), reserved(2, bit=0, width=7), reserved(3),
    Field("information", 4, size=8),
])
COMMAND_SPECIFIC_DESC = Layout("command-specific descriptor", 12, [
    Field("type", 0, const=0x01), Field("length", 1, const=0x0A), reserved(2, 2),
    Field("command_specific", 4, size=8),
])
SKS_DESC = Layout("sense-key specific descriptor", 8, [
    Field("type", 0, const=0x02), Field("length", 1, const=0x06), reserved(2, 2),
    raw("sks", 4, 3), reserved(7),
])
FRU_DESC = Layout("FRU descriptor", 4, [
    Field("type", 0, const=0x03), Field("length", 1, const=0x02), reserved(2), Field("fru", 3),
])
_KNOWN_DESCRIPTORS = {0x00: INFORMATION_DESC, 0x01: COMMAND_SPECIFIC_DESC, 0x02: SKS_DESC, 0x03: FRU_DESC}


class RawDescriptor(BaseModel):
    """A sense descriptor this module does not interpret (kept so encode reproduces it)."""

    model_config = ConfigDict(frozen=True)
    type: int = PField(ge=0, le=0xFF)
    body: str = ""  # hex of the bytes after the 2-byte descriptor header

    def encode(self) -> bytes:
        body = bytes.fromhex(self.body)
        return bytes([self.type, len(body)]) + body


class Sense(BaseModel):
    """Decoded sense data; ``encode()`` and ``Sense.decode()`` are exact inverses for what they produce.

    ``information`` is ``None`` when not VALID.  ``command_specific`` carries,
    for COPY ABORTED, the segment number in its low 16 bits (fixed bytes 10-11).
    ``additional`` holds fixed-format bytes 18.. (hex); ``descriptors`` holds
    descriptor-format descriptors this module does not interpret.
    """

    model_config = ConfigDict(frozen=True)
    response_code: int = 0x70
    key: SenseKey = SenseKey.NO_SENSE
    asc: int = PField(default=0, ge=0, le=0xFF)
    ascq: int = PField(default=0, ge=0, le=0xFF)
    information: int | None = None
    command_specific: int = 0
    sks: Sks | None = PField(default=None, discriminator="kind")
    fru: int = 0
    filemark: bool = False
    eom: bool = False
    ili: bool = False
    sdat_ovfl: bool = False
    additional: str = ""
    descriptors: tuple[RawDescriptor, ...] = ()

    # -- properties ---------------------------------------------------------------
    @property
    def descriptor_format(self) -> bool:
        return self.response_code in DESCRIPTOR_RESPONSE_CODES

    @property
    def deferred(self) -> bool:
        return self.response_code in (0x71, 0x73)

    @property
    def segment(self) -> int | None:
        """Number of the failed segment for COPY ABORTED (COMMAND-SPECIFIC bytes 2-3)."""
        if self.key != SenseKey.COPY_ABORTED:
            return None
        seg = self.command_specific & 0xFFFF
        if seg or (isinstance(self.sks, SegmentPointer) and self.sks.sd):
            return seg
        return None

    @property
    def asc_ascq(self) -> tuple[int, int]:
        return (self.asc, self.ascq)

    def forwarded(self) -> dict[str, tuple[int, "Sense"]]:
        """Status and sense of the copy source/destination a copy manager embeds (SPC-4 r36f 5.17.7.4, COPY ABORTED)."""
        if self.key != SenseKey.COPY_ABORTED or self.descriptor_format:
            return {}
        full = self.encode()
        out: dict[str, tuple[int, Sense]] = {}
        for role, shift in (("source", 24), ("destination", 16)):
            off = (self.command_specific >> shift) & 0xFF
            if off and off + 1 < len(full):
                try:
                    out[role] = (full[off], Sense.decode(full[off + 1:]))
                except SenseError:
                    continue
        return out

    def __str__(self) -> str:
        text = f"{self.key.label}: {asc_label(self.asc, self.ascq)}"
        if self.deferred:
            text += ", deferred"
        if self.segment is not None:
            text += f", segment {self.segment}"
        if self.sks is not None:
            text += ", " + self.sks.describe()
        if self.information is not None:
            text += f", information {self.information:#x}"
        return text

    # -- encode -------------------------------------------------------------------
    def encode(self, fmt: str | None = None) -> bytes:
        """Encode as ``fmt`` ("fixed" or "descriptor"; default: this sense's own response code)."""
        if fmt is None:
            fmt = "descriptor" if self.descriptor_format else "fixed"
        if fmt == "fixed":
            return self._encode_fixed()
        if fmt == "descriptor":
            return self._encode_descriptor()
        raise ValueError(f"sense format must be 'fixed' or 'descriptor', not {fmt!r}")

    def _encode_fixed(self) -> bytes:
        code = self.response_code if self.response_code in FIXED_RESPONSE_CODES else self.response_code - 2
        extra = bytes.fromhex(self.additional)
        head = FIXED_SENSE.encode(
            valid=int(self.information is not None), response_code=code, filemark=int(self.filemark),
            eom=int(self.eom), ili=int(self.ili), sdat_ovfl=int(self.sdat_ovfl), sense_key=int(self.key),
            information=self.information or 0, additional_length=10 + len(extra),
            command_specific=self.command_specific, asc=self.asc, ascq=self.ascq, fru=self.fru,
            sks=self.sks.encode() if self.sks else b"")
        return head + extra

    def _encode_descriptor(self) -> bytes:
        code = self.response_code if self.response_code in DESCRIPTOR_RESPONSE_CODES else self.response_code + 2
        body = b""
        if self.information is not None:
            body += INFORMATION_DESC.encode(valid=1, information=self.information)
        if self.command_specific:
            body += COMMAND_SPECIFIC_DESC.encode(command_specific=self.command_specific)
        if self.sks is not None:
            body += SKS_DESC.encode(sks=self.sks.encode())
        if self.fru:
            body += FRU_DESC.encode(fru=self.fru)
        for d in self.descriptors:
            body += d.encode()
        if len(body) > 244:
            raise LayoutError(f"{len(body)} bytes of descriptors exceed 244", field="additional_length",
                              offset=7, layout=DESCRIPTOR_SENSE.name)
        head = DESCRIPTOR_SENSE.encode(response_code=code, sense_key=int(self.key), asc=self.asc,
                                       ascq=self.ascq, sdat_ovfl=int(self.sdat_ovfl),
                                       additional_length=len(body))
        return head + body

    # -- decode -------------------------------------------------------------------
    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> "Sense":
        """Decode fixed or descriptor sense; bytes past ADDITIONAL SENSE LENGTH are ignored."""
        data = bytes(data)
        if not data:
            raise SenseError("no sense bytes", field="response_code", offset=0, layout="sense")
        code = data[0] & 0x7F
        if code in FIXED_RESPONSE_CODES:
            return cls._decode_fixed(data)
        if code in DESCRIPTOR_RESPONSE_CODES:
            return cls._decode_descriptor(data)
        raise SenseError(f"unknown response code {code:02X}h (expected 70h-73h)",
                         field="response_code", offset=0, bit=6, layout="sense")

    @classmethod
    def _decode_fixed(cls, data: bytes) -> "Sense":
        if len(data) < 8:
            raise SenseError(f"fixed sense needs at least 8 bytes, got {len(data)}",
                             field="additional_length", offset=7, layout=FIXED_SENSE.name)
        end = min(len(data), 8 + data[7])
        # Short records (additional length < 10) leave the missing fields zero.
        body = data[:end].ljust(18, b"\0")
        v = FIXED_SENSE.decode(body, strict=False)
        key = v["sense_key"]
        return cls(
            response_code=v["response_code"], key=SenseKey(key), asc=v["asc"], ascq=v["ascq"],
            information=v["information"] if v["valid"] else None, command_specific=v["command_specific"],
            sks=sks_from_bytes(key, v["sks"]), fru=v["fru"], filemark=bool(v["filemark"]),
            eom=bool(v["eom"]), ili=bool(v["ili"]), sdat_ovfl=bool(v["sdat_ovfl"]),
            additional=data[18:end].hex())

    @classmethod
    def _decode_descriptor(cls, data: bytes) -> "Sense":
        if len(data) < 8:
            raise SenseError(f"descriptor sense needs at least 8 bytes, got {len(data)}",
                             field="additional_length", offset=7, layout=DESCRIPTOR_SENSE.name)
        v = DESCRIPTOR_SENSE.decode(data[:8], strict=False)
        end = min(len(data), 8 + v["additional_length"])
        key = v["sense_key"]
        fields: dict = {}
        extra: list[RawDescriptor] = []
        pos = 8
        while pos < end:
            if pos + 2 > end:
                raise SenseError("descriptor header runs past the end of the sense data",
                                 field="descriptor type", offset=pos, layout=DESCRIPTOR_SENSE.name)
            dtype, dlen = data[pos], data[pos + 1]
            if pos + 2 + dlen > end:
                raise SenseError(f"descriptor {dtype:02X}h of {dlen} bytes runs past the end ({end})",
                                 field="additional length", offset=pos + 1, layout=DESCRIPTOR_SENSE.name)
            chunk = data[pos:pos + 2 + dlen]
            layout = _KNOWN_DESCRIPTORS.get(dtype)
            if layout is not None and len(chunk) == layout.size:
                d = layout.unpack_from(chunk, 0, strict=False, pos=pos)
                if dtype == 0x00:
                    if d["valid"]:
                        fields["information"] = d["information"]
                elif dtype == 0x01:
                    fields["command_specific"] = d["command_specific"]
                elif dtype == 0x02:
                    fields["sks"] = sks_from_bytes(key, d["sks"])
                else:
                    fields["fru"] = d["fru"]
            else:
                extra.append(RawDescriptor(type=dtype, body=chunk[2:].hex()))
            pos += 2 + dlen
        return cls(response_code=v["response_code"], key=SenseKey(key), asc=v["asc"], ascq=v["ascq"],
                   sdat_ovfl=bool(v["sdat_ovfl"]), descriptors=tuple(extra), **fields)


# -- builders used by the copy manager and the iSCSI target ----------------------------
def illegal_request(asc: int, ascq: int, *, field: int | None = None, bit: int | None = None,
                    in_cdb: bool = False, fmt: str = "fixed") -> Sense:
    """ILLEGAL REQUEST with an optional field pointer (byte ``field``, bit ``bit``)."""
    sks = FieldPointer(in_cdb=in_cdb, byte=field, bit=bit) if field is not None else None
    return Sense(response_code=0x72 if fmt == "descriptor" else 0x70, key=SenseKey.ILLEGAL_REQUEST,
                 asc=asc, ascq=ascq, sks=sks)


def copy_aborted(asc: int, ascq: int, *, segment: int | None = None, field: int | None = None,
                 bit: int | None = None, sd: bool | None = None, information: int | None = None,
                 source: tuple[int, bytes] | None = None, destination: tuple[int, bytes] | None = None,
                 fmt: str = "fixed") -> Sense:
    """COPY ABORTED for a failure while processing segment ``segment``.

    ``field``/``bit`` point at the offending byte; it is relative to the segment
    descriptor when a segment is given (SD=1) unless ``sd`` says otherwise.
    ``source``/``destination`` are ``(status, sense bytes)`` of the copy source
    or destination device, embedded after byte 18 with their offsets in
    COMMAND-SPECIFIC bytes 0 and 1 (fixed format only).
    """
    if segment is not None and not 0 <= segment <= 0xFFFF:
        raise ValueError(f"segment number {segment} does not fit in 16 bits")
    cs = segment or 0
    extra = b""
    for shift, area in ((24, source), (16, destination)):
        if area is not None:
            status, sense_bytes = area
            offset = 18 + len(extra)
            if offset > 0xFF:
                raise ValueError("forwarded sense does not fit in the 252 additional sense bytes")
            cs |= offset << shift
            extra += bytes([status]) + bytes(sense_bytes)
    if 18 + len(extra) > 252:
        raise ValueError("forwarded sense does not fit in the 252 additional sense bytes")
    sks = None
    if field is not None:
        sks = SegmentPointer(sd=(segment is not None) if sd is None else sd, byte=field, bit=bit)
    return Sense(response_code=0x72 if fmt == "descriptor" else 0x70, key=SenseKey.COPY_ABORTED,
                 asc=asc, ascq=ascq, command_specific=cs, sks=sks, information=information,
                 additional=extra.hex())


def sense_for(key: SenseKey | int, asc: int, ascq: int, **kw) -> Sense:
    """Plain sense of any key (NOT READY, MEDIUM ERROR ...), e.g. for a LUN's own errors."""
    return Sense(key=SenseKey(key), asc=asc, ascq=ascq, **kw)


__all__ = ["COMMAND_SPECIFIC_DESC", "DESCRIPTOR_RESPONSE_CODES", "DESCRIPTOR_SENSE",
           "FIELD_POINTER_SKS", "FIXED_RESPONSE_CODES", "FIXED_SENSE", "FRU_DESC", "FieldPointer",
           "INFORMATION_DESC", "RawDescriptor", "RawSks", "SEGMENT_POINTER_SKS", "SKS_DESC", "SegmentPointer",
           "Sense", "SenseError", "SenseKey", "Sks", "copy_aborted", "illegal_request", "sense_for",
           "sks_from_bytes"]
