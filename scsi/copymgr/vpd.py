"""VPD page 8Fh (third-party copy) for a copy manager, from its real configuration.

Descriptors (SPC-4 r36f 7.8.17, Third-party Copy VPD page 8Fh): Supported Commands, Parameter Data, Supported
Descriptors, Supported CSCD IDs (none above 07FFh), General Copy Operations, Stream Copy Operations (only with
stream LUNs) and Held Data (only with a held data limit).  Each descriptor
is a 4-byte header (type, length) and a body padded to a multiple of 4.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from scsi.copymgr.config import CopyLimits
from scsi.layout import Field, Layout, bits, reserved

VPD_8F_HEADER = Layout("VPD 8Fh header", 4, [
    bits("qualifier", 0, 5, 3), bits("pdt", 0, 0, 5), Field("page_code", 1, const=0x8F),
    Field("page_length", 2, size=2)])
TPC_DESCRIPTOR_HEADER = Layout("third-party copy descriptor header", 4, [
    Field("type", 0, size=2), Field("length", 2, size=2)])
PARAMETER_DATA = Layout("parameter data descriptor body", 28, [
    reserved(0, 4), Field("max_cscds", 4, size=2), Field("max_segments", 6, size=2),
    Field("max_descriptor_list_length", 8, size=4), Field("max_inline_length", 12, size=4),
    reserved(16, 12)])
GENERAL_COPY = Layout("general copy operations descriptor body", 32, [
    Field("total_concurrent_copies", 0, size=4), Field("max_identified_concurrent_copies", 4, size=4),
    Field("max_segment_length", 8, size=4), Field("data_segment_granularity", 12),
    Field("inline_data_granularity", 13), reserved(14, 18)])
SUPPORTED_CSCD_IDS = Layout("supported CSCD IDs descriptor body", 2, [Field("list_length", 0, size=2)])
STREAM_COPY = Layout("stream copy operations descriptor body", 4, [
    Field("max_stream_transfer", 0, size=4)])
HELD_DATA = Layout("held data descriptor body", 8, [
    Field("held_data_limit", 0, size=4), Field("held_data_granularity", 4), reserved(5, 3)])

SUPPORTED_COMMANDS = 0x0001
PARAMETER_DATA_TYPE = 0x0004
SUPPORTED_DESCRIPTORS = 0x0008
SUPPORTED_CSCD_IDS_TYPE = 0x000C
GENERAL_COPY_TYPE = 0x8001
STREAM_COPY_TYPE = 0x9101
HELD_DATA_TYPE = 0xC001


def tpc_descriptor(type_: int, body: bytes) -> bytes:
    """Header + body padded with zeros to a multiple of 4."""
    body = body + bytes(-len(body) % 4)
    return TPC_DESCRIPTOR_HEADER.encode(type=type_, length=len(body)) + body


def counted_list(items: bytes) -> bytes:
    """A one-byte list length followed by the items (Supported Commands/Descriptors bodies)."""
    return bytes([len(items)]) + items


def page(descriptors: list[bytes], pdt: int = 0) -> bytes:
    body = b"".join(descriptors)
    return VPD_8F_HEADER.encode(pdt=pdt, page_length=len(body)) + body


def third_party_copy_page(limits: CopyLimits, codes: Sequence[int], *, commands: Mapping[int, Sequence[int]],
                          max_inline_length: int, streams: bool, pdt: int = 0) -> bytes:
    """VPD 8Fh for a copy manager with these limits and implemented descriptor ``codes``."""
    L = limits
    supported = b"".join(bytes([op, len(sas), *sas]) for op, sas in commands.items())
    descs = [
        tpc_descriptor(SUPPORTED_COMMANDS, counted_list(supported)),
        tpc_descriptor(PARAMETER_DATA_TYPE, PARAMETER_DATA.encode(
            max_cscds=L.max_cscds, max_segments=L.max_segments,
            max_descriptor_list_length=L.max_descriptor_list_length, max_inline_length=max_inline_length)),
        tpc_descriptor(SUPPORTED_DESCRIPTORS, counted_list(bytes(codes))),
        tpc_descriptor(SUPPORTED_CSCD_IDS_TYPE, SUPPORTED_CSCD_IDS.encode(list_length=0)),
        tpc_descriptor(GENERAL_COPY_TYPE, GENERAL_COPY.encode(
            total_concurrent_copies=L.total_concurrent_copies,
            max_identified_concurrent_copies=L.max_concurrent_copies,
            max_segment_length=L.max_segment_length, data_segment_granularity=L.data_segment_granularity,
            inline_data_granularity=L.inline_data_granularity)),
    ]
    if streams:
        descs.append(tpc_descriptor(STREAM_COPY_TYPE, STREAM_COPY.encode(max_stream_transfer=L.max_stream_transfer)))
    if L.held_data_limit:
        descs.append(tpc_descriptor(HELD_DATA_TYPE, HELD_DATA.encode(
            held_data_limit=L.held_data_limit, held_data_granularity=L.held_data_granularity)))
    return page(descs, pdt)
