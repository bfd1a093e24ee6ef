"""A volume read from a LUN through pyscsi (READ(16)) is analysed exactly like its image file."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.volume import LunVolume, read_used_extents
from scsi.luns import MemoryBlockLun
from scsi.luns.remote import RemoteLun
from scsi.target.blockdev import BlockLunDevice


@pytest.fixture
def ntfs_lun(bundled_image: Path):  # type: ignore[no-untyped-def]
    data = bundled_image.read_bytes()
    backing = MemoryBlockLun("client-disk", num_blocks=len(data) // 512, serial="h7-ntfs")
    backing.write(0, data)
    lun = RemoteLun("client-disk", BlockLunDevice(backing))
    yield lun
    lun.close()


def test_ntfs_on_a_remote_lun_matches_the_image(ntfs_lun, bundled_image: Path):
    via_scsi = read_used_extents(ntfs_lun, name="lun:client-disk")
    via_file = read_used_extents(bundled_image)
    assert via_scsi.name == "lun:client-disk"
    assert (via_scsi.filesystem, via_scsi.cluster_size, via_scsi.used_clusters) == \
        (via_file.filesystem, via_file.cluster_size, via_file.used_clusters)
    assert via_scsi.extents(32 * 1024).tolist() == via_file.extents(32 * 1024).tolist()


class _CountingLun:
    """A block device with 4 KiB blocks that counts READs."""

    def __init__(self, data: bytes, block_size: int = 4096):
        self.data, self.block_size, self.reads = data, block_size, 0
        self.num_blocks = len(data) // block_size

    def read(self, lba: int, count: int) -> bytes:
        assert lba >= 0 and lba + count <= self.num_blocks, "read past the end of the LUN"
        self.reads += 1
        return self.data[lba * self.block_size:(lba + count) * self.block_size]


def test_unaligned_reads_are_served_from_whole_blocks():
    data = bytes(range(256)) * 1024  # 256 KiB
    lun = _CountingLun(data)
    vol = LunVolume(lun, cache_pages=2)
    assert vol.size == len(data)
    for offset, length in [(0, 1), (4095, 2), (65530, 20), (100_000, 70_000), (len(data) - 3, 10), (len(data), 5)]:
        assert vol.read(offset, length) == data[offset:offset + length]
    reads = lun.reads
    assert vol.read(4095, 2) == data[4095:4097] and lun.reads in (reads, reads + 1)
    vol.read(10, 10)
    vol.read(20, 10)
    assert lun.reads <= reads + 2  # page 0 is read at most once more, then cached


def test_analysis_of_a_raw_lun_reads_only_what_it_needs():
    lun = _CountingLun(bytes(64 * 1024 * 1024))
    layout = read_used_extents(lun, name="raw-lun")
    assert layout.filesystem.value == "raw" and layout.size == 64 * 1024 * 1024
    assert lun.reads <= 2  # the boot sector, not the whole 64 MiB


def test_zero_block_size_is_refused():
    with pytest.raises(ValueError, match="broken: block size 0 is not positive"):
        LunVolume(_ZeroBlockLun(), name="broken")


class _ZeroBlockLun:
    block_size = 0
    num_blocks = 10

    def read(self, lba: int, count: int) -> bytes:
        raise AssertionError("must not be read")
