"""Block commands that write and then check, or read-modify-write (SBC-3: COMPARE AND WRITE,
ORWRITE(16), WRITE AND VERIFY, PRE-FETCH).

COMPARE AND WRITE and ORWRITE(16) run under the LUN's exclusive range lock
(:class:`scsi.luns.rangelock.RangeLock`), which every other write to the LUN
— any session, any command, the copy manager included — holds shared: that is
what makes VMware's ATS (COMPARE AND WRITE used as an on-disk lock) safe.

WRITE AND VERIFY writes, then checks what it wrote (BYTCHK 0: the blocks read
back; BYTCHK 1: read back and compared with the data-out).  PRE-FETCH has no
cache to fill; it checks the range and answers GOOD (SBC-3 lets a device
server that cannot cache the whole range answer GOOD rather than CONDITION MET).

Each function takes the device and one CDB and returns nothing (GOOD) or
raises :class:`scsi.target.errors.CheckCondition`.
"""
from __future__ import annotations

from typing import Any

from scsi.layout import Layout
from scsi.target import cdbs, errors
from scsi.target.block_extras import miscompare
from scsi.target.cdbs import (COMPARE_AND_WRITE_CDB, ORWRITE_16_CDB, PRE_FETCH_10_CDB, PRE_FETCH_16_CDB,
                              WRITE_VERIFY_10_CDB, WRITE_VERIFY_12_CDB, WRITE_VERIFY_16_CDB)

#: the BlockLunDevice that dispatches here (scsi.target.blockdev imports this module, not the reverse)
Device = Any

MAX_COMPARE_AND_WRITE_BLOCKS = 255  # the 1-byte NUMBER OF LOGICAL BLOCKS; VPD B0h MAXIMUM COMPARE AND WRITE LENGTH

WRITE_VERIFY_LAYOUTS = {cdbs.WRITE_VERIFY_10: WRITE_VERIFY_10_CDB, cdbs.WRITE_VERIFY_12: WRITE_VERIFY_12_CDB,
                        cdbs.WRITE_VERIFY_16: WRITE_VERIFY_16_CDB}
PRE_FETCH_LAYOUTS = {cdbs.PRE_FETCH_10: PRE_FETCH_10_CDB, cdbs.PRE_FETCH_16: PRE_FETCH_16_CDB}


def _decode(layout: Layout, cdb: bytes) -> dict:
    return layout.decode(cdb[:layout.size], strict=False)


def _checked_range(dev: Device, layout: Layout, c: dict, *, limit: int | None = None) -> tuple[int, int]:
    """LBA and block count after the checks every medium command shares (PI, range, transfer limit)."""
    if c.get("protect"):
        raise errors.invalid_field(layout, "protect", "protection information is not supported")
    lba, count = c["lba"], c["transfer_length"]
    if lba + count > dev.lun.num_blocks:
        raise errors.lba_out_of_range(lba, count, dev.lun.num_blocks)
    limit = dev.max_transfer_blocks if limit is None else limit
    if count > limit:
        raise errors.invalid_field(layout, "transfer_length", f"{count} blocks exceed the {limit}-block limit")
    return lba, count


def _writable(dev: Device) -> None:
    if dev.lun.read_only:
        raise errors.write_protected()


def data_out_length(cdb: bytes, block_size: int) -> int | None:
    """Data-out bytes these commands ask for (COMPARE AND WRITE: twice the blocks), for iSCSI residuals."""
    op = cdb[0]
    layout = WRITE_VERIFY_LAYOUTS.get(op) or {cdbs.ORWRITE_16: ORWRITE_16_CDB,
                                               cdbs.COMPARE_AND_WRITE: COMPARE_AND_WRITE_CDB}.get(op)
    if layout is None:
        return 0 if op in PRE_FETCH_LAYOUTS else None
    if len(cdb) < layout.size:
        return None
    blocks = _decode(layout, cdb)["transfer_length"]
    return blocks * block_size * (2 if op == cdbs.COMPARE_AND_WRITE else 1)


# -- COMPARE AND WRITE ------------------------------------------------------------------------
def compare_and_write(dev: Device, cdb: bytes, data_out: bytes) -> None:
    """Compare the first half of the data-out with the blocks; equal: write the second half (atomic)."""
    c = _decode(COMPARE_AND_WRITE_CDB, cdb)
    lba, count = _checked_range(dev, COMPARE_AND_WRITE_CDB, c, limit=MAX_COMPARE_AND_WRITE_BLOCKS)
    _writable(dev)
    bs = dev.lun.block_size
    if len(data_out) != 2 * count * bs:
        # The Data-Out must carry exactly the verify and the write instance (SBC-3 COMPARE AND WRITE): a transfer
        # length that disagrees with NUMBER OF LOGICAL BLOCKS is a bad CDB, and nothing is written.
        raise errors.invalid_field(COMPARE_AND_WRITE_CDB, "transfer_length",
                                   f"{len(data_out)} data-out bytes for {count} blocks (want {2 * count * bs})")
    if count == 0:
        return
    differs = dev.lun.compare_and_write(lba, bytes(data_out[:count * bs]), bytes(data_out[count * bs:]))
    if differs is not None:
        dev._count("compare_and_write_miscompares")
        raise miscompare(differs)
    if c["fua"]:
        dev.lun.flush()
    dev._count("write_bytes", count * bs)


# -- ORWRITE(16) ------------------------------------------------------------------------------
def or_write(dev: Device, cdb: bytes, data_out: bytes) -> None:
    c = _decode(ORWRITE_16_CDB, cdb)
    lba, count = _checked_range(dev, ORWRITE_16_CDB, c)
    _writable(dev)
    if count == 0:
        return
    need = count * dev.lun.block_size
    if len(data_out) < need:
        raise errors.param_list_length_error()
    dev.lun.or_write(lba, bytes(data_out[:need]))
    if c["fua"]:
        dev.lun.flush()
    dev._count("write_bytes", need)


# -- WRITE AND VERIFY -------------------------------------------------------------------------
def write_and_verify(dev: Device, cdb: bytes, data_out: bytes) -> None:
    layout = WRITE_VERIFY_LAYOUTS[cdb[0]]
    c = _decode(layout, cdb)
    lba, count = _checked_range(dev, layout, c)
    if c["bytchk"] > 1:
        raise errors.invalid_field(layout, "bytchk", f"BYTCHK {c['bytchk']:02b}b is reserved")
    _writable(dev)
    if count == 0:
        return
    bs = dev.lun.block_size
    blocks = min(count, len(data_out) // bs)  # a short Data-Out (residual overflow): the blocks that came
    if blocks == 0:
        return
    data = bytes(data_out[:blocks * bs])
    dev.lun.write(lba, data)
    dev.lun.flush()  # verify what is on the medium, not what is in a cache
    back = dev.lun.read(lba, blocks)
    if c["bytchk"] and back != data:
        raise miscompare(next(i for i in range(len(data)) if back[i] != data[i]))
    dev._count("write_bytes", len(data))


# -- PRE-FETCH --------------------------------------------------------------------------------
def pre_fetch(dev: Device, cdb: bytes, data_out: bytes) -> None:
    layout = PRE_FETCH_LAYOUTS[cdb[0]]
    _checked_range(dev, layout, _decode(layout, cdb), limit=dev.lun.num_blocks)
