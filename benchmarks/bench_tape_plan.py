"""Planning a server-free backup of a fragmented 1 TiB image to tape, against planning it to a disk pool.

The image is 200,000 extents of mixed size (a well-used volume after gap
coalescing).  Tape planning (00h block->stream segments cut at record
boundaries, a closing 10h, encoded lists) runs with the same mover limits as
the disk-pool planner it is compared with (02h block->block, encoded lists),
measured in the same run.  No target is set: the point is that laying the
image out as tape records costs about what block planning costs.

By default the planners are the ones the jobs run: `iter_tape_batches` and
`iter_column_batches` over the extents as a `PieceStream` of numpy blocks,
each batch dropped once counted (a job sends it), in a child process whose
peak RSS (os.wait4) is printed with the CPU seconds and the load.  With
``--lists`` they are the list planners (`plan_tape_batches`, `plan_batches`)
over a list of `Piece` objects holding every batch, as this benchmark ran
before: about 1 KiB a extent (issue 17: 2.2 GB at 2,000,000 extents).

The last line is the figure and the ratio.

    .venv/bin/python benchmarks/bench_tape_plan.py [--extents 200000] [--repeat 3] [--lists]
"""
from __future__ import annotations

import argparse
import json
import os
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


def extent_array(total: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` extents of random whole-4-KiB lengths adding up to about ``total`` bytes, with gaps: (n, 2)."""
    rng = np.random.default_rng(seed)
    weights = rng.exponential(1.0, count)
    lengths = np.maximum(1, (weights / weights.sum() * total) // 4096).astype(np.int64) * 4096
    gaps = rng.integers(1, 64, count) * 4096
    offsets = np.concatenate(([0], np.cumsum(lengths + gaps)[:-1]))
    return np.stack([offsets, lengths], axis=1)


def extents(total: int, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """`extent_array` as a list of pairs."""
    return [tuple(e) for e in extent_array(total, count, seed).tolist()]


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def streamed(count: int, repeat: int) -> dict[str, float | int]:
    """The jobs' planners over a stream of blocks, each batch counted and dropped; best of ``repeat``."""
    from orchestrator.piece_stream import PieceStream
    from orchestrator.plan.columns import iter_column_batches
    from orchestrator.plan.tape_columns import iter_tape_batches

    arr = extent_array(TIB, count)
    stream = PieceStream.from_extents(lambda: (arr,))

    def tape() -> tuple[int, int]:
        batches = lists = 0
        for b in iter_tape_batches(stream.blocks(), direction="backup", disk=DISK, tape=TAPE, disk_base=0,
                                   limits=LIMITS):
            batches, lists = batches + 1, lists + len(b.lists)
        return batches, lists

    def block() -> tuple[int, int]:
        batches = lists = 0
        for b in iter_column_batches(stream.blocks(), direction="backup", src=DISK, dst=POOL, src_base=0,
                                     dst_base=0, limits=LIMITS, encoder=default_encoder()):
            batches, lists = batches + 1, lists + len(b.lists)
        return batches, lists

    out: dict[str, float | int] = {"size": stream.nbytes()}
    for name, fn in (("tape", tape), ("block", block)):
        best = None
        for _ in range(repeat):
            c0 = time.process_time()
            out[name + "_batches"], out[name + "_lists"] = fn()
            cpu = time.process_time() - c0
            best = cpu if best is None else min(best, cpu)
        out[name + "_cpu"] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extents", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lists", action="store_true", help="the list planners over Piece objects, as before")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.extents <= 0 or args.repeat <= 0:
        raise SystemExit("bench_tape_plan: --extents and --repeat must be positive")
    if args.child:
        print(json.dumps(streamed(args.extents, args.repeat)))
        return
    if not args.lists:
        from bench_scale_plan import load, measure_in_child

        r, rss = measure_in_child(__file__, ["--extents", str(args.extents), "--repeat", str(args.repeat)])
        print(f"image {r['size'] / TIB:.3f} TiB in {args.extents} extents (streamed): tape plan "
              f"{r['tape_batches']} batches, {r['tape_lists']} lists; block plan {r['block_batches']} batches, "
              f"{r['block_lists']} lists {load()}")
        print(f"per-run CPU seconds: tape {r['tape_cpu']:.3f}, block {r['block_cpu']:.3f} (best of {args.repeat}); "
              f"peak_rss_mib={rss:.0f} (both, one process) cpus={os.cpu_count()} {load()}")
        print(f"tape_plan_seconds={r['tape_cpu']:.3f} ratio_vs_block_plan={r['tape_cpu'] / r['block_cpu']:.2f} "
              f"peak_rss_mib={rss:.0f}")
        return
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
