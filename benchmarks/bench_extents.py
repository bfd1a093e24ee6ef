"""Bitmap -> extents, streamed, for volumes of 1 to 16 TiB with 4 KiB clusters (16 TiB: 4 Gi bits, a 512 MiB bitmap).

The bitmap is synthetic and fragmented: used runs and free gaps of geometric
length (means 48 and 24 clusters), like a well-used NTFS volume -- 60 million
runs at 16 TiB.  It is generated once, chunk by chunk, into a cache file, then
the timed step is what an image backup does: read the bitmap 4 MiB at a time
(as from ``$Bitmap``) into an `ExtentStream` with the 32k LAN default
imagegapsize, counting extents and bytes without keeping them.  Each volume
size runs in its own process; its peak RSS (the whole process: interpreter,
numpy, buffers) comes from os.wait4.

Peers, in the same run:
- the plain Python loop (`python_loop_runs` plus the same gap rule) on a slice
  of the bitmap, scaled linearly to the volume, labelled as such, and checked
  against the streamed result for the slice;
- ``ntfsclone --save-image`` (ntfs-3g, reads ``$Bitmap`` and streams the used
  clusters like partclone) on a real NTFS volume made with mkntfs: its CPU
  seconds and the bytes it saves, against our analysis of the same volume.

Targets (16 TiB): <= 2 s, <= 256 MiB peak RSS.  Every figure line carries the
load average and CPU seconds.  The last line is the largest volume's figure.

    .venv/bin/python benchmarks/bench_extents.py [--volume-tib 16 | --sizes 1,2,4,8,16] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from orchestrator.volume.bitmap_stream import ExtentStream
from orchestrator.volume.extents import bitmap_to_extents, python_loop_runs

TIB = 1 << 40
CLUSTER = 4096
GAP = 32 * 1024
READ_BYTES = 4 * 1024 * 1024
CACHE = Path(os.environ.get("SERVERFREE_BENCH_CACHE", Path(tempfile.gettempdir()) / "serverfree-bench"))


def synthetic_bitmap_chunks(nbits: int, seed: int = 0, mean_used: int = 48, mean_free: int = 24,
                            chunk_bits: int = 1 << 25) -> Iterator[np.ndarray]:
    """A fragmented allocation bitmap (LSB-first bytes) of ``nbits`` clusters, in packed chunks of bounded size."""
    rng = np.random.default_rng(seed)
    pending = np.zeros(0, dtype=np.uint8)  # unpacked bits not yet handed out
    produced = 0
    pairs = chunk_bits // (mean_used + mean_free) + 1
    values = np.tile(np.array([1, 0], dtype=np.uint8), pairs)
    while produced < nbits:
        lengths = np.empty(2 * pairs, dtype=np.int64)
        lengths[0::2] = rng.geometric(1 / mean_used, pairs)
        lengths[1::2] = rng.geometric(1 / mean_free, pairs)
        pending = np.concatenate([pending, np.repeat(values, lengths)])
        take = min(pending.size // 8 * 8, nbits - produced)
        if produced + take < nbits and take < 8:
            continue
        yield np.packbits(pending[:take], bitorder="little")
        produced += take
        pending = pending[take:]


def synthetic_bitmap(nbits: int, seed: int = 0) -> np.ndarray:
    """The whole synthetic bitmap in memory (small volumes only)."""
    return np.concatenate(list(synthetic_bitmap_chunks(nbits, seed)) or [np.zeros(0, dtype=np.uint8)])


def bitmap_file(nbits: int, seed: int = 0) -> Path:
    """The synthetic bitmap of ``nbits`` clusters, generated once into the cache directory."""
    path = CACHE / f"bitmap-{nbits}-{seed}.bin"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        with open(part, "wb") as out:
            for chunk in synthetic_bitmap_chunks(nbits, seed):
                out.write(chunk.tobytes())
        part.rename(path)
    return path


def file_chunks(path: Path, buffer: np.ndarray) -> Iterator[np.ndarray]:
    """The file read into one reused buffer, as a volume's $Bitmap is read."""
    with open(path, "rb", buffering=0) as fh:
        view = memoryview(buffer)
        while got := fh.readinto(view):
            yield buffer[:got]


def python_loop_extents(bitmap: bytes, nbits: int, cluster: int, gap: int) -> list[tuple[int, int]]:
    """The peer: walk every bit in Python, then apply the gap rule in Python."""
    merged: list[list[int]] = []
    for start, length in python_loop_runs(bitmap, nbits):
        if merged and (start - merged[-1][0] - merged[-1][1]) * cluster <= gap:
            merged[-1][1] = start + length - merged[-1][0]
        else:
            merged.append([start, length])
    return [(s * cluster, n * cluster) for s, n in merged]


def load() -> str:
    return "load=" + "/".join(f"{x:.2f}" for x in os.getloadavg())


def measure(nbits: int, repeat: int) -> dict[str, float | int]:
    """In this process: stream the cached bitmap file ``repeat`` times; wall, CPU, extents, bytes."""
    path = bitmap_file(nbits)
    buffer = np.empty(READ_BYTES, dtype=np.uint8)
    walls, cpus = [], []
    extents = moved = used = 0
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        stream = ExtentStream(nbits, GAP // CLUSTER, CLUSTER)
        extents = moved = 0
        for chunk in file_chunks(path, buffer):
            got = stream.feed(chunk)
            extents += got.shape[0]
            moved += int(got[:, 1].sum())
        got = stream.finish()
        extents += got.shape[0]
        moved += int(got[:, 1].sum())
        used = stream.used_clusters
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"extents": extents, "bytes_to_move": moved, "used_clusters": used,
            "wall_seconds": statistics.median(walls), "cpu_seconds": statistics.median(cpus)}


