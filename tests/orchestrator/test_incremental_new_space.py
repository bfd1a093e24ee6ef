"""Image incrementals over space the full image left out or held as zeros, on every local path.

A change written after the full image into a raw volume's all-zero area, a
new NTFS file in clusters that were free at the full (outside the full's
extents), and data zeroed or deleted after the full must all be restored as
the volume stood at the incremental: byte for byte over the volume's used
blocks (a raw volume: every block; NTFS: the clusters ``$Bitmap`` marks used
and the metadata tail), judged for NTFS by ntfs-3g's own tools too.  The
mutation tests prove the checks fail when an incremental skips the new
region.
"""
from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

import orchestrator.job.backup as backup_mod
from orchestrator.cli import main
from orchestrator.ops import StoredPiece
from orchestrator.piece_stream import PieceStream
from orchestrator.volume import read_used_extents
from tests.fixtures.sanlab_volume import NtfsVolume, delete_files, judge, listing, tools_missing, write_files

MIB = 1 << 20
PATHS = {"server-free": [], "lan-free": ["-enableserverfree=no"],
         "lan": ["-enableserverfree=no", "-enablelanfree=no"]}


def make_site(tmp: Path, size: int) -> None:
    (tmp / "dest.img").write_bytes(bytes(size))
    (tmp / "pool.img").write_bytes(bytes(3 * size + 8 * MIB))
    (tmp / "site.yaml").write_text(textwrap.dedent(f"""
        lan_pool: {{volumes: {{VOL1: pool.img}}}}
        verified_without_topology: true
        devices: {{disk0: vol.img, disk1: dest.img, pool0: pool.img}}
        movers: {{DM1: inprocess}}
        pool: {{name: POOL1, volumes: [{{name: VOL1, device: pool0, capacity: {3 * size + 8 * MIB}}}]}}
        volumes: {{"E:": {{device: disk0}}}}
    """))
    (tmp / "dsm.opt").write_text(f"nodename NODE1\nenableserverfree yes\nenablelanfree yes\n"
                                 f"imagetype static\ncatalog {tmp / 'cat.db'}\n")


