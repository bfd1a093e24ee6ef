"""Sense-key-specific bytes of sense data: field and segment pointers (SPC-4 r36f 4.5.2.4).

ILLEGAL REQUEST carries a field pointer (byte and bit of the bad CDB or
parameter-list field), COPY ABORTED a segment pointer; other keys' three bytes
are kept raw.  Split from :mod:`scsi.sense`, which re-exports every name here.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field as PField

from scsi.asc import SenseKey
from scsi.layout import Field, Layout, bits, flag, reserved

# Sense-key-specific bytes (SPC-4 r36f 4.5.2.4).
FIELD_POINTER_SKS = Layout("field pointer", 3, [
    flag("sksv", 0, 7), flag("c_d", 0, 6), reserved(0, bit=4, width=2), flag("bpv", 0, 3),
    bits("bit_pointer", 0, 0, 3), Field("field_pointer", 1, size=2),
])
SEGMENT_POINTER_SKS = Layout("segment pointer", 3, [
    flag("sksv", 0, 7), reserved(0, bit=6), flag("sd", 0, 5), reserved(0, bit=4), flag("bpv", 0, 3),
    bits("bit_pointer", 0, 0, 3), Field("field_pointer", 1, size=2),
])


class _Pointer(BaseModel):
    """Byte (and bit) of an offending field, as the sense-key-specific bytes carry it."""

    model_config = ConfigDict(frozen=True)
    byte: int = PField(ge=0, le=0xFFFF)
    bit: int | None = PField(default=None, ge=0, le=7)

    def _pack(self, layout: Layout, **kw: int) -> bytes:
        return layout.encode(sksv=1, bpv=int(self.bit is not None), bit_pointer=self.bit or 0,
                             field_pointer=self.byte, **kw)

    def _where(self, prefix: str) -> str:
        return f"{prefix} byte {self.byte}" + (f" bit {self.bit}" if self.bit is not None else "")


class FieldPointer(_Pointer):
    """ILLEGAL REQUEST: the byte (and bit) of the bad field in the CDB or parameter list."""

    kind: Literal["field"] = "field"
    in_cdb: bool = False

    def encode(self) -> bytes:
        return self._pack(FIELD_POINTER_SKS, c_d=int(self.in_cdb))

    def describe(self) -> str:
        return self._where("CDB" if self.in_cdb else "parameter list")


class SegmentPointer(_Pointer):
    """COPY ABORTED: byte (and bit) relative to the list (sd=False) or the failing segment (sd=True)."""

    kind: Literal["segment"] = "segment"
    sd: bool = False

    def encode(self) -> bytes:
        return self._pack(SEGMENT_POINTER_SKS, sd=int(self.sd))

    def describe(self) -> str:
        return self._where("field" if self.sd else "parameter list")


class RawSks(BaseModel):
    """Sense-key-specific bytes of other keys (progress indication etc.), kept as hex."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["raw"] = "raw"
    hex: str = PField(pattern=r"^[0-9a-f]{6}$")

    def encode(self) -> bytes:
        return bytes.fromhex(self.hex)

    def describe(self) -> str:
        return f"sense-key specific {self.hex}"


Sks = Union[FieldPointer, SegmentPointer, RawSks]


def sks_from_bytes(key: int, data: bytes) -> Sks | None:
    if not data[0] & 0x80:
        return None
    if key == SenseKey.ILLEGAL_REQUEST:
        v = FIELD_POINTER_SKS.decode(data, strict=False)
        return FieldPointer(in_cdb=bool(v["c_d"]), byte=v["field_pointer"],
                            bit=v["bit_pointer"] if v["bpv"] else None)
    if key == SenseKey.COPY_ABORTED:
        v = SEGMENT_POINTER_SKS.decode(data, strict=False)
        return SegmentPointer(sd=bool(v["sd"]), byte=v["field_pointer"],
                              bit=v["bit_pointer"] if v["bpv"] else None)
    return RawSks(hex=data.hex())
