"""A volume's used extents: file system, clusters in use, and the extents a backup moves.

`read_used_extents` looks at the volume once (the boot sector, and for NTFS a count
of ``$Bitmap``'s set bits); `UsedExtents.iter_extents(gap)` then streams the
byte extents for any imagegapsize by reading ``$Bitmap`` again chunk by chunk,
so each data path (server-free, LAN-free, LAN) can use its own gap and a
16 TiB volume's tens of millions of extents are never held at once.
`UsedExtents.extents(gap)` is the same as one array, for small volumes.

Rules (the TSM 5.1 Backup-Archive Client guide, imagegapsize and image backup):
- NTFS: used clusters from ``$Bitmap``; free runs longer than imagegapsize are
  skipped, shorter ones copied; unused clusters after the last used one are
  dropped; imagegapsize 0 copies every block of the volume.
- FAT, FAT32, exFAT and raw volumes: every block (imagegapsize does not apply).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from orchestrator.volume.extents import EMPTY, count_set_bits, iter_bitmap_extents
from orchestrator.volume.fat import read_fat_info
from orchestrator.volume.filesystem import FileSystem, sniff_boot_sector
from orchestrator.volume.ntfs import ntfs_bitmap_chunks, read_ntfs_geometry
from orchestrator.volume.source import BlockDevice, FileVolume, VolumeError, VolumeReader, open_volume


@dataclass(frozen=True)
class UsedExtents:
    """What the volume's own bytes say, independent of any gap size."""

    name: str
    size: int
    filesystem: FileSystem
    cluster_size: int | None = None
    total_clusters: int | None = None
    used_clusters: int | None = None
    bitmap: Callable[[], Iterator[np.ndarray]] | None = None  # NTFS: reads $Bitmap again, chunk by chunk
    metadata_tail: tuple[int, int] | None = None  # NTFS: bytes after the cluster area (backup boot sector)

    @property
    def uses_bitmap(self) -> bool:
        """True when only used blocks are copied (NTFS); False when the whole volume is."""
        return self.filesystem is FileSystem.NTFS

    def whole_volume(self) -> np.ndarray:
        return np.array([[0, self.size]], dtype=np.int64) if self.size else np.zeros((0, 2), dtype=np.int64)

    def iter_extents(self, gap_bytes: int) -> Iterator[np.ndarray]:
        """Byte extents ``[start, length]`` to copy with imagegapsize ``gap_bytes``, in ascending batches."""
        if gap_bytes < 0:
            raise ValueError(f"imagegapsize {gap_bytes} is negative")
        if not self.uses_bitmap or gap_bytes == 0:
            yield self.whole_volume()
            return
        if self.bitmap is None or not self.cluster_size or self.total_clusters is None:
            raise VolumeError(f"{self.name}: NTFS layout without a cluster map")
        batches = iter_bitmap_extents(self.bitmap(), self.total_clusters, self.cluster_size, gap_bytes)
        yield from _with_tail(batches, self.metadata_tail)

    def extents(self, gap_bytes: int) -> np.ndarray:
        """`iter_extents` as one array."""
        batches = list(self.iter_extents(gap_bytes))
        return np.concatenate(batches) if batches else EMPTY.copy()

    def iter_runs(self) -> Iterator[np.ndarray]:
        """NTFS: the runs of used clusters ``[start, length]`` in clusters, in ascending batches."""
        if self.bitmap is None or self.total_clusters is None:
            raise VolumeError(f"{self.name}: no cluster map (not NTFS)")
        return iter_bitmap_extents(self.bitmap(), self.total_clusters, 1, 1)


def _with_tail(batches: Iterator[np.ndarray], tail: tuple[int, int] | None) -> Iterator[np.ndarray]:
    """The batches, then the bytes after the cluster area (merged into the last extent when they touch)."""
    last = None
    for batch in batches:
        if last is not None:
            yield last
        last = batch
    if tail is None:
        if last is not None:
            yield last
        return
    start, length = tail
    if last is not None and last.size and int(last[-1, 0] + last[-1, 1]) >= start:
        last = last.copy()
        last[-1, 1] = max(int(last[-1, 1]), start + length - int(last[-1, 0]))
        yield last
        return
    if last is not None:
        yield last
    yield np.array([[start, length]], dtype=np.int64)


def _ntfs_bitmap(source: str | Path | VolumeReader | BlockDevice, name: str) -> Iterator[np.ndarray]:
    """``$Bitmap`` chunks, the volume opened for the walk and closed after it."""
    reader = open_volume(source)
    try:
        yield from ntfs_bitmap_chunks(reader, name)
    finally:
        if isinstance(reader, FileVolume) and reader is not source:
            reader.close()


def read_used_extents(source: str | Path | VolumeReader | BlockDevice, name: str | None = None,
                      declared: str | None = None) -> UsedExtents:
    """Detect the file system and, for NTFS, the used clusters.  Raises VolumeError on damage.

    ``declared`` is the file system the site file names for the volume.  When it
    differs from what the bytes say, the declaration wins and every block is
    copied: a volume declared raw whose bytes happen to hold an NTFS boot sector
    must not lose what its owner wrote into clusters that stale ``$Bitmap`` calls
    free (data loss in full images and image incrementals alike).
    """
    reader = open_volume(source)
    label = name or getattr(reader, "name", None) or str(source)
    try:
        layout = _read(reader, label, source)
    finally:
        if isinstance(reader, FileVolume) and reader is not source:
            reader.close()
    if declared is None:
        return layout
    try:
        kind = FileSystem(declared.lower())
    except ValueError:
        choices = ", ".join(f.value for f in FileSystem)
        raise VolumeError(f"{label}: filesystem {declared!r} is not one of {choices}") from None
    if layout.uses_bitmap and kind is not FileSystem.NTFS:
        return UsedExtents(name=label, size=layout.size, filesystem=kind)  # not NTFS's bitmap: every block
    return layout  # the same file system, or bytes without a bitmap: every block already


def _read(reader: VolumeReader, name: str, source: str | Path | VolumeReader | BlockDevice) -> UsedExtents:
    if reader.size <= 0:
        raise VolumeError(f"{name}: volume is empty (0 bytes)")
    kind = sniff_boot_sector(reader)
    if kind is FileSystem.NTFS:
        geometry = read_ntfs_geometry(reader, name)
        used = sum(count_set_bits(chunk, min(chunk.size * 8, geometry.total_clusters - done * 8))
                   for done, chunk in _offsets(ntfs_bitmap_chunks(reader, name)))
        tail_end = min(reader.size, geometry.filesystem_bytes)
        tail = (geometry.cluster_area_bytes, tail_end - geometry.cluster_area_bytes)
        return UsedExtents(
            name=name, size=reader.size, filesystem=FileSystem.NTFS, cluster_size=geometry.cluster_size,
            total_clusters=geometry.total_clusters, used_clusters=used,
            bitmap=partial(_ntfs_bitmap, source if not isinstance(source, (str, Path)) else Path(source), name),
            metadata_tail=tail if tail[1] > 0 else None,
        )
    if kind is None:
        fat = read_fat_info(reader, name)
        if fat is not None:
            return UsedExtents(name=name, size=reader.size, filesystem=fat.filesystem,
                                cluster_size=fat.cluster_size, total_clusters=fat.total_clusters)
        kind = FileSystem.RAW
    return UsedExtents(name=name, size=reader.size, filesystem=kind)


def _offsets(chunks: Iterator[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """Each chunk with the number of bytes before it."""
    done = 0
    for chunk in chunks:
        yield done, chunk
        done += chunk.size
