"""INQUIRY data: the standard page and the VPD pages a block LUN serves (SPC-4, SBC-3)."""
from __future__ import annotations

from dataclasses import dataclass

from scsi.layout import Field, Layout, bits, flag, raw
from scsi.vpd import BLOCK_CHARACTERISTICS, BLOCK_LIMITS, DESIGNATION_HEADER, VPD_HEADER  # noqa: F401

VERSION_SPC4 = 0x06
# Version descriptors (SPC-4 table of version descriptor values).
VD_SAM5 = 0x00A0
VD_SPC4 = 0x0460
VD_SBC3 = 0x04C0
VD_SSC3 = 0x0300
VD_ISCSI = 0x0960

STANDARD_INQUIRY = Layout("standard INQUIRY data", 74, [
    bits("qualifier", 0, 5, 3), bits("pdt", 0, 0, 5), flag("rmb", 1, 7), Field("version", 2),
    flag("normaca", 3, 5), flag("hisup", 3, 4), bits("response_format", 3, 0, 4),
    Field("additional_length", 4), flag("sccs", 5, 7), flag("acc", 5, 6), bits("tpgs", 5, 4, 2),
    flag("tpc", 5, 3), flag("protect", 5, 0), flag("encserv", 6, 6), flag("multip", 6, 4),
    flag("cmdque", 7, 1), raw("vendor", 8, 8), raw("product", 16, 16), raw("revision", 32, 4),
    raw("vendor_specific", 36, 20), raw("version_descriptors", 58, 16),
])

@dataclass(frozen=True)
class Identity:
    """What INQUIRY reports about one LUN."""

    pdt: int
    vendor: str = "SRVFREE"
    product: str = "DATAMOVER LUN"
    revision: str = "0001"
    serial: str = ""
    designators: tuple[tuple[int, int, int, bytes], ...] = ()  # (code_set, association, type, value)
    tpc: bool = False  # 3PC: accepts EXTENDED COPY
    removable: bool = False


def _ascii(text: str, size: int) -> bytes:
    return text.encode("ascii", "replace")[:size].ljust(size, b" ")


def standard_inquiry(ident: Identity, qualifier: int = 0) -> bytes:
    """Standard INQUIRY data: SPC-4, HiSup, CmdQue, 3PC when the LUN accepts EXTENDED COPY."""
    descriptors = [VD_SAM5, VD_ISCSI, VD_SPC4, VD_SSC3 if ident.pdt == 0x01 else VD_SBC3]
    vd = b"".join(d.to_bytes(2, "big") for d in descriptors)
    return STANDARD_INQUIRY.encode(
        qualifier=qualifier, pdt=ident.pdt, rmb=int(ident.removable), version=VERSION_SPC4, hisup=1,
        response_format=2, additional_length=STANDARD_INQUIRY.size - 5, tpc=int(ident.tpc), cmdque=1,
        vendor=_ascii(ident.vendor, 8), product=_ascii(ident.product, 16),
        revision=_ascii(ident.revision, 4), version_descriptors=vd)


def vpd_page(pdt: int, page_code: int, body: bytes) -> bytes:
    return VPD_HEADER.encode(pdt=pdt, page_code=page_code, page_length=len(body)) + body


def supported_pages(pdt: int, pages: list[int]) -> bytes:
    return vpd_page(pdt, 0x00, bytes(sorted(pages)))


def unit_serial(ident: Identity) -> bytes:
    return vpd_page(ident.pdt, 0x80, ident.serial.encode("ascii", "replace"))


def device_identification(ident: Identity) -> bytes:
    """VPD 83h: the LUN's designators, the NAA 6h one first."""
    body = b""
    for code_set, association, dtype, value in ident.designators:
        body += DESIGNATION_HEADER.encode(code_set=code_set, association=association,
                                          designator_type=dtype, designator_length=len(value)) + value
    return vpd_page(ident.pdt, 0x83, body)


def block_limits(pdt: int, max_transfer_blocks: int, optimal_blocks: int, *, unmap_blocks: int = 0,
                 unmap_descriptors: int = 0, max_write_same: int = 0, max_compare_write: int = 0) -> bytes:
    return BLOCK_LIMITS.encode(pdt=pdt, page_length=BLOCK_LIMITS.size - 4, max_compare_write=max_compare_write,
                               max_transfer_length=max_transfer_blocks,
                               optimal_transfer_length=optimal_blocks, optimal_granularity=1,
                               max_unmap_lba_count=unmap_blocks, max_unmap_descriptors=unmap_descriptors,
                               optimal_unmap_granularity=1 if unmap_blocks else 0,
                               max_write_same_length=max_write_same)


def block_characteristics(pdt: int, rotation_rate: int = 1) -> bytes:
    return BLOCK_CHARACTERISTICS.encode(pdt=pdt, page_length=BLOCK_CHARACTERISTICS.size - 4,
                                        rotation_rate=rotation_rate)
