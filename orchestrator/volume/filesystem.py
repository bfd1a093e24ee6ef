"""File-system detection from a volume's own first sector.

Only the boot sector is looked at here; the parsers that read further
(dissect.ntfs, dissect.fat) run afterwards in `layout`.  Anything without a
recognised boot sector is treated as a raw volume, which image backup copies
block for block.
"""
from __future__ import annotations

from enum import StrEnum

from orchestrator.volume.source import VolumeReader

SECTOR = 512
NTFS_OEM = b"NTFS    "
EXFAT_OEM = b"EXFAT   "


class FileSystem(StrEnum):
    NTFS = "ntfs"
    FAT12 = "fat12"
    FAT16 = "fat16"
    FAT32 = "fat32"
    EXFAT = "exfat"
    RAW = "raw"

    @property
    def label(self) -> str:
        return {"ntfs": "NTFS", "raw": "raw", "exfat": "exFAT"}.get(self.value, self.value.upper())

    @property
    def is_fat(self) -> bool:
        return self in (FileSystem.FAT12, FileSystem.FAT16, FileSystem.FAT32, FileSystem.EXFAT)


def sniff_boot_sector(reader: VolumeReader) -> FileSystem | None:
    """NTFS or exFAT by OEM id, ``None`` for "maybe FAT, maybe raw" (the FAT parser decides).

    Volumes smaller than one sector are raw.
    """
    if reader.size < SECTOR:
        return FileSystem.RAW
    boot = reader.read(0, SECTOR)
    if boot[3:11] == NTFS_OEM:
        return FileSystem.NTFS
    if boot[3:11] == EXFAT_OEM:
        return FileSystem.EXFAT
    if boot[510:512] != b"\x55\xaa":
        return FileSystem.RAW  # FAT boot sectors end with the 55 AA signature
    return None
