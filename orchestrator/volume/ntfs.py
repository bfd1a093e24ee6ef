"""NTFS geometry and allocation bitmap through dissect.ntfs (a maintained parser).

The used clusters come from ``$Bitmap`` (MFT record 6), one bit per cluster.
A 16 TiB volume's bitmap is 512 MiB, so `ntfs_bitmap_chunks` hands it out in
bounded chunks (as ntfsclone walks it) rather than whole.  Damaged or
truncated volumes give a `VolumeError` naming what is wrong; the bitmap's size
is checked before it is read so a corrupt run list cannot make us read
gigabytes.
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from dissect.ntfs import NTFS
from dissect.ntfs import exceptions as ntfs_errors
from dissect.ntfs.c_ntfs import c_ntfs

from orchestrator.volume.source import ReaderStream, VolumeError, VolumeReader

log = logging.getLogger(__name__)

BITMAP_RECORD = 6  # $Bitmap's fixed MFT record number
CHUNK_BYTES = 4 * 1024 * 1024  # $Bitmap bytes read at a time (32 Gi clusters' worth of 4 KiB: 128 GiB of volume)
# dissect.ntfs follows pointers read from the volume; on damaged bytes these are the ways it fails
# (NotImplementedError: an index with a garbled collation rule; RecursionError: cyclic references).
_PARSE_ERRORS = (ntfs_errors.Error, EOFError, ValueError, KeyError, IndexError, OverflowError,
                 ZeroDivisionError, struct.error, AttributeError, TypeError, NotImplementedError, RecursionError,
                 OSError)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class NtfsGeometry:
    """What the NTFS boot sector says about clusters."""

    sector_size: int
    cluster_size: int
    total_clusters: int
    volume_sectors: int  # NumberSectors from the boot sector (the backup boot sector follows them)

    @property
    def cluster_area_bytes(self) -> int:
        return self.total_clusters * self.cluster_size

    @property
    def filesystem_bytes(self) -> int:
        """Bytes the file system spans, backup boot sector included."""
        return (self.volume_sectors + 1) * self.sector_size

    @property
    def bitmap_bytes(self) -> int:
        """Bytes of ``$Bitmap`` that describe clusters."""
        return (self.total_clusters + 7) // 8


@dataclass(frozen=True)
class NtfsAllocation(NtfsGeometry):
    """The geometry plus the whole ``$Bitmap`` in memory (small volumes and tests; large ones stream)."""

    bitmap: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))  # uint8, at least ceil(total_clusters / 8) bytes


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


def _open_ntfs(reader: VolumeReader, name: str) -> tuple[NtfsGeometry, NTFS]:
    sectors = _check_boot_sector(reader, name)
    try:
        fs = NTFS(ReaderStream(reader))
    except _PARSE_ERRORS as exc:
        raise VolumeError(f"{name}: NTFS boot sector at byte 0, but the volume cannot be opened: {_why(exc)}") from None
    total = sectors * fs.sector_size // fs.cluster_size
    return NtfsGeometry(fs.sector_size, fs.cluster_size, total, sectors), fs


def read_ntfs_geometry(reader: VolumeReader, name: str = "volume") -> NtfsGeometry:
    """Sector size, cluster size and cluster count, from the boot sector as dissect.ntfs reads it."""
    return _open_ntfs(reader, name)[0]


def ntfs_bitmap_chunks(reader: VolumeReader, name: str = "volume",
                       chunk_bytes: int | None = None) -> Iterator[np.ndarray]:
    """``$Bitmap`` in order, ``chunk_bytes`` at a time, only as many bytes as there are clusters.

    Each chunk is a uint8 view of one buffer reused for the next chunk: use it
    (e.g. feed an `ExtentStream`) before asking for the next.
    """
    geometry, fs = _open_ntfs(reader, name)
    need = geometry.bitmap_bytes
    try:
        record = fs.mft.get(BITMAP_RECORD)
        size = record.size()
        if size < need or size > need + 64 * 1024:
            raise VolumeError(f"{name}: $Bitmap (MFT record {BITMAP_RECORD}) is {size} bytes, but "
                              f"{geometry.total_clusters} clusters need {need}: damaged file system")
        stream = record.open()
    except VolumeError:
        raise
    except _PARSE_ERRORS as exc:
        raise VolumeError(f"{name}: cannot read $Bitmap (MFT record {BITMAP_RECORD}): {_why(exc)}") from None
    log.debug("%s: NTFS, %d clusters of %d bytes", name, geometry.total_clusters, geometry.cluster_size)
    buffer = np.empty(min(max(chunk_bytes or CHUNK_BYTES, 8), max(need, 8)), dtype=np.uint8)
    done = 0
    while done < need:
        want = min(buffer.size, need - done)
        try:
            got = stream.readinto(memoryview(buffer)[:want])
        except _PARSE_ERRORS as exc:
            raise VolumeError(f"{name}: cannot read $Bitmap (MFT record {BITMAP_RECORD}) at byte {done}: "
                              f"{_why(exc)}") from None
        if not got:
            raise VolumeError(f"{name}: $Bitmap ended after {done} of {need} bytes: truncated image?")
        done += got
        yield buffer[:got]


def read_ntfs_allocation(reader: VolumeReader, name: str = "volume") -> NtfsAllocation:
    """The geometry and the whole ``$Bitmap`` in memory (for small volumes; large ones use the chunks)."""
    geometry = read_ntfs_geometry(reader, name)
    bitmap = np.concatenate([chunk.copy() for chunk in ntfs_bitmap_chunks(reader, name)] or
                            [np.zeros(0, dtype=np.uint8)])
    return NtfsAllocation(geometry.sector_size, geometry.cluster_size, geometry.total_clusters,
                          geometry.volume_sectors, bitmap)
