"""File-system detection, damaged volumes, and the server-free verdict per volume."""
from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from dissect.ntfs import NTFS

from orchestrator.options import parse_options
from tests.fixtures.fatimage import FAT_GEOMETRY, fsck_fat_geometry
from orchestrator.volume import BytesVolume, FileSystem, VolumeError, analyze_volume, read_used_extents
from orchestrator.volume.source import ReaderStream, open_volume


@pytest.mark.parametrize("kind, fs", [("fat12", FileSystem.FAT12), ("fat16", FileSystem.FAT16),
                                      ("fat32", FileSystem.FAT32)])
def test_fat_types_are_told_apart(fat_image, kind: str, fs: FileSystem):
    path = fat_image(kind)
    bits, cluster = fsck_fat_geometry(path)  # the outside judge: dosfstools' own reading
    assert bits == FAT_GEOMETRY[kind][0] and cluster == 512 * FAT_GEOMETRY[kind][2]
    layout = read_used_extents(path)
    assert layout.filesystem is fs and fs.name == f"FAT{bits}"
    assert layout.cluster_size == cluster
    # FAT volumes are copied whole: imagegapsize does not apply
    assert layout.extents(32 * 1024).tolist() == [[0, path.stat().st_size]]


def test_random_bytes_are_a_raw_volume():
    data = random.Random(1).randbytes(200_000)
    layout = read_used_extents(BytesVolume(data), name="rawlun")
    assert layout.filesystem is FileSystem.RAW and layout.cluster_size is None
    assert layout.extents(5 * 1024 * 1024).tolist() == [[0, 200_000]]


def test_tiny_and_empty_volumes():
    assert read_used_extents(BytesVolume(b"\x01" * 100)).filesystem is FileSystem.RAW
    with pytest.raises(VolumeError, match="volume is empty"):
        read_used_extents(BytesVolume(b""), name="empty")


def test_exfat_is_recognised_by_its_oem_id():
    boot = bytearray(4096)
    boot[3:11] = b"EXFAT   "
    assert read_used_extents(BytesVolume(bytes(boot))).filesystem is FileSystem.EXFAT


def test_fat_signature_without_a_valid_bpb_is_raw():
    boot = bytearray(8192)
    boot[510:512] = b"\x55\xaa"  # an MBR-like sector, no BPB
    assert read_used_extents(BytesVolume(bytes(boot))).filesystem is FileSystem.RAW


def test_truncated_fat_volume_is_reported(fat_image):
    data = fat_image("fat16").read_bytes()[: 1024 * 1024]
    with pytest.raises(VolumeError, match=r"FAT boot sector .* says 32768 sectors .* only 1048576 bytes"):
        read_used_extents(BytesVolume(data), name="cut")


def test_missing_path_and_directory(tmp_path: Path):
    with pytest.raises(VolumeError, match="no such volume image or device"):
        read_used_extents(tmp_path / "nothing.img")
    with pytest.raises(VolumeError, match="is a directory"):
        read_used_extents(tmp_path)
    with pytest.raises(TypeError, match="need a path, a block LUN"):
        open_volume(42)  # type: ignore[arg-type]


def test_truncated_ntfs_image_names_the_boot_sector_field(bundled_image: Path):
    data = bundled_image.read_bytes()[: 1024 * 1024]
    with pytest.raises(VolumeError, match=r"cut: NTFS boot sector \(byte 40\) says 16383 sectors .*truncated"):
        read_used_extents(BytesVolume(data), name="cut")


def _mft_offset(data: bytes) -> int:
    fs = NTFS(io.BytesIO(data))
    return fs.boot_sector.MftStartLcn * fs.cluster_size


def test_damaged_bitmap_record_is_reported(bundled_image: Path):
    data = bytearray(bundled_image.read_bytes())
    record6 = _mft_offset(bytes(data)) + 6 * 1024
    data[record6:record6 + 4] = b"JUNK"
    with pytest.raises(VolumeError, match=r"d: cannot read \$Bitmap \(MFT record 6\)"):
        read_used_extents(BytesVolume(bytes(data)), name="d")