def measure_in_child(tib: float, repeat: int) -> dict[str, float | int]:
    """`measure` in a fresh process (the bitmap file made first, in another one): its own peak RSS."""
    nbits = int(tib * TIB) // CLUSTER
    subprocess.run([sys.executable, __file__, "--make-bitmap", str(nbits)], check=True)
    child = subprocess.Popen([sys.executable, __file__, "--child", str(nbits), "--repeat", str(repeat)],
                             stdout=subprocess.PIPE, text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"bench_extents: measuring {tib:g} TiB failed (status {status})")
    result = json.loads(out)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def python_loop_peer(nbits: int, peer_bits: int) -> None:
    """The Python loop on the first ``peer_bits`` bits of the volume's bitmap, checked against our extents."""
    peer_bits = min(peer_bits, nbits) // 8 * 8
    head = synthetic_bitmap(peer_bits).tobytes()  # the same generator's first bits
    start = time.process_time()
    peer = python_loop_extents(head, peer_bits, CLUSTER, GAP)
    peer_seconds = time.process_time() - start
    mine = [tuple(e) for e in bitmap_to_extents(head, peer_bits, CLUSTER, GAP).tolist()]
    assert mine == peer, "streamed extents differ from the Python loop on the slice"
    print(f"python_loop_cpu_seconds={peer_seconds:.3f} on {peer_bits} bits, scaled_to_volume="
          f"{peer_seconds * nbits / peer_bits:.1f} (linear scaling of the slice) {load()}")


def ntfsclone_peer() -> None:
    """ntfsclone --save-image against our analysis, on one real NTFS volume made with mkntfs."""
    from orchestrator.volume.used_extents import read_used_extents
    from orchestrator.volume.samples import make_ntfs_image, ntfs_tools_available

    if not (ntfs_tools_available() and shutil.which("ntfsclone")):
        print("ntfsclone_peer=skipped (ntfs-3g tools not installed)")
        return
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        image = make_ntfs_image(Path(tmp) / "vol.img", size=128 * 1024 * 1024).path
        child = subprocess.Popen(["ntfsclone", "--save-image", "--output", "-", str(image)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        saved = 0
        assert child.stdout is not None and child.stderr is not None
        while block := child.stdout.read(1 << 20):
            saved += len(block)
        err = child.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(child.pid, 0)
        if status:
            print(f"ntfsclone_peer=failed: {err.strip().splitlines()[-1:]}")
            return
        in_use = re.search(r"Space in use\s*:\s*(\d+) MB", err)
        c0 = time.process_time()
        layout = read_used_extents(image)
        exact = sum(int(b[:, 1].sum()) for b in layout.iter_extents(1))  # gap below a cluster: used clusters only
        ours_32k = sum(int(b[:, 1].sum()) for b in layout.iter_extents(GAP))
        ours_cpu = time.process_time() - c0
        used = (layout.used_clusters or 0) * (layout.cluster_size or 0)
        print(f"ntfsclone_peer volume_bytes={layout.size} ntfsclone_image_bytes={saved} "
              f"ntfsclone_space_in_use_mb={in_use.group(1) if in_use else '?'} "
              f"ntfsclone_cpu_seconds={usage.ru_utime + usage.ru_stime:.3f} "
              f"ours_used_bytes={used} ours_bytes_gap_1_cluster={exact} ours_bytes_gap_32k={ours_32k} "
              f"ours_cpu_seconds={ours_cpu:.3f} {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume-tib", type=float, default=None, help="one volume size in TiB (default 2)")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes in TiB, e.g. 1,2,4,8,16")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size; the median is reported")
    parser.add_argument("--peer-bits", type=int, default=1 << 21, help="bits the Python loop walks")
    parser.add_argument("--no-ntfsclone", action="store_true", help="skip the ntfsclone peer")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--make-bitmap", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_bitmap is not None:
        bitmap_file(args.make_bitmap)
        return
    if args.child is not None:
        print(json.dumps(measure(args.child, args.repeat)))
        return

    sizes = ([float(s) for s in args.sizes.split(",")] if args.sizes
             else [args.volume_tib if args.volume_tib is not None else 2.0])
    print(f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} cpus={os.cpu_count()} {load()} "
          f"cache={CACHE}")
    lines = []
    for tib in sizes:
        r = measure_in_child(tib, args.repeat)
        nbits = int(tib * TIB) // CLUSTER
        line = (f"volume={tib:g}TiB clusters={nbits} bitmap_bytes={(nbits + 7) // 8} extents={r['extents']} "
                f"bytes_to_move={r['bytes_to_move']} wall_seconds={r['wall_seconds']:.3f} "
                f"cpu_seconds={r['cpu_seconds']:.3f} peak_rss_mib={r['peak_rss_mib']:.0f} {load()}")
        print(line, flush=True)
        lines.append((tib, r))
    python_loop_peer(int(sizes[-1] * TIB) // CLUSTER, args.peer_bits)
    if not args.no_ntfsclone:
        ntfsclone_peer()
    tib, r = max(lines, key=lambda item: item[0])
    print(f"volume={tib:g}TiB bitmap_to_extents_seconds={r['wall_seconds']:.3f} cpu_seconds={r['cpu_seconds']:.3f} "
          f"peak_rss_mib={r['peak_rss_mib']:.0f} {load()}")


if __name__ == "__main__":
    main()
