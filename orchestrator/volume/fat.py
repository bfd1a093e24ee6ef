"""FAT12/16/32 recognition through dissect.fat (a maintained parser).

Image backup copies FAT volumes whole (imagegapsize applies to NTFS only), and
server-free refuses them, so only the type and cluster size are needed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from dissect.fat import FATFS
from dissect.fat import exceptions as fat_errors

from orchestrator.volume.filesystem import FileSystem
from orchestrator.volume.source import ReaderStream, VolumeError, VolumeReader

log = logging.getLogger(__name__)

_PARSE_ERRORS = (fat_errors.Error, EOFError, ValueError, KeyError, IndexError, OverflowError, ZeroDivisionError,
                 OSError)


@dataclass(frozen=True)
class FatInfo:
    filesystem: FileSystem
    cluster_size: int
    total_clusters: int


def read_fat_info(reader: VolumeReader, name: str = "volume") -> FatInfo | None:
    """FAT type and geometry, or ``None`` when the boot sector is not a FAT BPB."""
    try:
        fs = FATFS(ReaderStream(reader))
    except fat_errors.InvalidBPB as exc:
        log.debug("%s: not FAT (%s)", name, exc)
        return None
    except _PARSE_ERRORS as exc:
        why = str(exc) or type(exc).__name__
        raise VolumeError(f"{name}: FAT boot sector at byte 0 is valid but the file system cannot be read: {why}") \
            from None
    kind = {"FAT12": FileSystem.FAT12, "FAT16": FileSystem.FAT16, "FAT32": FileSystem.FAT32}[fs.type.name]
    data_bytes = max(0, fs.total_sectors - fs.first_data_sector) * fs.sector_size
    if fs.total_sectors * fs.sector_size > reader.size:
        raise VolumeError(f"{name}: FAT boot sector (bytes 19-20/32-35) says {fs.total_sectors} sectors "
                          f"of {fs.sector_size} bytes, but the volume holds only {reader.size} bytes")
    return FatInfo(kind, fs.cluster_size, data_bytes // fs.cluster_size)