def test_damaged_mft_is_reported(bundled_image: Path):
    data = bytearray(bundled_image.read_bytes())
    mft = _mft_offset(bytes(data))
    data[mft:mft + 1024] = b"\xff" * 1024
    with pytest.raises(VolumeError, match="NTFS boot sector at byte 0, but the volume cannot be opened"):
        read_used_extents(BytesVolume(bytes(data)), name="d")


def test_random_damage_gives_a_layout_or_a_volume_error(bundled_image: Path):
    """Whatever bytes are wrong, analysis ends with a result or a VolumeError, never another exception."""
    clean = bundled_image.read_bytes()
    mft = _mft_offset(clean)
    rng = random.Random(2026)
    outcomes = set()
    for _ in range(50):
        data = bytearray(clean)
        low, high = rng.choice([(0, 512), (mft, mft + 8 * 1024), (mft + 6 * 1024, mft + 7 * 1024)])
        for _ in range(rng.choice([1, 4, 40])):
            data[rng.randrange(low, high)] = rng.randrange(256)
        try:
            read_used_extents(BytesVolume(bytes(data)), name="fuzz")
            outcomes.add("layout")
        except VolumeError as exc:
            assert str(exc).startswith("fuzz: ") and len(str(exc)) > len("fuzz: ") + 10
            outcomes.add("error")
    assert outcomes == {"layout", "error"}


def test_reader_stream_behaves_like_a_file():
    stream = ReaderStream(BytesVolume(b"0123456789"))
    assert stream.read(3) == b"012"
    stream.seek(-2, io.SEEK_END)
    assert stream.read() == b"89" and stream.read(5) == b""
    buf = bytearray(4)
    stream.seek(1)
    assert stream.readinto(buf) == 4 and bytes(buf) == b"1234"
    with pytest.raises(OSError, match="negative"):
        stream.seek(-1)


# --- the per-volume server-free verdict ---------------------------------------------------------

def test_fat32_is_not_server_free_eligible_and_says_why(fat_image):
    opts = parse_options("enableserverfree yes\n").for_volume("f:")
    _, report = analyze_volume(fat_image("fat32"), opts)
    assert not report.eligibility.serverfree
    assert any("FAT32 volume" in r and "only available for NTFS and raw" in r for r in report.eligibility.reasons)
    assert report.whole_volume_copied


def test_ntfs_with_enableserverfree_is_eligible(bundled_image: Path):
    opts = parse_options("enableserverfree yes\ninclude.image vol SFMC\ncompression yes\nencryptkey save\n")
    _, report = analyze_volume(bundled_image, opts.for_volume("vol"), name="vol")
    assert report.eligibility.serverfree and report.eligibility.reasons == []
    notes = " ".join(report.eligibility.notes)
    assert "compression yes is not applied" in notes and "never encrypted" in notes and "SFMC" in notes


def test_without_enableserverfree_or_when_excluded(bundled_image: Path):
    opts = parse_options("exclude.image vol\n")
    _, report = analyze_volume(bundled_image, opts.for_volume("vol"), name="vol")
    reasons = " | ".join(report.eligibility.reasons)
    assert "enableserverfree is no" in reasons and "excluded from image backup by exclude.image at dsm.opt:1" in reasons


def test_raw_volume_is_eligible_and_copied_whole():
    opts = parse_options("enableserverfree yes\n").for_volume("lun")
    _, report = analyze_volume(BytesVolume(bytes(100_000)), opts, name="lun")
    assert report.filesystem is FileSystem.RAW and report.eligibility.serverfree
    assert all(p.bytes_to_move == 100_000 for p in report.paths)


def test_report_gives_each_path_its_own_default_gap(bundled_image: Path):
    _, report = analyze_volume(bundled_image, with_extents=True)
    by_path = {p.path: p for p in report.paths}
    assert by_path["serverfree"].imagegapsize == 5 * 1024 * 1024
    assert by_path["lan"].imagegapsize == by_path["lanfree"].imagegapsize == 32 * 1024
    # a bigger gap never moves fewer bytes nor needs more extents
    assert by_path["serverfree"].bytes_to_move >= by_path["lan"].bytes_to_move
    assert by_path["serverfree"].extent_count <= by_path["lan"].extent_count
    for plan in report.paths:
        assert plan.extents is not None and len(plan.extents) == plan.extent_count
        assert sum(n for _, n in plan.extents) == plan.bytes_to_move
    assert report.used_bytes == report.used_clusters * 4096