def run(tmp: Path, capsys, *args: str) -> dict:
    rc = main([*args, "--site", str(tmp / "site.yaml"), "--options", str(tmp / "dsm.opt"), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    return json.loads(out.out)


def full_then_incremental(tmp: Path, capsys, path: str, change) -> tuple[dict, dict]:
    """Full image, ``change()`` the volume, incremental, restore -incremental to the blank disk1."""
    full = run(tmp, capsys, "backup", "image", "E:", *PATHS[path])
    assert full["outcome"] == "completed" and full["path_used"] == path, full
    change()
    inc = run(tmp, capsys, "backup", "image", "E:", "-mode=incremental", *PATHS[path])
    assert inc["outcome"] == "completed" and inc["path_used"] == path, inc
    restored = run(tmp, capsys, "restore", "image", "E:", "disk1", "-incremental", *PATHS[path])
    assert restored["outcome"] == "completed", restored
    return full, inc


def used_differences(src: Path, dest: Path) -> list[tuple[int, int]]:
    """Used byte ranges (as the source's own layout says now) where ``dest`` differs from ``src``."""
    layout = read_used_extents(str(src))
    if layout.uses_bitmap:
        cs = layout.cluster_size
        ranges = [(int(a) * cs, int(n) * cs) for b in layout.iter_runs() for a, n in b]
        ranges += [layout.metadata_tail] if layout.metadata_tail else []
    else:
        ranges = [(0, layout.size)]
    a, b = src.read_bytes(), dest.read_bytes()
    return [(o, n) for o, n in ranges if a[o:o + n] != b[o:o + n]]


# ---- raw volume: a write into an all-zero area, and data zeroed after the full ----------------------------

def raw_volume(tmp: Path) -> bytes:
    rng = random.Random(5)
    vol = bytearray(8 * MIB)
    vol[:MIB] = rng.randbytes(MIB)  # data only in the first MiB; the rest is zeros at the full
    vol[6 * MIB:6 * MIB + 200_000] = rng.randbytes(200_000)
    (tmp / "vol.img").write_bytes(bytes(vol))
    make_site(tmp, len(vol))
    return bytes(vol)


def change_raw(tmp: Path) -> None:
    rng = random.Random(6)
    with open(tmp / "vol.img", "r+b") as f:
        f.seek(3 * MIB + 12_345)  # an area that was all zeros at the full
        f.write(rng.randbytes(70_000))
        f.seek(6 * MIB + 4096)  # data zeroed after the full: the restore must not bring the old bytes back
        f.write(bytes(50_000))


@pytest.mark.parametrize("path", sorted(PATHS))
def test_raw_write_into_zero_area_and_zeroing_are_restored(tmp_path, capsys, path):
    before = raw_volume(tmp_path)
    full, inc = full_then_incremental(tmp_path, capsys, path, lambda: change_raw(tmp_path))
    now = (tmp_path / "vol.img").read_bytes()
    assert now != before
    assert 0 < inc["image_size"] <= 2 * MIB < full["image_size"], inc  # only the two changed chunks moved
    assert (tmp_path / "dest.img").read_bytes() == now


def test_raw_check_fails_when_the_incremental_skips_the_new_region(tmp_path, capsys, monkeypatch):
    """Mutation: an incremental that drops the chunk written after the full must make the check fail."""
    real = backup_mod.incremental_pieces

    def skipping(*args, **kw):
        out, pos = [], 0
        for p in real(*args, **kw):
            if p.volume_offset + p.length <= 3 * MIB or p.volume_offset >= 4 * MIB:
                out.append(StoredPiece(pos, p.volume_offset, p.length))
                pos += p.length
        return PieceStream.of(out)

    monkeypatch.setattr(backup_mod, "incremental_pieces", skipping)
    raw_volume(tmp_path)
    full_then_incremental(tmp_path, capsys, "lan", lambda: change_raw(tmp_path))
    assert (tmp_path / "dest.img").read_bytes() != (tmp_path / "vol.img").read_bytes()


# ---- NTFS: a new file in clusters free at the full, and a file deleted after it ----------------------------

def ntfs_volume(tmp: Path) -> NtfsVolume:
    if tools_missing():
        pytest.skip(tools_missing())
    from orchestrator.volume.samples import bundled_ntfs_image

    vol = NtfsVolume(bundled_ntfs_image(tmp / "vol.img"))
    vol.files = files_of(vol.path)
    make_site(tmp, vol.path.stat().st_size)
    return vol


def files_of(image: Path) -> dict[str, bytes]:
    import subprocess

    return {n: subprocess.run(["ntfscat", str(image), n], capture_output=True, check=True, timeout=60).stdout
            for n in listing(image)}


def change_ntfs(vol: NtfsVolume) -> None:
    """A new file into clusters the full left out, a changed file, a deleted file."""
    rng = random.Random(9)
    write_files(vol, {"added-later.bin": rng.randbytes(700_000), "file01.txt": rng.randbytes(5000)})
    delete_files(vol, ["file03.txt"])


def new_file_outside_the_full(tmp: Path, full_extents: list) -> bool:
    """Whether the new file's clusters lie (partly) outside the full image's extents (the case under test)."""
    after = read_used_extents(str(tmp / "vol.img"))
    cs = after.cluster_size
    used = [(int(a) * cs, int(n) * cs) for b in after.iter_runs() for a, n in b]
    return any(not any(s <= o and o + n <= s + m for s, m in full_extents) for o, n in used)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_ntfs_new_file_in_free_clusters_and_deletion_are_restored(tmp_path, capsys, path):
    vol = ntfs_volume(tmp_path)
    at_full = read_used_extents(str(vol.path)).extents(32 * 1024).tolist()
    full, inc = full_then_incremental(tmp_path, capsys, path, lambda: change_ntfs(vol))
    assert new_file_outside_the_full(tmp_path, at_full)
    assert inc["image_size"] < full["image_size"], inc
    expected = files_of(vol.path)
    assert "added-later.bin" in expected and "file03.txt" not in expected or expected.get("file03.txt") == b""
    assert judge(tmp_path / "dest.img", expected) == []
    assert used_differences(vol.path, tmp_path / "dest.img") == []


def test_ntfs_check_fails_when_new_space_is_not_sent(tmp_path, capsys, monkeypatch):
    """Mutation: without the 'newly used space' rule the new file's clusters stay stale, and the checks say so."""
    real = backup_mod.incremental_pieces
    monkeypatch.setattr(backup_mod, "incremental_pieces",  # the base's coverage forgotten
                        lambda pieces, current, previous, coverage, chunk_size: real(pieces, current, previous,
                                                                                     None, chunk_size))
    vol = ntfs_volume(tmp_path)
    full_then_incremental(tmp_path, capsys, "lan-free", lambda: change_ntfs(vol))
    assert used_differences(vol.path, tmp_path / "dest.img") != []
    assert judge(tmp_path / "dest.img", files_of(vol.path)) != []


# ---- a volume the site declares raw is every block, whatever its bytes look like -----------------------------

@pytest.mark.parametrize("path", sorted(PATHS))
def test_declared_raw_volume_with_ntfs_bytes_keeps_a_write_into_free_clusters(tmp_path, capsys, path):
    """The bug: ``filesystem: raw`` in the site named the volume raw, but its extents still came from the
    NTFS ``$Bitmap`` the bytes happen to hold, so a raw write into clusters that bitmap calls free (all zeros
    at the full) was in neither the full nor the incremental, and the restore lost it."""
    from orchestrator.volume.samples import bundled_ntfs_image

    vol = bundled_ntfs_image(tmp_path / "vol.img")
    make_site(tmp_path, vol.stat().st_size)
    site = tmp_path / "site.yaml"
    site.write_text(site.read_text().replace("{device: disk0}", "{device: disk0, filesystem: raw}"))
    at = 2 * MIB + 4096
    assert not any(vol.read_bytes()[at:at + 70_000])  # free clusters, all zeros at the full

    def raw_write():
        with open(vol, "r+b") as f:
            f.seek(at)
            f.write(random.Random(4).randbytes(70_000))

    full, inc = full_then_incremental(tmp_path, capsys, path, raw_write)
    assert full["image_size"] == vol.stat().st_size, full  # a raw volume: every block
    assert 0 < inc["image_size"] <= MIB, inc
    assert (tmp_path / "dest.img").read_bytes() == vol.read_bytes()


def test_unknown_declared_filesystem_is_one_line(tmp_path, capsys):
    raw_volume(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(site.read_text().replace("{device: disk0}", "{device: disk0, filesystem: ext4}"))
    assert main(["backup", "image", "E:", "--site", str(site), "--options", str(tmp_path / "dsm.opt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "volumes.E:.filesystem: 'ext4' is not one of ntfs" in err, err
