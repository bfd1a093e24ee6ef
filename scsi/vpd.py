"""VPD page layouts shared by the initiator side (reading a device's pages) and the LU emulation
(serving them): the page header and designation descriptor of SPC-4 r36f 7.8, Device Identification 83h
(SPC-4 r36f 7.8.6), Block Limits B0h (SBC-3; 6.5.3 in r22) and Block Device Characteristics B1h (SBC-3).
Declared once here; :mod:`scsi.designators` reads them, :mod:`scsi.target.inquiry` writes them.
"""
from __future__ import annotations

from scsi.layout import Field, Layout, bits, flag, reserved

VPD_HEADER = Layout("VPD page header", 4, [
    bits("qualifier", 0, 5, 3), bits("pdt", 0, 0, 5), Field("page_code", 1), Field("page_length", 2, size=2),
])

DESIGNATION_HEADER = Layout("designation descriptor", 4, [
    bits("protocol_id", 0, 4, 4), bits("code_set", 0, 0, 4),
    flag("piv", 1, 7), reserved(1, bit=6), bits("association", 1, 4, 2), bits("designator_type", 1, 0, 4),
    reserved(2), Field("designator_length", 3),
])

BLOCK_LIMITS = Layout("VPD Block Limits", 64, [
    bits("qualifier", 0, 5, 3), bits("pdt", 0, 0, 5), Field("page_code", 1, const=0xB0),
    Field("page_length", 2, size=2), flag("wsnz", 4, 0), Field("max_compare_write", 5),
    Field("optimal_granularity", 6, size=2), Field("max_transfer_length", 8, size=4),
    Field("optimal_transfer_length", 12, size=4), Field("max_prefetch_length", 16, size=4),
    Field("max_unmap_lba_count", 20, size=4), Field("max_unmap_descriptors", 24, size=4),
    Field("optimal_unmap_granularity", 28, size=4), Field("unmap_alignment", 32, size=4),
    Field("max_write_same_length", 36, size=8),
])

BLOCK_CHARACTERISTICS = Layout("VPD Block Device Characteristics", 64, [
    bits("qualifier", 0, 5, 3), bits("pdt", 0, 0, 5), Field("page_code", 1, const=0xB1),
    Field("page_length", 2, size=2), Field("rotation_rate", 4, size=2), bits("form_factor", 7, 0, 4),
])
