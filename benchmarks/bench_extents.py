"""Bitmap -> extents for a 2 TiB volume with 4 KiB clusters (536,870,912 bits, a 64 MiB bitmap).

The bitmap is synthetic and fragmented: used runs and free gaps of geometric
length (means 48 and 24 clusters, ~5.6 million runs), like a well-used NTFS
volume.  The timed step is what an image backup does: `bitmap_to_extents` with
the 32k LAN default imagegapsize.  The peer is the plain Python loop
(`python_loop_runs` plus the same gap rule) run on a slice of the bitmap and
scaled linearly to the whole volume, labelled as such.

Target: bitmap_to_extents_seconds < 1.  The last line is the figure and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from orchestrator.volume.extents import bitmap_to_extents, python_loop_runs

TIB = 1 << 40
CLUSTER = 4096
GAP = 32 * 1024


def synthetic_bitmap(nbits: int, seed: int = 0, mean_used: int = 48, mean_free: int = 24) -> np.ndarray:
    """A fragmented allocation bitmap (LSB-first bytes) of ``nbits`` clusters."""
    rng = np.random.default_rng(seed)
    pairs = nbits // (mean_used + mean_free) + 1024
    lengths = np.empty(2 * pairs, dtype=np.int64)
    lengths[0::2] = rng.geometric(1 / mean_used, pairs)
    lengths[1::2] = rng.geometric(1 / mean_free, pairs)
    values = np.tile(np.array([1, 0], dtype=np.uint8), pairs)
    bits = np.repeat(values, lengths)[:nbits]
    if bits.size < nbits:
        bits = np.concatenate([bits, np.zeros(nbits - bits.size, dtype=np.uint8)])
    return np.packbits(bits, bitorder="little")


def python_loop_extents(bitmap: bytes, nbits: int, cluster: int, gap: int) -> list[tuple[int, int]]:
    """The peer: walk every bit in Python, then apply the gap rule in Python."""
    merged: list[list[int]] = []
    for start, length in python_loop_runs(bitmap, nbits):
        if merged and (start - merged[-1][0] - merged[-1][1]) * cluster <= gap:
            merged[-1][1] = start + length - merged[-1][0]
        else:
            merged.append([start, length])
    return [(s * cluster, n * cluster) for s, n in merged]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume-tib", type=float, default=2.0, help="volume size in TiB (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--peer-bits", type=int, default=1 << 21, help="bits the Python loop walks")
    args = parser.parse_args()

    nbits = int(args.volume_tib * TIB) // CLUSTER
    t0 = time.perf_counter()
    bitmap = synthetic_bitmap(nbits)
    print(f"volume={args.volume_tib:g}TiB clusters={nbits} bitmap_bytes={bitmap.nbytes} "
          f"generate_seconds={time.perf_counter() - t0:.2f}")

    timings, cpu = [], []
    extents = None
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        extents = bitmap_to_extents(bitmap, nbits, CLUSTER, GAP)
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert extents is not None
    seconds = statistics.median(timings)
    # CPU seconds beside wall seconds: on a shared machine the two differ when other work competes.
    print(f"extents={extents.shape[0]} bytes_to_move={int(extents[:, 1].sum())} "
          f"wall_seconds={' '.join(f'{t:.3f}' for t in timings)} cpu_seconds={' '.join(f'{t:.3f}' for t in cpu)}")

    # The peer on a slice, checked against the vectorised result for the same slice, then scaled.
    peer_bits = min(args.peer_bits, nbits) // 8 * 8
    head = bitmap[: peer_bits // 8].tobytes()
    start = time.perf_counter()
    peer = python_loop_extents(head, peer_bits, CLUSTER, GAP)
    peer_seconds = time.perf_counter() - start
    mine = [tuple(e) for e in bitmap_to_extents(head, peer_bits, CLUSTER, GAP).tolist()]
    assert mine == peer, "vectorised extents differ from the Python loop on the slice"
    scaled = peer_seconds * nbits / peer_bits
    print(f"python_loop_seconds={peer_seconds:.3f} on {peer_bits} bits, "
          f"python_loop_seconds_scaled_to_volume={scaled:.1f}")
    print(f"bitmap_to_extents_seconds={seconds:.3f} ratio_vs_python_loop={scaled / seconds:.0f}")


if __name__ == "__main__":
    main()
