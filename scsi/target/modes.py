"""MODE SENSE(6)/(10) for block LUNs: header, block descriptor, Caching/Control/IE pages.

The pages are fixed (no MODE SELECT): current, default and saved values are
the same, changeable values are all zero.  DPOFUA is set because READ/WRITE
honour FUA (the write is synced before status) and accept DPO.
"""
from __future__ import annotations

from scsi.layout import Field, Layout, bits, flag

from scsi.target import errors
from scsi.target.cdbs import MODE_SENSE_6_CDB, MODE_SENSE_10_CDB

HEADER_6 = Layout("mode parameter header(6)", 4, [
    Field("mode_data_length", 0), Field("medium_type", 1), flag("wp", 2, 7), flag("dpofua", 2, 4),
    Field("block_descriptor_length", 3),
])
HEADER_10 = Layout("mode parameter header(10)", 8, [
    Field("mode_data_length", 0, size=2), Field("medium_type", 2), flag("wp", 3, 7),
    flag("dpofua", 3, 4), flag("longlba", 4, 0), Field("block_descriptor_length", 6, size=2),
])
SHORT_BLOCK_DESCRIPTOR = Layout("short LBA block descriptor", 8, [
    Field("blocks", 0, size=4), Field("block_length", 5, size=3),
])
LONG_BLOCK_DESCRIPTOR = Layout("long LBA block descriptor", 16, [
    Field("blocks", 0, size=8), Field("block_length", 12, size=4),
])
CACHING_PAGE = Layout("Caching mode page", 20, [
    flag("ps", 0, 7), flag("spf", 0, 6), bits("page_code", 0, 0, 6), Field("page_length", 1),
    flag("wce", 2, 2), flag("rcd", 2, 0),
])
CONTROL_PAGE = Layout("Control mode page", 12, [
    flag("ps", 0, 7), flag("spf", 0, 6), bits("page_code", 0, 0, 6), Field("page_length", 1),
    bits("tst", 2, 5, 3), flag("d_sense", 2, 2), bits("qam", 3, 4, 4), flag("tas", 5, 7),
    Field("busy_timeout", 8, size=2),
])
IE_PAGE = Layout("Informational Exceptions mode page", 12, [
    flag("ps", 0, 7), flag("spf", 0, 6), bits("page_code", 0, 0, 6), Field("page_length", 1),
    bits("mrie", 3, 0, 4),
])

PAGES = {0x08: (CACHING_PAGE, {"wce": 1}), 0x0A: (CONTROL_PAGE, {"qam": 1, "busy_timeout": 0xFFFF}),
         0x1C: (IE_PAGE, {})}
ALL_PAGES = 0x3F


def _page(code: int, changeable: bool) -> bytes:
    layout, values = PAGES[code]
    return layout.encode({} if changeable else values, page_code=code, page_length=layout.size - 2)


def mode_sense(cdb: bytes, *, ten: bool, num_blocks: int, block_size: int, read_only: bool,
               pages: tuple[int, ...] | None = None) -> bytes:
    """The full MODE SENSE answer for ``cdb`` (the caller trims it to the allocation length).

    ``pages`` limits the served pages (a tape has no Caching page).  Byte 2 bit 4
    is DPOFUA for a disk and, for a tape, the low bit of BUFFERED MODE (001b).
    """
    served = sorted(PAGES if pages is None else set(pages) & set(PAGES))
    layout = MODE_SENSE_10_CDB if ten else MODE_SENSE_6_CDB
    c = layout.decode(cdb[:layout.size], strict=False)
    if c["pc"] == 3:
        raise errors.saving_not_supported(layout, "pc")
    code, sub = c["page_code"], c["subpage_code"]
    if code == ALL_PAGES:
        if sub not in (0x00, 0xFF):
            raise errors.invalid_field(layout, "subpage_code")
        codes = served
    elif code in served:
        if sub != 0:
            raise errors.invalid_field(layout, "subpage_code")
        codes = [code]
    else:
        raise errors.invalid_field(layout, "page_code", f"mode page {code:#04x} is not supported")
    pages = b"".join(_page(p, c["pc"] == 1) for p in codes)
    descriptor = b""
    if not c["dbd"]:
        if ten and c["llbaa"]:
            descriptor = LONG_BLOCK_DESCRIPTOR.encode(blocks=num_blocks, block_length=block_size)
        else:
            descriptor = SHORT_BLOCK_DESCRIPTOR.encode(blocks=min(num_blocks, 0xFFFFFFFF),
                                                       block_length=block_size)
    if ten:
        total = HEADER_10.size + len(descriptor) + len(pages)
        header = HEADER_10.encode(mode_data_length=total - 2, wp=int(read_only), dpofua=1,
                                  longlba=int(len(descriptor) == 16), block_descriptor_length=len(descriptor))
    else:
        total = HEADER_6.size + len(descriptor) + len(pages)
        header = HEADER_6.encode(mode_data_length=min(total - 1, 0xFF), wp=int(read_only), dpofua=1,
                                 block_descriptor_length=len(descriptor))
    return header + descriptor + pages
