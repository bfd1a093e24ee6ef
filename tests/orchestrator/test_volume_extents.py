"""Bitmap -> runs -> extents: the vectorised code against a plain bit-by-bit walk."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestrator.volume.bitmap_stream as stream
from orchestrator.volume.extents import (
    add_extent,
    bitmap_to_extents,
    coalesce,
    count_set_bits,
    python_loop_runs,
    total_bytes,
    used_runs,
)


def _bitmap(bits: list[int]) -> bytes:
    return np.packbits(np.array(bits, dtype=np.uint8), bitorder="little").tobytes()


def _naive_extents(bits: list[int], cluster: int, gap: int) -> list[tuple[int, int]]:
    """The imagegapsize rule written the slow, obvious way."""
    runs = python_loop_runs(_bitmap(bits), len(bits))
    merged: list[list[int]] = []
    for start, length in runs:
        if merged and (start - (merged[-1][0] + merged[-1][1])) * cluster <= gap:
            merged[-1][1] = start + length - merged[-1][0]
        else:
            merged.append([start, length])
    if merged and merged[0][0] > 0 and merged[0][0] * cluster <= gap:
        merged[0][1] += merged[0][0]
        merged[0][0] = 0
    return [(s * cluster, n * cluster) for s, n in merged]


@settings(max_examples=150, deadline=None)
@given(bits=st.lists(st.integers(0, 1), max_size=700), tail=st.integers(0, 7))
def test_runs_match_the_python_loop(bits: list[int], tail: int):
    data = _bitmap(bits + [1] * tail)  # set bits past nbits must be ignored
    got = [tuple(r) for r in used_runs(data, len(bits)).tolist()]
    assert got == python_loop_runs(data, len(bits))
    assert count_set_bits(data, len(bits)) == sum(bits)


@settings(max_examples=150, deadline=None)
@given(bits=st.lists(st.integers(0, 1), min_size=1, max_size=400), gap_clusters=st.integers(1, 9))
def test_extents_match_the_naive_gap_rule(bits: list[int], gap_clusters: int):
    cluster = 512
    gap = gap_clusters * cluster + 100  # a gap size that is not a whole number of clusters
    got = [tuple(e) for e in bitmap_to_extents(_bitmap(bits), len(bits), cluster, gap).tolist()]
    assert got == _naive_extents(bits, cluster, gap)


def test_runs_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(stream, "STEP_BYTES", 16)  # 128 bits per step: runs cross many chunks
    rng = np.random.default_rng(7)
    bits = (rng.random(5000) < 0.8).astype(np.uint8)
    bits[120:300] = 1  # one run spanning a chunk edge
    bits[1000:1300] = 0
    data = np.packbits(bits, bitorder="little")
    assert [tuple(r) for r in used_runs(data, 4999).tolist()] == python_loop_runs(data.tobytes(), 4999)


def test_all_used_all_free_and_word_aligned_end():
    assert used_runs(b"\xff" * 16, 128).tolist() == [[0, 128]]
    assert used_runs(b"\x00" * 16, 128).tolist() == []
    assert used_runs(b"\xff", 3).tolist() == [[0, 3]]
    assert used_runs(b"", 0).shape == (0, 2)


def test_gap_rule_exact_boundary():
    # used, 4 free, used, 5 free, used -- with 1 KiB clusters and a 4k gap
    bits = [1] + [0] * 4 + [1] + [0] * 5 + [1] + [0] * 20
    out = bitmap_to_extents(_bitmap(bits), len(bits), 1024, 4 * 1024).tolist()
    assert out == [[0, 6 * 1024], [11 * 1024, 1024]]  # a gap of exactly N is kept, N+1 skipped
    # free space after the last used cluster is never copied with a non-zero gap
    assert total_bytes(np.array(out)) == 7 * 1024


def test_gap_zero_keeps_every_block():
    bits = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert bitmap_to_extents(_bitmap(bits), 10, 4096, 0).tolist() == [[0, 40960]]


def test_short_leading_gap_is_copied_long_one_skipped():
    bits = [0, 0, 1, 1]
    assert bitmap_to_extents(_bitmap(bits), 4, 1000, 2000).tolist() == [[0, 4000]]
    assert bitmap_to_extents(_bitmap(bits), 4, 1000, 1999).tolist() == [[2000, 2000]]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="fewer than the 100 clusters"):
        used_runs(b"\xff", 100)
    with pytest.raises(ValueError, match="negative"):
        used_runs(b"\xff", -1)
    with pytest.raises(ValueError, match="cluster size 0"):
        bitmap_to_extents(b"\xff", 8, 0, 10)
    with pytest.raises(ValueError, match="imagegapsize -1"):
        bitmap_to_extents(b"\xff", 8, 512, -1)
    with pytest.raises(ValueError, match="gap -1"):
        coalesce(np.zeros((0, 2), dtype=np.int64), -1)
    with pytest.raises(TypeError, match="uint8"):
        used_runs(np.zeros(4, dtype=np.int32), 8)
    with pytest.raises(ValueError, match="fewer than 9"):
        count_set_bits(b"\xff", 9)


def test_add_extent_merges_touching_and_overlapping():
    base = np.array([[0, 100], [200, 50]], dtype=np.int64)
    assert add_extent(base, 100, 20).tolist() == [[0, 120], [200, 50]]
    assert add_extent(base, 150, 60).tolist() == [[0, 100], [150, 100]]
    assert add_extent(base, 300, 10).tolist() == [[0, 100], [200, 50], [300, 10]]
    assert add_extent(base, 10, 20).tolist() == [[0, 100], [200, 50]]
    assert add_extent(base, 5, 0).tolist() == base.tolist()
    assert add_extent(np.zeros((0, 2), dtype=np.int64), 7, 3).tolist() == [[7, 3]]


def test_benchmark_script_runs_and_checks_itself(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                tmp_path):
    """Keeps benchmarks/bench_extents.py working: a tiny volume, its peers (the Python loop checks itself), the format."""
    import re
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_extents.py"
    monkeypatch.setenv("SERVERFREE_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [str(script), "--sizes", "0.0001,0.0002", "--repeat", "1",
                                      "--peer-bits", "20000"])
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("volume=0.0002TiB clusters=") for line in lines) == 1
    peer = [line for line in lines if line.startswith("ntfsclone_peer")]
    assert len(peer) == 1 and ("skipped" in peer[0] or re.search(r"ntfsclone_image_bytes=\d+ ", peer[0])), peer
    assert re.fullmatch(r"volume=0.0002TiB bitmap_to_extents_seconds=\d+\.\d{3} cpu_seconds=\d+\.\d{3} "
                        r"peak_rss_mib=\d+ load=[\d./]+", lines[-1]), lines[-1]


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_unaligned_input_and_output_growth_across_chunks(monkeypatch: pytest.MonkeyPatch, offset: int):
    """Whole aligned chunks are read in place, others copied; the edge buffer grows when later chunks get denser."""
    monkeypatch.setattr(stream, "STEP_BYTES", 64)  # 512 bits per step
    rng = np.random.default_rng(11 + offset)
    bits = np.zeros(6000, dtype=np.uint8)
    bits[700:760] = 1  # a sparse start projects a small edge buffer ...
    bits[3000:] = rng.random(3000) < 0.5  # ... then dense short runs force it to grow
    bits[-1] = 1  # the last run reaches the end
    packed = np.packbits(bits, bitorder="little")
    backing = np.zeros(packed.size + offset, dtype=np.uint8)
    backing[offset:] = packed
    data = backing[offset:]  # misaligned for offset 1 and 3
    nbits = bits.size - 3  # not a whole byte: the tail is masked
    reference = python_loop_runs(packed.tobytes(), nbits)
    assert [tuple(r) for r in used_runs(data, nbits).tolist()] == reference
    got = [tuple(e) for e in bitmap_to_extents(data, nbits, 512, 2 * 512).tolist()]
    assert got == _naive_extents(bits[:nbits].tolist(), 512, 2 * 512)
    assert len(reference) > 500
