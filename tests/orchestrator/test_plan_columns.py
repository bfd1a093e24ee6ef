"""The column planner gives exactly the batches, lists, segments and bytes of the piece-by-piece planner."""
from __future__ import annotations

import numpy as np
import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.ops import BeginObject, CommitObject, MoverLimits, Piece
from orchestrator.piece_blocks import PieceBlock, blocks_of, pieces_of
from orchestrator.plan.columns import iter_column_batches
from orchestrator.plan.disk import CscdRef, PlanError, default_encoder, plan_batches

DISK = CscdRef("DISK", "6001405" + "d" * 25, 512)
POOL = CscdRef("POOL", "6001405" + "b" * 25, 512)


def _blocks(count: int, seed: int, size: int) -> list[PieceBlock]:
    rng = np.random.default_rng(seed)
    lengths = rng.geometric(1 / 40, count).astype(np.int64) * 4096
    lengths[:: 17] *= 60  # some pieces longer than a segment or a batch
    gaps = rng.integers(1, 64, count) * 4096
    offsets = np.concatenate(([0], np.cumsum(lengths + gaps)[:-1]))
    image = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return [PieceBlock.of(int(image[i]), offsets[i:i + size], lengths[i:i + size]) for i in range(0, count, size)]


@pytest.mark.parametrize(("direction", "batch_mb", "seg", "per_list", "block"),
                         [("backup", 10, 16 << 20, 64, 1000), ("restore", 10, 1 << 20, 5, 333),
                          ("backup", 1, 0, 64, 97), ("restore", 3, 4096 * 16, 2, 5000)])
def test_same_batches_as_the_piece_planner(direction: str, batch_mb: int, seg: int, per_list: int, block: int):
    limits = MoverLimits(max_segment_count=per_list, max_descriptor_list_length=4096, max_segment_length=seg,
                         implemented_codes=(0x02, 0xE4))
    blocks = _blocks(3000, seed=batch_mb + per_list, size=block)
    pieces = [Piece(p.image_offset, p.volume_offset, p.length) for p in pieces_of(blocks)]
    kw = dict(direction=direction, src=DISK, dst=POOL, src_base=8192, dst_base=4096 * 5, limits=limits,
              batch_bytes=batch_mb << 20, encoder=default_encoder(), first_list_id=250)
    old = plan_batches(pieces, **kw)
    new = tuple(iter_column_batches(iter(blocks), **kw))
    assert len(old) > 20 and len(new) == len(old)
    for a, b in zip(old, new):
        assert a.index == b.index and len(a.lists) == len(b.lists)
        for la, lb in zip(a.lists, b.lists):
            assert (la.list_id, la.data) == (lb.list_id, lb.data)
            assert tuple(la.segments) == tuple(lb.segments)
    assert new[-1].image_end == old[-1].image_end


def test_misaligned_piece_is_named():
    limits = MoverLimits(max_segment_count=8, max_descriptor_list_length=4096, implemented_codes=(0x02, 0xE4))
    block = PieceBlock.of(0, np.array([0, 8192 + 100]), np.array([4096, 4096]))
    with pytest.raises(PlanError, match="piece at image offset 4096: source offset 8292"):
        list(iter_column_batches([block], direction="backup", src=DISK, dst=POOL, src_base=0, dst_base=0,
                                 limits=limits))


def test_blocks_round_trip_through_the_catalogue(tmp_path):
    """Committed as a stream of blocks, read back as one: the same pieces, one row per block."""
    blocks = _blocks(5000, seed=3, size=1200)
    size = blocks[-1].image_end
    with Catalogue(tmp_path / "cat.db") as cat:
        cat.add_pool_volume("POOL", "V1", "pool0", size + 4096)
        oid = cat.begin_object(BeginObject("N", "C:", "selective", "image", size, size, "NTFS")).object_id
        cat.commit_object(CommitObject(oid, iter(blocks), "serverfree", False))
        assert cat.db.execute("SELECT count(*) FROM extent_blocks").fetchone()[0] == len(blocks)
        back = list(cat.iter_blocks(oid))
        assert [p for b in back for p in b.pieces()] == list(pieces_of(blocks))
        assert cat.get(oid).stored_size == size
        assert list(blocks_of(pieces_of(back), size=7))[3].image_offset == back[0].image_offsets()[21]


def test_scale_benchmark_runs_and_reports_memory():
    """benchmarks/bench_scale_plan.py on a small image: its three phases, segments planned both ways, peak RSS."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scale_plan.py"
    out = subprocess.run([sys.executable, str(script), "--extents", "20000"], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()
    counts = dict(kv.split("=") for kv in out[1].split() if "=" in kv)
    assert int(counts["segments"]) == int(counts["restore_segments"]) >= 20000
    assert re.fullmatch(r"extents=20000 plan_commit_restore_cpu_seconds=\d+\.\d\d wall_seconds=\d+\.\d\d "
                        r"peak_rss_mib=\d+ load=[\d./]+", out[-1]), out[-1]
