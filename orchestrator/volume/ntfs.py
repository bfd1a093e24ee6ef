"""NTFS geometry and allocation bitmap through dissect.ntfs (a maintained parser).

The used clusters come from ``$Bitmap`` (MFT record 6), one bit per cluster.
Damaged or truncated volumes give a `VolumeError` naming what is wrong; the
bitmap's size is checked before it is read so a corrupt run list cannot make
us allocate gigabytes.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import numpy as np
from dissect.ntfs import NTFS
from dissect.ntfs import exceptions as ntfs_errors
from dissect.ntfs.c_ntfs import c_ntfs

from orchestrator.volume.source import ReaderStream, VolumeError, VolumeReader

log = logging.getLogger(__name__)

BITMAP_RECORD = 6  # $Bitmap's fixed MFT record number
# dissect.ntfs follows pointers read from the volume; on damaged bytes these are the ways it fails
# (NotImplementedError: an index with a garbled collation rule; RecursionError: cyclic references).
_PARSE_ERRORS = (ntfs_errors.Error, EOFError, ValueError, KeyError, IndexError, OverflowError,
                 ZeroDivisionError, struct.error, AttributeError, TypeError, NotImplementedError, RecursionError,
                 OSError)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class NtfsAllocation:
    """What NTFS says about its clusters."""

    sector_size: int
    cluster_size: int
    total_clusters: int
    volume_sectors: int  # NumberSectors from the boot sector (the backup boot sector follows them)
    bitmap: np.ndarray  # uint8, at least ceil(total_clusters / 8) bytes

    @property
    def cluster_area_bytes(self) -> int:
        return self.total_clusters * self.cluster_size

    @property
    def filesystem_bytes(self) -> int:
        """Bytes the file system spans, backup boot sector included."""
        return (self.volume_sectors + 1) * self.sector_size


def _check_boot_sector(reader: VolumeReader, name: str) -> int:
    """Sector size and volume length, checked before the parser follows any pointer."""
    boot = c_ntfs.BOOT_SECTOR(reader.read(0, 512))
    sector_size = int(boot.Bpb.BytesPerSector)
    spc = int(boot.Bpb.SectorsPerCluster) & 0xFF
    spc = 1 << (256 - spc) if spc > 0x80 else spc
    if sector_size not in (512, 1024, 2048, 4096) or not spc or spc * sector_size > 2 * 1024 * 1024:
        raise VolumeError(f"{name}: NTFS boot sector bytes 11-13 give sector size {sector_size} and "
                          f"{spc} sectors per cluster, which NTFS does not use")
    sectors = int(boot.NumberSectors)
    if sectors * sector_size > reader.size:
        raise VolumeError(f"{name}: NTFS boot sector (byte 40) says {sectors} sectors ({sectors * sector_size} "
                          f"bytes), but the volume holds only {reader.size} bytes: truncated image?")
    return sectors


def read_ntfs_allocation(reader: VolumeReader, name: str = "volume") -> NtfsAllocation:
    """Cluster size, cluster count and the ``$Bitmap`` of an NTFS volume."""
    sectors = _check_boot_sector(reader, name)
    try:
        fs = NTFS(ReaderStream(reader))
    except _PARSE_ERRORS as exc:
        raise VolumeError(f"{name}: NTFS boot sector at byte 0, but the volume cannot be opened: {_why(exc)}") from None
    total = sectors * fs.sector_size // fs.cluster_size
    need = (total + 7) // 8
    try:
        record = fs.mft.get(BITMAP_RECORD)
        size = record.size()
        if size < need or size > need + 64 * 1024:
            raise VolumeError(f"{name}: $Bitmap (MFT record {BITMAP_RECORD}) is {size} bytes, but {total} "
                              f"clusters need {need}: damaged file system")
        data = record.open().read(size)
    except VolumeError:
        raise
    except _PARSE_ERRORS as exc:
        raise VolumeError(f"{name}: cannot read $Bitmap (MFT record {BITMAP_RECORD}): {_why(exc)}") from None
    if len(data) < need:
        raise VolumeError(f"{name}: $Bitmap ended after {len(data)} of {need} bytes: truncated image?")
    log.debug("%s: NTFS, %d clusters of %d bytes", name, total, fs.cluster_size)
    return NtfsAllocation(fs.sector_size, fs.cluster_size, total, sectors, np.frombuffer(data, dtype=np.uint8))
