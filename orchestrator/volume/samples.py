"""Real NTFS sample volumes: made with ntfs-3g's tools, or the small bundled image.

`make_ntfs_image` formats an image with mkntfs, copies files in with ntfscp and
empties some with ntfstruncate, so the volume has gaps and fragmented files
the way a used disk does.  Where mkntfs is missing, `bundled_ntfs_image`
unpacks ``orchestrator/data/ntfs-small.img.gz`` (made the same way) and its
manifest lists each file's SHA-256.  Used by the demo, scenarios and tests.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

NTFS_TOOLS = ("mkntfs", "ntfscp", "ntfsls", "ntfstruncate")
BUNDLED_IMAGE = "ntfs-small.img.gz"
BUNDLED_MANIFEST = "ntfs-small.json"


def ntfs_tools_available() -> bool:
    """True when every ntfs-3g tool `make_ntfs_image` needs is on PATH."""
    return all(shutil.which(tool) for tool in NTFS_TOOLS)


@dataclass
class NtfsSample:
    """An NTFS image and what its files should contain (empty bytes for emptied files)."""

    path: Path
    files: dict[str, bytes] = field(default_factory=dict)

    def sha256(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise OSError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


#: File sizes of the default sample: tiny (MFT-resident), small and multi-megabyte files.
SAMPLE_SIZES = (90, 3_000, 20_000, 1_500_000, 70_000, 2_000_000, 150_000, 1_800_000, 300_000, 2_200_000,
                5_000, 2_500_000) * 2


def sample_files(seed: int = 6, sizes: tuple[int, ...] = SAMPLE_SIZES, *,
                 compressible: bool = False) -> dict[str, bytes]:
    """Deterministic file contents of the given sizes (text-like when ``compressible``)."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i, size in enumerate(sizes):
        if compressible:
            words = [f"{rng.randrange(1_000_000):06d} " for _ in range(64)]
            text = "".join(rng.choice(words) for _ in range(size // 7 + 1)).encode()
            files[f"file{i:02d}.txt"] = text[:size]
        else:
            files[f"file{i:02d}.bin"] = rng.randbytes(size)
    return files


def _inodes(image: Path) -> dict[str, int]:
    out = {}
    for line in _run("ntfsls", "-i", str(image)).splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            out[parts[1].strip()] = int(parts[0])
    return out


def make_ntfs_image(path: str | Path, *, size: int = 32 * 1024 * 1024, cluster_size: int = 4096,
                    files: dict[str, bytes] | None = None, empty_every: int = 3,
                    late_file: int = 9_000_000, seed: int = 6) -> NtfsSample:
    """Format ``path`` as NTFS and fill it; returns what each file holds.

    Every ``empty_every``-th file is truncated to 0 bytes afterwards (freeing
    its clusters), then one ``late_file``-byte file is written; with the
    default sizes the volume is nearly full by then, so NTFS has to split it
    over the freed gaps: a fragmented file.
    """
    if not ntfs_tools_available():
        missing = [t for t in NTFS_TOOLS if not shutil.which(t)]
        raise OSError(f"cannot make an NTFS image: {', '.join(missing)} not installed (Debian package ntfs-3g)")
    path = Path(path)
    with open(path, "wb") as fh:
        fh.truncate(size)
    _run("mkntfs", "-F", "-f", "-q", "-c", str(cluster_size), "-L", "SERVERFREE", str(path))
    contents = dict(files if files is not None else sample_files(seed))
    with tempfile.TemporaryDirectory(prefix="serverfree-ntfs-") as tmp:
        for name, data in contents.items():
            local = Path(tmp) / name
            local.write_bytes(data)
            _run("ntfscp", "-q", str(path), str(local), name)
        inodes = _inodes(path)
        if empty_every:
            for index, name in enumerate(list(contents)):
                if index % empty_every == 1:
                    _run("ntfstruncate", "-q", str(path), str(inodes[name]), "0")
                    contents[name] = b""
        if late_file:
            name = "late-fragmented.bin"
            data = random.Random(seed + 1).randbytes(late_file)
            (Path(tmp) / name).write_bytes(data)
            _run("ntfscp", "-q", str(path), str(Path(tmp) / name), name)
            contents[name] = data
    log.info("made NTFS image %s with %d files", path, len(contents))
    return NtfsSample(path, contents)


def bundled_manifest() -> dict[str, str]:
    """File name -> SHA-256 of the bundled image's files."""
    text = resources.files("orchestrator.data").joinpath(BUNDLED_MANIFEST).read_text()
    return dict(json.loads(text)["sha256"])


def bundled_ntfs_image(dest: str | Path) -> Path:
    """Unpack the bundled NTFS image to ``dest`` (a file path) and return it."""
    dest = Path(dest)
    with resources.files("orchestrator.data").joinpath(BUNDLED_IMAGE).open("rb") as packed, \
            gzip.open(packed) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    return dest


def sample_ntfs_image(dest: str | Path, **kwargs: object) -> tuple[Path, dict[str, str]]:
    """A filled NTFS image at ``dest``: made with mkntfs where possible, else the bundled one.

    Returns the path and the expected SHA-256 of each file.
    """
    if ntfs_tools_available():
        return Path(dest), make_ntfs_image(dest, **kwargs).sha256()  # type: ignore[arg-type]
    log.info("ntfs-3g tools missing: using the bundled NTFS image")
    return bundled_ntfs_image(dest), bundled_manifest()
