"""Plan, commit and restore-plan one image of 5,000,000 extents in bounded memory.

The image is a fragmented volume's extents (random 4 KiB-multiple lengths
with gaps, as bench_tape_plan makes them), generated in batches and never
held whole.  Three timed phases, in one measuring process whose peak RSS
(the whole process, from os.wait4) is printed:

1. plan: `iter_column_batches` (the numpy form of `iter_batches`) cuts the pieces into 02h segments, encoded
   EXTENDED COPY lists and 80 MB batches, each consumed as it is made (as a
   job sends it);
2. commit: the pieces go to a SQLite catalogue file as compact blocks
   (`orchestrator.piece_blocks`) in one transaction;
3. restore planning: the catalogue streams the blocks back and
   `iter_column_batches` plans the restore from them.

Targets: <= 10 s and <= 512 MiB for 5M extents.  Every figure line carries CPU
seconds and the load average; the last line is the figure.

    .venv/bin/python benchmarks/bench_scale_plan.py [--extents 5000000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from orchestrator.catalogue import Catalogue
from orchestrator.ops import BeginObject, CommitObject, MoverLimits
from orchestrator.piece_blocks import BLOCK_PIECES, PieceBlock
from orchestrator.plan.columns import iter_column_batches
from orchestrator.plan.disk import CscdRef, default_encoder

LIMITS = MoverLimits(max_segment_count=64, max_descriptor_list_length=4096, max_segment_length=16 << 20,
                     implemented_codes=(0x00, 0x01, 0x02, 0x10, 0xE4))
DISK = CscdRef("DISK", "6001405" + "d" * 25, 512)
POOL = CscdRef("POOL", "6001405" + "b" * 25, 512)


MEAN_EXTENT = 288 * 1024  # bench_extents' fragmented 16 TiB volume: 12 TB in 42 million extents


def extent_blocks(count: int, seed: int = 0) -> Iterator[PieceBlock]:
    """``count`` extents of random whole-4-KiB lengths (mean `MEAN_EXTENT`) with gaps, in blocks."""
    rng = np.random.default_rng(seed)
    mean = MEAN_EXTENT // 4096
    image = volume = 0
    for first in range(0, count, BLOCK_PIECES):
        n = min(BLOCK_PIECES, count - first)
        lengths = np.maximum(1, rng.geometric(1 / max(mean, 1), n)).astype(np.int64) * 4096
        gaps = rng.integers(1, 64, n) * 4096
        offsets = volume + np.concatenate(([0], np.cumsum(lengths + gaps)[:-1]))
        yield PieceBlock.of(image, offsets, lengths)
        image += int(lengths.sum())
        volume = int(offsets[-1] + lengths[-1] + gaps[-1])


def plan_all(blocks, direction: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """Plan and consume every batch; (batches, lists, segments)."""
    src, dst = (DISK, POOL) if direction == "backup" else (POOL, DISK)
    nb = nl = ns = 0
    for batch in iter_column_batches(blocks, direction=direction, src=src, dst=dst, src_base=0, dst_base=0,
                                     limits=LIMITS, encoder=default_encoder()):
        nb += 1
        nl += len(batch.lists)
        ns += sum(len(pl.segments) for pl in batch.lists if pl.payload())  # every list's bytes are there
    return nb, nl, ns


def measure(count: int) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    image_size = sum(int(b.length.sum()) for b in extent_blocks(count))
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        c0, w0 = time.process_time(), time.perf_counter()
        out["batches"], out["lists"], out["segments"] = plan_all(extent_blocks(count), "backup")
        c1, w1 = time.process_time(), time.perf_counter()
        with Catalogue(Path(tmp) / "cat.db") as cat:
            cat.add_pool_volume("POOL", "VOL1", "pool0", image_size + (1 << 20))
            started = cat.begin_object(BeginObject("NODE", "VOL", "selective", "image", image_size, image_size,
                                                   "NTFS", pool="POOL"))
            cat.commit_object(CommitObject(started.object_id, extent_blocks(count), "serverfree", False))
            c2, w2 = time.process_time(), time.perf_counter()
            _, _, out["restore_segments"] = plan_all(cat.iter_blocks(started.object_id), "restore")
            c3, w3 = time.process_time(), time.perf_counter()
            out["catalogue_bytes"] = (Path(tmp) / "cat.db").stat().st_size + \
                sum(p.stat().st_size for p in Path(tmp).glob("cat.db-*"))
    out.update(plan_cpu=c1 - c0, commit_cpu=c2 - c1, restore_cpu=c3 - c2, total_cpu=c3 - c0, total_wall=w3 - w0,
               image_size=image_size)
    return out


def load() -> str:
    return "load=" + "/".join(f"{x:.2f}" for x in os.getloadavg())


def measure_in_child(script: str, argv: list[str]) -> tuple[dict, float]:
    """Run ``script --child ARGV`` in a fresh process: (the JSON it prints, its peak RSS in MiB).

    A fresh process so that the peak RSS is the measured work's, not the parent's.
    """
    child = subprocess.Popen([sys.executable, script, "--child", *argv], stdout=subprocess.PIPE, text=True)
    text = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"{Path(script).stem}: the measuring process failed (status {status})")
    return json.loads(text), usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extents", type=int, default=5_000_000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.extents)))
        return
    print(f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} cpus={os.cpu_count()} {load()}")
    r, rss = measure_in_child(__file__, ["--extents", str(args.extents)])
    print(f"extents={args.extents} image_bytes={r['image_size']} batches={r['batches']} lists={r['lists']} "
          f"segments={r['segments']} restore_segments={r['restore_segments']} "
          f"catalogue_bytes={r['catalogue_bytes']} {load()}")
    print(f"plan_cpu_seconds={r['plan_cpu']:.2f} commit_cpu_seconds={r['commit_cpu']:.2f} "
          f"restore_plan_cpu_seconds={r['restore_cpu']:.2f} {load()}")
    print(f"extents={args.extents} plan_commit_restore_cpu_seconds={r['total_cpu']:.2f} "
          f"wall_seconds={r['total_wall']:.2f} peak_rss_mib={rss:.0f} {load()}")


if __name__ == "__main__":
    main()
