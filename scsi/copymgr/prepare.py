"""Checking a decoded list against this copy manager, segment by segment.

``static_checks`` is the last ILLEGAL REQUEST stage (fields the codec cannot
judge without the mover's limits: LIST ID USAGE, zero or oversized transfer
lengths, byte counts over MAXIMUM SEGMENT LENGTH).  ``build_steps`` is step 6:
it resolves the CSCDs the segments name (refusing LUNs the initiator may not
reach), checks each segment's source/destination device types and returns
the steps the engine runs.  Its failures are COPY ABORTED with the segment
number and a segment pointer (SD=1) to the offending field.
"""
from __future__ import annotations

from scsi import asc as A
from scsi.copymgr.config import CopyLimits
from scsi.copymgr.engine import Step
from scsi.copymgr.errors import CopyAborted, IllegalRequest
from scsi.copymgr.resolve import Resolver, Target
from scsi.xcopy import ParameterList
from scsi.xcopy.header import HEADER
from scsi.xcopy.segments import HELD_TWINS

# base segment type -> (source role, destination role); "any" = block or stream
ROLES: dict[int, tuple[str | None, str | None]] = {
    0x00: ("block", "stream"), 0x01: ("stream", "block"), 0x02: ("block", "block"),
    0x03: ("stream", "stream"), 0x04: (None, "stream"), 0x06: ("stream", None), 0x07: ("any", None),
    0x0A: ("block", "block"), 0x10: (None, "stream"),
}
MAX_CSCD_INDEX = 0x07FF
TRANSFER_FIELDS = ("stream_transfer_length", "src_transfer_length", "dst_transfer_length")


def base_code(code: int) -> int:
    return HELD_TWINS.get(code, code)


def static_checks(pl: ParameterList, limits: CopyLimits) -> None:
    h = pl.header
    if h.list_id_usage == 0b01:
        f = HEADER.field("list_id_usage")
        raise IllegalRequest.make(A.INVALID_FIELD_IN_PARAMETER_LIST, "LIST ID USAGE 01b is reserved",
                                  field=f.offset, bit=f.msb)
    if h.list_id_usage == 0b11 and h.list_id != 0:
        raise IllegalRequest.make(A.INVALID_FIELD_IN_PARAMETER_LIST,
                                  f"LIST ID USAGE 11b needs list identifier 0, not {h.list_id}", field=0)
    _, seg_at, _ = pl.offsets()
    for n, (seg, at) in enumerate(zip(pl.segments, seg_at)):
        names = seg.LAYOUT.names()
        for name in TRANSFER_FIELDS:
            if name in names:
                value = getattr(seg, name)
                if value == 0 and not (base_code(seg.type_code) in (0x03, 0x06) and seg.byte_count == 0):
                    raise _field(seg, at, name, f"segment {n}: {name} is 0")
        if "byte_count" in names and seg.byte_count > limits.max_segment_length:
            raise _field(seg, at, "byte_count", f"segment {n}: {seg.byte_count} bytes exceed the maximum "
                         f"segment length {limits.max_segment_length}")


def _field(seg, at: int, name: str, message: str) -> IllegalRequest:
    f = seg.LAYOUT.field(name)
    return IllegalRequest.make(A.INVALID_FIELD_IN_PARAMETER_LIST, message, field=at + f.offset, bit=f.msb)


def _seg_pointer(code: tuple[int, int], seg, n: int, name: str, message: str) -> CopyAborted:
    f = seg.LAYOUT.field(name)
    return CopyAborted.make(code, message, segment=n, field=f.offset, bit=f.msb, sd=True)


def build_steps(pl: ParameterList, resolver: Resolver, limits: CopyLimits) -> list[Step]:
    cscd_at, seg_at, _ = pl.offsets()
    targets: dict[int, Target] = {}
    inline_len = len(pl.inline_data) // 2
    steps: list[Step] = []
    for n, (seg, at) in enumerate(zip(pl.segments, seg_at)):
        code = base_code(seg.type_code)
        roles = dict(zip(("src", "dst"), ROLES[code]))
        resolved: dict[str, Target | None] = {"src": None, "dst": None}
        for name, index in seg.cscd_refs().items():
            if index > MAX_CSCD_INDEX or index >= len(pl.cscds):
                raise _seg_pointer(A.COPY_TARGET_DEVICE_NOT_REACHABLE, seg, n, name,
                                   f"segment {n}: CSCD index {index:#06x} names no descriptor "
                                   f"(the list has {len(pl.cscds)})")
            if index not in targets:
                targets[index] = resolver.resolve(pl.cscds[index], index, cscd_at[index], n)
            t = targets[index]
            want = roles[name]
            if (want == "block" and not t.is_block) or (want == "stream" and not t.is_stream) \
                    or (want == "any" and not (t.is_block or t.is_stream)):
                raise _seg_pointer(A.INCORRECT_COPY_TARGET_DEVICE_TYPE, seg, n, name,
                                   f"segment {n} ({seg.operation}) needs a {want} device as "
                                   f"{'source' if name == 'src' else 'destination'}, CSCD {index} is LUN "
                                   f"{t.lun.name} (device type {int(t.lun.pdt):02X}h)")
            resolved[name] = t
        _check_lengths(seg, n, at, resolved, limits)
        if code == 0x04 and seg.inline_offset + seg.byte_count > inline_len:
            raise _seg_pointer(A.INLINE_DATA_LENGTH_EXCEEDED, seg, n, "byte_count",
                               f"segment {n}: inline bytes {seg.inline_offset}..{seg.inline_offset + seg.byte_count}"
                               f" exceed the {inline_len} bytes of inline data")
        steps.append(Step(n, at, seg, resolved["src"], resolved["dst"]))
    return steps


def _check_lengths(seg, n: int, at: int, t: dict[str, Target | None], limits: CopyLimits) -> None:
    code = base_code(seg.type_code)
    size = 0
    if code == 0x02:
        size = seg.block_count * (t["dst"].block_size if seg.dc else t["src"].block_size)
    elif code in (0x00, 0x01):
        size = seg.block_count * (t["src"] if code == 0x00 else t["dst"]).block_size
    for role in ("src", "dst"):
        target = t[role]
        if target is not None and target.is_stream and "stream_transfer_length" in seg.LAYOUT.names():
            per = seg.stream_transfer_length * (target.block_size if target.fixed else 1)
            if per > limits.max_stream_transfer:
                f = seg.LAYOUT.field("stream_transfer_length")
                raise IllegalRequest.make(A.INVALID_FIELD_IN_PARAMETER_LIST,
                                          f"segment {n}: stream transfer of {per} bytes exceeds the maximum "
                                          f"{limits.max_stream_transfer}", field=at + f.offset)
    if size > limits.max_segment_length:
        f = seg.LAYOUT.field("block_count")
        raise IllegalRequest.make(A.INVALID_FIELD_IN_PARAMETER_LIST,
                                  f"segment {n}: {size} bytes exceed the maximum segment length "
                                  f"{limits.max_segment_length}", field=at + f.offset)
