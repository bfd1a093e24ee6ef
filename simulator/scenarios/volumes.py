"""Volumes of a CI scenario: synthetic layouts (seeded) or real images, with or without bytes.

A synthetic volume is a run list of used clusters (``used`` of the volume in
``fragments`` runs separated by free gaps of varied sizes, drawn from the
seed), so imagegapsize really changes the extents the way it does on NTFS.
Image volumes (a file, or a filled NTFS image made with mkntfs) are analysed
by the orchestrator's own volume analysis.
"""
from __future__ import annotations

import hashlib
import logging
import random
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.volume import UsedExtents, coalesce, read_used_extents
from simulator.scenarios.load import BLOCK, VolumeSpec

log = logging.getLogger(__name__)

#: Volumes that carry bytes (exact mode, restores, incrementals) stay small: memory, and CI time.
MAX_BYTES_VOLUME = 512 << 20


@dataclass
class ScenarioVolume:
    """One volume: where it lives on the simulated SAN, its layout and (optionally) its bytes."""

    id: str
    client: str
    mount: str
    disk: str  # SAN device name ARRAY:NUMBER
    naa: str  # designator hex of the LUN
    offset: int  # byte offset of the volume on the LUN (block aligned)
    size: int
    filesystem: str  # ntfs, fat, fat32, raw
    runs: np.ndarray | None = None  # used-cluster runs [start, length] in clusters (synthetic ntfs)
    cluster_size: int = 4096
    layout: UsedExtents | None = None  # image volumes
    buf: bytearray | None = None  # the LUN's bytes (offset + size) when the run carries bytes
    files: dict[str, str] = field(default_factory=dict)  # sample NTFS: file name -> SHA-256
    full_state: tuple[bytes, list[tuple[int, int]]] | None = None  # content + extents at the last full backup
    latest_state: tuple[bytes, list[tuple[int, int]]] | None = None  # ... at the last backup of any mode

    def extents(self, gap: int) -> list[tuple[int, int]]:
        """Byte extents a backup copies with imagegapsize ``gap`` (0: every block, as the seed says)."""
        if self.layout is not None:
            return [(int(a), int(b)) for a, b in self.layout.extents(gap).tolist()]
        if self.filesystem != "ntfs" or self.runs is None or gap == 0:
            return [(0, self.size)]
        return [(int(a), int(b)) for a, b in
                (coalesce(self.runs, gap // self.cluster_size) * self.cluster_size).tolist()]

    def volume_bytes(self) -> bytes:
        assert self.buf is not None
        return bytes(self.buf[self.offset:self.offset + self.size])

    def record_backup(self, extents: list[tuple[int, int]], full: bool) -> None:
        """Remember what a backup saw, so a later restore can be compared with it."""
        if self.buf is None:
            return
        content = self.volume_bytes()
        if full:
            self.full_state = (content, list(extents))
            self.latest_state = self.full_state
        elif self.latest_state is not None:
            self.latest_state = (content, self.latest_state[1] + list(extents))

    def compare(self, incremental: bool) -> tuple[bool, str]:
        """Is the volume, after a restore, byte-identical to the backup over every extent it saved?"""
        state = self.latest_state if incremental else self.full_state
        if self.buf is None or state is None:
            return False, "nothing to compare: the volume carries no bytes or was never backed up"
        content, extents = state
        now = self.volume_bytes()
        for off, length in extents:
            if now[off:off + length] != content[off:off + length]:
                first = next(i for i in range(length) if now[off + i] != content[off + i])
                return False, f"volume byte {off + first} differs from the backed-up image"
        note = f"{sum(n for _, n in extents)} bytes identical"
        if self.files and not incremental:
            ok, files_note = self.check_files(now)
            if not ok:
                return False, files_note
            note += f"; {files_note}"
        return True, note

    def check_files(self, volume: bytes) -> tuple[bool, str]:
        """Read every file of a restored NTFS sample back with ntfscat and compare its SHA-256."""
        if not shutil.which("ntfscat"):
            return True, "files not read back (ntfscat not installed)"
        with tempfile.NamedTemporaryFile(prefix="serverfree-restored-", suffix=".img") as tmp:
            tmp.write(volume)
            tmp.flush()
            for name, digest in self.files.items():
                done = subprocess.run(["ntfscat", tmp.name, name], capture_output=True, timeout=60, check=False)
                if done.returncode != 0:
                    why = done.stderr.decode(errors="replace").strip()[:200]
                    return False, f"ntfscat cannot read {name} from the restored volume: {why}"
                if hashlib.sha256(done.stdout).hexdigest() != digest:
                    return False, f"file {name} read back from the restored volume differs"
        return True, f"{len(self.files)} files read back with ntfscat identical"

    def change(self, fraction: float, rng: random.Random) -> int:
        """Rewrite about ``fraction`` of the used data (random runs of 64 KiB); bytes changed."""
        if self.buf is None or fraction <= 0:
            return 0
        extents = self.extents(self.cluster_size)
        used = sum(n for _, n in extents)
        chunk = 64 * 1024
        todo, changed = int(used * fraction), 0
        while changed < todo:
            off, length = extents[rng.randrange(len(extents))]
            n = min(chunk, length)
            at = off + rng.randrange(0, max(1, length - n + 1)) // BLOCK * BLOCK
            self.buf[self.offset + at:self.offset + at + n] = rng.randbytes(n)
            changed += n
        return changed


def synthetic_runs(nclusters: int, used: float, fragments: int, rng: random.Random) -> np.ndarray:
    """``fragments`` runs holding ``used`` of ``nclusters``, separated by free gaps of varied sizes."""
    want = max(fragments, int(nclusters * used))
    if want > nclusters:
        raise ValueError(f"{fragments} fragments do not fit in {nclusters} clusters")
    free = nclusters - want
    # gap sizes vary over two orders of magnitude, so imagegapsize keeps some and skips others
    weights = [rng.choice((1, 3, 10, 30, 100)) * (0.5 + rng.random()) for _ in range(fragments)]
    total = sum(weights)
    gaps = [int(free * w / total) for w in weights]
    lengths = [want // fragments + (1 if i < want % fragments else 0) for i in range(fragments)]
    runs, pos = [], 0
    for gap, length in zip(gaps, lengths):
        pos += gap
        runs.append((pos, length))
        pos += length
    return np.array(runs, dtype=np.int64).reshape(-1, 2)


def fill_runs(buf: bytearray, base: int, extents: list[tuple[int, int]], seed: int, text: bool = False) -> None:
    """Deterministic data in the used extents (free space stays zero); ``text`` compresses well."""
    gen = np.random.default_rng(seed)
    words = np.frombuffer(b"".join(f"{w:06d} ".encode() for w in gen.integers(0, 10**6, size=256)), np.uint8)
    words = words.reshape(256, 7)
    for off, length in extents:
        if text:
            data = words[gen.integers(0, 256, size=length // 7 + 1)].tobytes()[:length]
        else:
            data = gen.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        buf[base + off:base + off + length] = data


def build_volume(spec: VolumeSpec, topo_volume, disk: str, naa: str, *, base_dir: Path, seed: int,
                 with_bytes: bool, workdir: Path) -> ScenarioVolume:
    """Make a scenario volume from its spec and the topology's volume."""
    offset = topo_volume.offset // BLOCK * BLOCK
    fs = spec.filesystem or topo_volume.filesystem.value.lower()
    vol = ScenarioVolume(spec.id, topo_volume.client, topo_volume.mount, disk, naa, offset,
                         spec.size or topo_volume.size, fs, cluster_size=spec.cluster_size)
    image: Path | None = None
    if spec.sample_ntfs:
        from orchestrator.volume.samples import sample_ntfs_image

        image, vol.files = sample_ntfs_image(workdir / f"{spec.id.replace(':', '_')}.img",
                                             size=spec.size or 32 << 20, seed=seed + zlib.crc32(spec.id.encode()) % 997)
    elif spec.image:
        image = Path(spec.image) if Path(spec.image).is_absolute() else base_dir / spec.image
        if not image.is_file():
            raise FileNotFoundError(f"volume {spec.id}: image file {image} does not exist")
    if image is not None:
        vol.layout = read_used_extents(image, spec.id)
        vol.size, vol.filesystem = vol.layout.size, vol.layout.filesystem.value.lower()
        if with_bytes:
            vol.buf = bytearray(offset) + bytearray(image.read_bytes())
        return vol
    if vol.size % vol.cluster_size:
        raise ValueError(f"volume {spec.id}: size {vol.size} is not a multiple of the cluster size "
                         f"{vol.cluster_size}")
    rng = random.Random(f"{seed}:{spec.id}")
    vol.runs = synthetic_runs(vol.size // vol.cluster_size, spec.used, spec.fragments, rng)
    if with_bytes:
        if vol.size > MAX_BYTES_VOLUME:
            raise ValueError(f"volume {spec.id}: {vol.size} bytes is too large to carry bytes (at most "
                             f"{MAX_BYTES_VOLUME}); give a smaller size, or use fluid mode without restores")
        vol.buf = bytearray(offset + vol.size)
        used = [(int(a) * vol.cluster_size, int(b) * vol.cluster_size) for a, b in vol.runs.tolist()]
        fill_runs(vol.buf, offset, used, rng.randrange(1 << 30), spec.content == "text")
    return vol
