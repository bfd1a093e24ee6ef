"""Planning a server-free backup of a fragmented 1 TiB image to tape, against planning it to a disk pool.

The image is 200,000 extents of mixed size (a well-used volume after gap
coalescing).  Tape planning (00h block->stream segments cut at record
boundaries, a closing 10h, encoded lists) runs with the same mover limits as
the disk-pool planner it is compared with (02h block->block, encoded lists),
measured in the same run.  No target is set: the point is that laying the
image out as tape records costs about what block planning costs.

The last line is the figure and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from orchestrator.ops import MoverLimits, pieces_from_extents
from orchestrator.plan.disk import CscdRef, default_encoder, plan_batches
from orchestrator.plan.tape import TapeFormat, TapeRef, plan_tape_batches

TIB = 1 << 40
LIMITS = MoverLimits(max_segment_count=64, max_descriptor_list_length=4096, max_segment_length=16 << 20,
                     implemented_codes=(0x00, 0x01, 0x02, 0x10, 0xE4))
DISK = CscdRef("DISK", "6001405" + "d" * 25, 512)
POOL = CscdRef("POOL", "6001405" + "b" * 25, 512)
TAPE = TapeRef("DRV1", "6001405" + "1" * 25, TapeFormat(256 * 1024))


def extents(total: int, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """``count`` extents of random whole-4-KiB lengths adding up to about ``total`` bytes, with gaps."""
    rng = np.random.default_rng(seed)
    weights = rng.exponential(1.0, count)
    lengths = np.maximum(1, (weights / weights.sum() * total) // 4096).astype(np.int64) * 4096
    gaps = rng.integers(1, 64, count) * 4096
    offsets = np.concatenate(([0], np.cumsum(lengths + gaps)[:-1]))
    return list(zip(offsets.tolist(), lengths.tolist()))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extents", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    pieces = pieces_from_extents(extents(TIB, args.extents))
    size = sum(p.length for p in pieces)
    tape = plan_tape_batches(pieces, direction="backup", disk=DISK, tape=TAPE, disk_base=0, limits=LIMITS)
    block = plan_batches(pieces, direction="backup", src=DISK, dst=POOL, src_base=0, dst_base=0, limits=LIMITS,
                         encoder=default_encoder())
    lists = sum(len(b.lists) for b in tape)
    print(f"image {size / TIB:.3f} TiB in {len(pieces)} extents: tape plan {len(tape)} batches, {lists} lists; "
          f"block plan {len(block)} batches, {sum(len(b.lists) for b in block)} lists")
    t_tape = best_of(lambda: plan_tape_batches(pieces, direction="backup", disk=DISK, tape=TAPE, disk_base=0,
                                               limits=LIMITS), args.repeat)
    t_block = best_of(lambda: plan_batches(pieces, direction="backup", src=DISK, dst=POOL, src_base=0, dst_base=0,
                                           limits=LIMITS, encoder=default_encoder()), args.repeat)
    print(f"per-run times: tape {t_tape:.3f} s, block {t_block:.3f} s (best of {args.repeat}); "
          f"median of both {statistics.median([t_tape, t_block]):.3f} s")
    print(f"tape_plan_seconds={t_tape:.3f} ratio_vs_block_plan={t_tape / t_block:.2f}")


if __name__ == "__main__":
    main()
