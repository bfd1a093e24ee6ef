"""A volume's layout: file system, clusters in use, and the extents a backup moves.

`read_layout` looks at the volume once; `VolumeLayout.extents(gap)` then gives
the byte extents for any imagegapsize, so each data path (server-free, LAN-free,
LAN) can use its own default gap without reading the volume again.

Rules (seed page and shared/reference/server-free-backup.md 2.1):
- NTFS: used clusters from ``$Bitmap``; free runs longer than imagegapsize are
  skipped, shorter ones copied; unused clusters after the last used one are
  dropped; imagegapsize 0 copies every block of the volume.
- FAT, FAT32, exFAT and raw volumes: every block (imagegapsize does not apply).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.volume.extents import add_extent, coalesce, used_runs
from orchestrator.volume.fat import read_fat_info
from orchestrator.volume.filesystem import FileSystem, sniff_boot_sector
from orchestrator.volume.ntfs import read_ntfs_allocation
from orchestrator.volume.source import BlockDevice, FileVolume, VolumeError, VolumeReader, open_volume


@dataclass(frozen=True)
class VolumeLayout:
    """What the volume's own bytes say, independent of any gap size."""

    name: str
    size: int
    filesystem: FileSystem
    cluster_size: int | None = None
    total_clusters: int | None = None
    used_clusters: int | None = None
    runs: np.ndarray | None = None  # NTFS: used runs in clusters, shape (n, 2)
    metadata_tail: tuple[int, int] | None = None  # NTFS: bytes after the cluster area (backup boot sector)

    @property
    def uses_bitmap(self) -> bool:
        """True when only used blocks are copied (NTFS); False when the whole volume is."""
        return self.filesystem is FileSystem.NTFS

    def whole_volume(self) -> np.ndarray:
        return np.array([[0, self.size]], dtype=np.int64) if self.size else np.zeros((0, 2), dtype=np.int64)

    def extents(self, gap_bytes: int) -> np.ndarray:
        """Byte extents ``[start, length]`` to copy with imagegapsize ``gap_bytes``."""
        if gap_bytes < 0:
            raise ValueError(f"imagegapsize {gap_bytes} is negative")
        if not self.uses_bitmap or gap_bytes == 0:
            return self.whole_volume()
        if self.runs is None or not self.cluster_size:
            raise VolumeError(f"{self.name}: NTFS layout without a cluster map")
        out = coalesce(self.runs, gap_bytes // self.cluster_size) * np.int64(self.cluster_size)
        if self.metadata_tail is not None:
            out = add_extent(out, *self.metadata_tail)
        return out


def read_layout(source: str | Path | VolumeReader | BlockDevice, name: str | None = None) -> VolumeLayout:
    """Detect the file system and, for NTFS, the used clusters.  Raises VolumeError on damage."""
    reader = open_volume(source)
    label = name or getattr(reader, "name", None) or str(source)
    try:
        return _read(reader, label)
    finally:
        if isinstance(reader, FileVolume) and reader is not source:
            reader.close()


def _read(reader: VolumeReader, name: str) -> VolumeLayout:
    if reader.size <= 0:
        raise VolumeError(f"{name}: volume is empty (0 bytes)")
    kind = sniff_boot_sector(reader)
    if kind is FileSystem.NTFS:
        alloc = read_ntfs_allocation(reader, name)
        runs = used_runs(alloc.bitmap, alloc.total_clusters)
        tail_end = min(reader.size, alloc.filesystem_bytes)
        tail = (alloc.cluster_area_bytes, tail_end - alloc.cluster_area_bytes)
        return VolumeLayout(
            name=name, size=reader.size, filesystem=FileSystem.NTFS, cluster_size=alloc.cluster_size,
            total_clusters=alloc.total_clusters, used_clusters=int(runs[:, 1].sum()),
            runs=runs, metadata_tail=tail if tail[1] > 0 else None,
        )
    if kind is None:
        fat = read_fat_info(reader, name)
        if fat is not None:
            return VolumeLayout(name=name, size=reader.size, filesystem=fat.filesystem,
                                cluster_size=fat.cluster_size, total_clusters=fat.total_clusters)
        kind = FileSystem.RAW
    return VolumeLayout(name=name, size=reader.size, filesystem=kind)
