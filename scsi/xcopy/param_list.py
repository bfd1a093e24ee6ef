"""The whole EXTENDED COPY (LID1) parameter list: header, CSCDs, segments, inline data.

``ParameterList.decode`` checks in the order LIO and libiscsi's tests expect (SPC-4 r36f 6.4.3-6.4.6):
length < 16 and truncation or lengths that disagree -> 1Ah/00h, then the
descriptor-list-length limit, then per-descriptor counts and types (26h/06h,
26h/07h, 26h/08h, 26h/09h), malformed fields (26h/00h with the byte), and
finally CSCD indexes named by segments (26h/00h at the index field).
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from scsi.layout import LayoutError
from scsi.xcopy.cscd import CSCD_SIZE, Cscd, decode_cscd
from scsi.xcopy.errors import (PARAMETER_LIST_LENGTH_ERROR, TOO_MANY_SEGMENT_DESCRIPTORS,
                               TOO_MANY_TARGET_DESCRIPTORS, UNSUPPORTED_TARGET_DESCRIPTOR_TYPE,
                               ParameterListError)
from scsi.xcopy.header import HEADER, Header
from scsi.xcopy.hexfield import Hex
from scsi.xcopy.segments import Segment, decode_segment

HEADER_SIZE = HEADER.size


@dataclass(frozen=True)
class DecodeLimits:
    """What a copy manager accepts; ``None`` means no limit / everything this codec knows."""

    max_cscds: int | None = None
    max_segments: int | None = None
    max_descriptor_list_length: int | None = None
    max_inline_length: int | None = None
    cscd_types: frozenset[int] | None = None
    segment_types: frozenset[int] | None = None
    check_indexes: bool = True  # False: leave unresolvable indexes to the copy manager (0Dh/02h)
    allow_trailing: bool = False  # True: ignore bytes after the inline data
    # SPC-4 CSCD IDs above 07FFh a copy manager understands (C000h/C001h null LU, FFFFh itself).
    special_indexes: frozenset[int] = frozenset()


class ParameterList(BaseModel):
    """A decoded parameter list; ``decode(encode(x)) == x`` and ``encode(decode(b)) == b``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    header: Header = Header()
    cscds: tuple[Cscd, ...] = ()
    segments: tuple[Segment, ...] = ()
    inline_data: Hex = ""

    # -- encode -------------------------------------------------------------------
    def encode(self) -> bytes:
        cscd_bytes = b"".join(c.encode() for c in self.cscds)
        seg_bytes = b"".join(s.encode() for s in self.segments)
        inline = bytes.fromhex(self.inline_data)
        if len(cscd_bytes) > 0xFFFF:
            raise LayoutError(f"{len(self.cscds)} CSCD descriptors ({len(cscd_bytes)} bytes) exceed 65535 bytes",
                              field="cscd_list_length", offset=2, layout=HEADER.name)
        return self.header.encode(len(cscd_bytes), len(seg_bytes), len(inline)) + cscd_bytes + seg_bytes + inline

    def offsets(self) -> tuple[list[int], list[int], int]:
        """Byte offsets of each CSCD, each segment and the inline data within the encoded list."""
        pos = HEADER_SIZE
        cscd_at = []
        for c in self.cscds:
            cscd_at.append(pos)
            pos += CSCD_SIZE
        seg_at = []
        for s in self.segments:
            seg_at.append(pos)
            pos += s.size
        return cscd_at, seg_at, pos

    # -- decode -------------------------------------------------------------------
    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, limits: DecodeLimits | None = None) -> "ParameterList":
        data = bytes(data)
        lim = limits or DecodeLimits()
        if len(data) < HEADER_SIZE:
            raise ParameterListError(f"parameter list of {len(data)} bytes is shorter than the 16-byte header",
                                     asc_ascq=PARAMETER_LIST_LENGTH_ERROR, field="length",
                                     offset=len(data), layout="parameter list")
        h = HEADER.unpack_from(data, 0, strict=False)  # lengths first: 1Ah/00h outranks 26h/00h
        t, s, i = h["cscd_list_length"], h["segment_list_length"], h["inline_data_length"]
        if lim.max_descriptor_list_length is not None and t + s > lim.max_descriptor_list_length:
            raise ParameterListError.at(
                HEADER, "cscd_list_length", 0,
                f"descriptor lists of {t} + {s} bytes exceed the maximum of {lim.max_descriptor_list_length}",
                PARAMETER_LIST_LENGTH_ERROR)
        need = HEADER_SIZE + t + s + i
        if need > len(data):
            raise ParameterListError(
                f"header lengths (CSCD {t} + segment {s} + inline {i} after 16 header bytes = {need}) "
                f"exceed the {len(data)} bytes supplied", asc_ascq=PARAMETER_LIST_LENGTH_ERROR,
                field="length", offset=len(data), layout="parameter list")
        if need < len(data) and not lim.allow_trailing:
            raise ParameterListError(
                f"{len(data) - need} bytes follow the end the header declares (byte {need})",
                asc_ascq=PARAMETER_LIST_LENGTH_ERROR, field="length", offset=need,
                layout="parameter list")
        if lim.max_inline_length is not None and i > lim.max_inline_length:
            raise ParameterListError.at(HEADER, "inline_data_length", 0,
                                        f"{i} bytes of inline data exceed the maximum {lim.max_inline_length}")
        try:
            HEADER.unpack_from(data, 0)  # now the reserved bits
        except LayoutError as err:
            raise ParameterListError.from_layout(err) from None
        cscds = cls._decode_cscds(data, t, lim)
        seg_start = HEADER_SIZE + t
        segments, seg_offsets = cls._decode_segments(data, seg_start, seg_start + s, lim)
        if lim.check_indexes:
            cls._check_indexes(segments, seg_offsets, len(cscds), lim.special_indexes)
        inline = data[seg_start + s:need]
        header = Header(list_id=h["list_id"], str_=bool(h["str"]), list_id_usage=h["list_id_usage"],
                        priority=h["priority"])
        return cls(header=header, cscds=tuple(cscds), segments=tuple(segments), inline_data=inline.hex())

    @staticmethod
    def _decode_cscds(data: bytes, t: int, lim: DecodeLimits) -> list:
        if t % CSCD_SIZE:
            raise ParameterListError.at(HEADER, "cscd_list_length", 0,
                                        f"{t} is not a multiple of the {CSCD_SIZE}-byte CSCD descriptor size",
                                        UNSUPPORTED_TARGET_DESCRIPTOR_TYPE)
        count = t // CSCD_SIZE
        if lim.max_cscds is not None and count > lim.max_cscds:
            raise ParameterListError.at(HEADER, "cscd_list_length", 0,
                                        f"{count} CSCD descriptors exceed the maximum of {lim.max_cscds}",
                                        TOO_MANY_TARGET_DESCRIPTORS)
        return [decode_cscd(data, HEADER_SIZE + n * CSCD_SIZE, n, lim.cscd_types) for n in range(count)]

    @staticmethod
    def _decode_segments(data: bytes, pos: int, end: int, lim: DecodeLimits) -> tuple[list, list[int]]:
        segments, offsets = [], []
        while pos < end:
            n = len(segments)
            if lim.max_segments is not None and n >= lim.max_segments:
                raise ParameterListError.at(HEADER, "segment_list_length", 0,
                                            f"more than the maximum of {lim.max_segments} segment descriptors",
                                            TOO_MANY_SEGMENT_DESCRIPTORS, segment=n)
            seg = decode_segment(data, pos, end, n, lim.segment_types)
            segments.append(seg)
            offsets.append(pos)
            pos += seg.size
        return segments, offsets

    @staticmethod
    def _check_indexes(segments: list, offsets: list[int], count: int, special: frozenset[int]) -> None:
        for n, (seg, at) in enumerate(zip(segments, offsets)):
            for name, index in seg.cscd_refs().items():
                if index >= count and index not in special:
                    raise ParameterListError.at(
                        seg.LAYOUT, name, at,
                        f"segment {n} names CSCD {index}, but the list has {count} CSCD descriptor(s)",
                        segment=n)
