"""Volume fixtures: real NTFS images made with ntfs-3g's tools, the bundled image, FAT images."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.fatimage import make_fat_image

from orchestrator.volume.samples import (
    SAMPLE_SIZES,
    NtfsSample,
    bundled_ntfs_image,
    make_ntfs_image,
    ntfs_tools_available,
    sample_files,
)


@pytest.fixture(scope="session")
def ntfs_sample(tmp_path_factory: pytest.TempPathFactory) -> NtfsSample:
    """A 32 MiB NTFS volume, 4 KiB clusters, with gaps and a fragmented file."""
    if not ntfs_tools_available():
        pytest.skip("ntfs-3g tools (mkntfs, ntfscp, ntfstruncate) absent")
    return make_ntfs_image(tmp_path_factory.mktemp("ntfs") / "vol.img")


@pytest.fixture(scope="session")
def ntfs_sample_small_clusters(tmp_path_factory: pytest.TempPathFactory) -> NtfsSample:
    """A 16 MiB NTFS volume with 1 KiB clusters (cluster size must come from the boot sector)."""
    if not ntfs_tools_available():
        pytest.skip("ntfs-3g tools (mkntfs, ntfscp, ntfstruncate) absent")
    return make_ntfs_image(tmp_path_factory.mktemp("ntfs1k") / "vol.img", size=16 * 1024 * 1024,
                           cluster_size=1024, files=sample_files(9, SAMPLE_SIZES[:12]), empty_every=2,
                           late_file=3_000_000)


@pytest.fixture(scope="session")
def bundled_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundled_ntfs_image(tmp_path_factory.mktemp("bundled") / "ntfs-small.img")


class Ntfs3g:
    """ntfs-3g's tools as outside judges of a volume."""

    @staticmethod
    def run(*cmd: str) -> bytes:
        """Run a tool; fail the test with its output when it fails."""
        done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}: {done.stderr!r} {done.stdout[:500]!r}"
        return done.stdout

    def free_clusters(self, image: Path) -> tuple[int, int]:
        """(clusters in the volume, free clusters) as ntfsinfo -m reports them."""
        out = self.run("ntfsinfo", "-m", str(image)).decode()
        total = free = None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Volume Size in Clusters:"):
                total = int(line.split(":")[1])
            elif line.startswith("Free Clusters:"):
                free = int(line.split(":")[1].split()[0])
        assert total is not None and free is not None, out
        return total, free

    def ntfscluster_free(self, image: Path) -> int:
        """Free clusters as ntfscluster -i counts them (its own scan of the volume)."""
        out = self.run("ntfscluster", "-i", str(image)).decode()
        for line in out.splitlines():
            if line.startswith("clusters of free space"):
                return int(line.split(":")[1])
        raise AssertionError(f"ntfscluster printed no free-space figure: {out}")

    def check(self, image: Path) -> None:
        """ntfsfix -n: would ntfs-3g mount this volume without repairs?"""
        self.run("ntfsfix", "-n", str(image))

    def cat(self, image: Path, name: str) -> bytes:
        return self.run("ntfscat", str(image), name)


@pytest.fixture(scope="session")
def ntfs3g() -> Ntfs3g:
    if not all(shutil.which(t) for t in ("ntfsinfo", "ntfscluster", "ntfsfix", "ntfscat")):
        pytest.skip("ntfs-3g tools (ntfsinfo, ntfscluster, ntfsfix, ntfscat) absent")
    return Ntfs3g()


def _copy_extents(src: Path, dst: Path, extents) -> Path:  # type: ignore[no-untyped-def]
    """Write only ``extents`` of ``src`` onto a zeroed image of the same size."""
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.truncate(size)
        for start, length in extents.tolist():
            fin.seek(start)
            fout.seek(start)
            fout.write(fin.read(length))
    return dst


@pytest.fixture(scope="session")
def copy_extents():  # type: ignore[no-untyped-def]
    return _copy_extents


# --- FAT images: tests/fixtures/fatimage.py (mkfs.fat, judged by fsck.fat) ---------------------

@pytest.fixture
def fat_image(tmp_path: Path):  # type: ignore[no-untyped-def]
    return lambda kind: make_fat_image(tmp_path / f"{kind}.img", kind)
