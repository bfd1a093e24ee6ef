"""WRITE SAME(10/16) and VERIFY(10/12/16) for a block LUN (SBC-3).

WRITE SAME with UNMAP set on a thin LUN deallocates the range whatever the
data-out block holds (unmapped blocks then read back as zeros, LBPRZ=1); this
is what Linux LIO does and what libiscsi's WriteSame*.Unmap* tests expect.

Kept apart from :mod:`scsi.target.blockdev` so the device class stays a
dispatcher: these functions take the device and one CDB and either return
nothing (GOOD) or raise :class:`scsi.target.errors.CheckCondition`.
"""
from __future__ import annotations

import logging
from typing import Any

from scsi.layout import Layout
from scsi.sense import SenseKey, sense_for
from scsi.target import cdbs, errors
from scsi.target.cdbs import (
    VERIFY_10_CDB,
    VERIFY_12_CDB,
    VERIFY_16_CDB,
    WRITE_SAME_10_CDB,
    WRITE_SAME_16_CDB,
)
from scsi.target.errors import CheckCondition

#: the BlockLunDevice that dispatches here (scsi.target.blockdev imports this module, not the reverse)
Device = Any

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # WRITE SAME and VERIFY work through the range this many bytes at a time
BYTCHK_NONE, BYTCHK_ALL, BYTCHK_ONE = 0, 1, 3

VERIFY_LAYOUTS = {cdbs.VERIFY_10: VERIFY_10_CDB, cdbs.VERIFY_12: VERIFY_12_CDB, cdbs.VERIFY_16: VERIFY_16_CDB}
WRITE_SAME_LAYOUTS = {cdbs.WRITE_SAME_10: WRITE_SAME_10_CDB, cdbs.WRITE_SAME_16: WRITE_SAME_16_CDB}


def miscompare(offset: int) -> CheckCondition:
    """MISCOMPARE DURING VERIFY OPERATION (1Dh/00h), INFORMATION = offset of the first differing byte."""
    sense = sense_for(SenseKey.MISCOMPARE, 0x1D, 0x00, information=offset).encode()
    return CheckCondition(sense, f"miscompare at data-out byte {offset}")


def _range(layout: Layout, c: dict, num_blocks: int) -> None:
    if c["protect"]:
        raise errors.invalid_field(layout, "protect", "protection information is not supported")
    if c["lba"] + c["transfer_length"] > num_blocks:
        raise errors.lba_out_of_range(c["lba"], c["transfer_length"], num_blocks)


# -- VERIFY ---------------------------------------------------------------------------------
def verify_data_out_length(cdb: bytes, block_size: int) -> int | None:
    layout = VERIFY_LAYOUTS[cdb[0]]
    if len(cdb) < layout.size:
        return None
    c = layout.decode(cdb[:layout.size], strict=False)
    if c["bytchk"] == BYTCHK_ALL:
        return c["transfer_length"] * block_size
    if c["bytchk"] == BYTCHK_ONE:
        return block_size if c["transfer_length"] else 0
    return 0


def verify(dev: Device, cdb: bytes, data_out: bytes) -> None:
    """VERIFY: every block must be readable; with BYTCHK the data-out must equal the blocks too."""
    layout = VERIFY_LAYOUTS[cdb[0]]
    c = layout.decode(cdb[:layout.size], strict=False)
    lun = dev.lun
    _range(layout, c, lun.num_blocks)
    bytchk, lba, count, bs = c["bytchk"], c["lba"], c["transfer_length"], lun.block_size
    if bytchk == 2:
        raise errors.invalid_field(layout, "bytchk", "BYTCHK 10b is reserved")
    if count == 0:
        return
    if count > dev.max_transfer_blocks and bytchk == BYTCHK_ALL:
        raise errors.invalid_field(layout, "transfer_length",
                                   f"{count} blocks exceed the {dev.max_transfer_blocks}-block limit")
    need = {BYTCHK_NONE: 0, BYTCHK_ALL: count * bs, BYTCHK_ONE: bs}[bytchk]
    if len(data_out) < need:
        raise errors.param_list_length_error()
    step = max(1, CHUNK_BYTES // bs)
    done = 0
    while done < count:
        n = min(step, count - done)
        blocks = lun.read(lba + done, n)
        if bytchk == BYTCHK_ALL:
            expect = data_out[done * bs:(done + n) * bs]
        elif bytchk == BYTCHK_ONE:
            expect = bytes(data_out[:bs]) * n
        else:
            expect = blocks
        if blocks != expect:
            first = next(i for i in range(len(blocks)) if blocks[i] != expect[i])
            raise miscompare(done * bs + first if bytchk == BYTCHK_ALL else first % bs)
        done += n
    dev._count("verify_bytes", count * bs)


# -- WRITE SAME -----------------------------------------------------------------------------
def write_same_data_out_length(cdb: bytes, block_size: int) -> int | None:
    layout = WRITE_SAME_LAYOUTS[cdb[0]]
    if len(cdb) < layout.size:
        return None
    c = layout.decode(cdb[:layout.size], strict=False)
    return 0 if c.get("ndob") else block_size


def write_same(dev: Device, cdb: bytes, data_out: bytes) -> None:
    """WRITE SAME: one block (zeros with NDOB) over a range; UNMAP deallocates when the block is zeros."""
    layout = WRITE_SAME_LAYOUTS[cdb[0]]
    c = layout.decode(cdb[:layout.size], strict=False)
    lun = dev.lun
    bs, lba = lun.block_size, c["lba"]
    if c["protect"]:
        raise errors.invalid_field(layout, "protect", "protection information is not supported")
    for name in ("anchor", "pbdata", "lbdata"):
        if c[name]:
            raise errors.invalid_field(layout, name, f"WRITE SAME {name.upper()} is not supported")
    if c["unmap"] and dev.thin is None:
        raise errors.invalid_field(layout, "unmap", "the LUN is not thin provisioned (LBPWS=0)")
    if lba > lun.num_blocks or (lba == lun.num_blocks and c["transfer_length"]):
        raise errors.lba_out_of_range(lba, c["transfer_length"], lun.num_blocks)
    count = c["transfer_length"] or lun.num_blocks - lba  # WSNZ=0: zero blocks means up to the end
    if lba + count > lun.num_blocks:
        raise errors.lba_out_of_range(lba, count, lun.num_blocks)
    if count > dev.max_write_same_blocks:
        raise errors.invalid_field(layout, "transfer_length",
                                   f"{count} blocks exceed the MAXIMUM WRITE SAME LENGTH of {dev.max_write_same_blocks}")
    if lun.read_only:
        raise errors.write_protected()
    if c.get("ndob"):
        block = bytes(bs)
    else:
        if len(data_out) != bs:
            raise errors.param_list_length_error()
        block = bytes(data_out)
    if count == 0:
        return
    if c["unmap"]:
        dev.thin.punch_blocks(lba, count)  # LBPRZ=1: deallocated blocks read back as this zero block
        dev._count("write_same_unmapped_bytes", count * bs)
        return
    step = max(1, CHUNK_BYTES // bs)
    done = 0
    while done < count:
        n = min(step, count - done)
        lun.write(lba + done, block * n)
        done += n
    dev._count("write_bytes", count * bs)
