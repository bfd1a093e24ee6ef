"""Logical block provisioning for file-backed LUNs: UNMAP, GET LBA STATUS, VPD B2h.

A sparse image file is a thin-provisioned LUN: UNMAP punches holes
(fallocate PUNCH_HOLE, so unmapped blocks read back as zeros: LBPRZ), and
GET LBA STATUS reports holes as deallocated using SEEK_DATA/SEEK_HOLE.
Only regular files qualify; other LUNs stay fully provisioned (LBPME=0).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
from pathlib import Path

from scsi.layout import Field, Layout, bits, flag

from scsi.target import errors

UNMAP_CDB = Layout("UNMAP", 10, [
    Field("opcode", 0), flag("anchor", 1, 0), bits("group", 6, 0, 5),
    Field("parameter_list_length", 7, size=2), Field("control", 9),
])
UNMAP_HEADER = Layout("UNMAP parameter list header", 8, [
    Field("data_length", 0, size=2), Field("descriptor_data_length", 2, size=2),
])
UNMAP_DESCRIPTOR = Layout("UNMAP block descriptor", 16, [
    Field("lba", 0, size=8), Field("blocks", 8, size=4),
])
GET_LBA_STATUS_CDB = Layout("GET LBA STATUS", 16, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), Field("lba", 2, size=8),
    Field("allocation_length", 10, size=4), Field("control", 15),
])
LBA_STATUS_DESCRIPTOR = Layout("LBA status descriptor", 16, [
    Field("lba", 0, size=8), Field("blocks", 8, size=4), bits("provisioning_status", 12, 0, 4),
])
LBP_VPD = Layout("VPD Logical Block Provisioning", 8, [
    bits("pdt", 0, 0, 5), Field("page_code", 1, const=0xB2), Field("page_length", 2, size=2),
    Field("threshold_exponent", 4), flag("lbpu", 5, 7), flag("lbpws", 5, 6), flag("lbpws10", 5, 5),
    flag("lbprz", 5, 2), flag("anc_sup", 5, 1), flag("dp", 5, 0), bits("provisioning_type", 6, 0, 3),
])

MAX_UNMAP_BLOCKS = 1 << 20
MAX_UNMAP_DESCRIPTORS = 256
MAX_LBA_STATUS_DESCRIPTORS = 1024
SA_GET_LBA_STATUS = 0x12
_FALLOC_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class Provisioning:
    """Thin provisioning of one LUN backed by the regular file at ``path``."""

    def __init__(self, path: Path, block_size: int, num_blocks: int, read_only: bool, ranges=None):
        self.ranges = ranges  # the LUN's RangeLock: a punched hole is a write COMPARE AND WRITE must not race
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.read_only = read_only
        self._fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        # Holes are punched in file-system blocks: report them as the physical block (READ CAPACITY(16)
        # LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT), so initiators align UNMAP and WRITE SAME to them.
        ratio = os.fstat(self._fd).st_blksize // block_size
        self.lbppbe = ratio.bit_length() - 1 if ratio > 1 and ratio & (ratio - 1) == 0 and ratio <= 1 << 15 else 0

    @classmethod
    def for_lun(cls, lun) -> "Provisioning | None":
        path = getattr(lun, "path", None)
        try:
            if path is None or not stat.S_ISREG(os.stat(path).st_mode):
                return None
            return cls(Path(path), lun.block_size, lun.num_blocks, lun.read_only, getattr(lun, "ranges", None))
        except OSError:
            return None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # devices built without an explicit close() must not leak the fd
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def vpd_b2(self, pdt: int) -> bytes:
        return LBP_VPD.encode(pdt=pdt, page_length=LBP_VPD.size - 4, lbpu=1, lbpws=1, lbpws10=1, lbprz=1,
                              provisioning_type=2)

    def punch_blocks(self, lba: int, blocks: int) -> None:
        """Deallocate ``blocks`` blocks from ``lba`` (WRITE SAME with UNMAP); the caller checked the range."""
        if self.read_only:
            raise errors.write_protected()
        if blocks:
            self._punch(lba * self.block_size, blocks * self.block_size)

    def unmap(self, cdb: bytes, params: bytes) -> None:
        c = UNMAP_CDB.decode(cdb[:10], strict=False)
        if c["anchor"]:
            raise errors.invalid_field(UNMAP_CDB, "anchor", "anchored LBAs are not supported")
        if self.read_only:
            raise errors.write_protected()
        length = c["parameter_list_length"]
        if length == 0:
            return
        if length < 8 or len(params) < length:
            raise errors.param_list_length_error()
        h = UNMAP_HEADER.decode(params[:8], strict=False)
        count = min(h["descriptor_data_length"], length - 8) // 16
        if count > MAX_UNMAP_DESCRIPTORS:
            raise errors.CheckCondition(_illegal(0x26, 0x00, 2), "too many UNMAP descriptors")
        ranges = []
        for i in range(count):
            d = UNMAP_DESCRIPTOR.unpack_from(params, 8 + 16 * i, strict=False)
            if d["lba"] + d["blocks"] > self.num_blocks:
                raise errors.lba_out_of_range(d["lba"], d["blocks"], self.num_blocks)
            if d["blocks"] > MAX_UNMAP_BLOCKS:
                raise errors.CheckCondition(_illegal(0x26, 0x00, 8 + 16 * i + 8), "UNMAP range too long")
            ranges.append((d["lba"], d["blocks"]))
        for lba, blocks in ranges:
            if blocks:
                self._punch(lba * self.block_size, blocks * self.block_size)

    def _punch(self, offset: int, length: int) -> None:
        if self.ranges is not None:
            with self.ranges.hold(offset // self.block_size, -(-length // self.block_size)):
                self._punch_unlocked(offset, length)
        else:
            self._punch_unlocked(offset, length)

    def _punch_unlocked(self, offset: int, length: int) -> None:
        if _libc.fallocate(self._fd, _FALLOC_PUNCH, offset, length) != 0:
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise OSError(err, os.strerror(err))
            os.pwrite(self._fd, bytes(length), offset)  # no hole support: zeros keep LBPRZ true

    def get_lba_status(self, cdb: bytes) -> bytes:
        """LBA status descriptors (SBC-3 GET LBA STATUS) from the LBA asked for, as many as the allocation length holds.

        The first descriptor starts at the STARTING LOGICAL BLOCK ADDRESS; each one covers an extent
        of mapped (data) or deallocated (hole) blocks, up to the last LBA.
        """
        c = GET_LBA_STATUS_CDB.decode(cdb[:16], strict=False)
        lba, alloc = c["lba"], c["allocation_length"]
        if lba >= self.num_blocks:
            raise errors.lba_out_of_range(lba, 1, self.num_blocks)
        room = max(1, min((alloc - 8) // LBA_STATUS_DESCRIPTOR.size, MAX_LBA_STATUS_DESCRIPTORS))
        body = b""
        while lba < self.num_blocks and len(body) < room * LBA_STATUS_DESCRIPTOR.size:
            status, end = self._extent(lba)
            blocks = min(end - lba, 0xFFFFFFFF)
            body += LBA_STATUS_DESCRIPTOR.encode(lba=lba, blocks=blocks, provisioning_status=status)
            lba += blocks
        data = (len(body) + 4).to_bytes(4, "big") + bytes(4) + body
        return data[:alloc]

    def _extent(self, lba: int) -> tuple[int, int]:
        """(provisioning status, end LBA) of the extent that starts at ``lba``: 0 mapped, 1 deallocated."""
        start = lba * self.block_size
        end = self.num_blocks * self.block_size
        try:
            data_at = os.lseek(self._fd, start, os.SEEK_DATA)
        except OSError:  # ENXIO: nothing but a hole after start
            data_at = end
        if data_at > start:
            return 1, max(lba + 1, min(data_at, end) // self.block_size)
        try:
            hole_at = min(os.lseek(self._fd, start, os.SEEK_HOLE), end)
        except OSError:
            hole_at = end
        return 0, max(lba + 1, -(-hole_at // self.block_size))


def _illegal(asc: int, ascq: int, field: int) -> bytes:
    from scsi.sense import illegal_request
    return illegal_request(asc, ascq, field=field, in_cdb=False).encode()
