"""The streamed bitmap -> extents: against the whole-bitmap code it replaced, a bit-by-bit walk, and its memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.volume.bitmap_stream import ExtentStream, iter_extents, memory_chunks
from orchestrator.volume.extents import iter_bitmap_extents, python_loop_runs
from tests.fixtures import extents_before_streaming as before

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_extents.py"


def _fragmented(nbits: int, seed: int) -> np.ndarray:
    """Used and free runs of geometric length (means 48 and 24 clusters), as the benchmark makes them."""
    rng = np.random.default_rng(seed)
    pairs = nbits // 36 + 64
    lengths = np.empty(2 * pairs, dtype=np.int64)
    lengths[0::2] = rng.geometric(1 / 48, pairs)
    lengths[1::2] = rng.geometric(1 / 24, pairs)
    bits = np.repeat(np.tile(np.array([1, 0], dtype=np.uint8), pairs), lengths)[:nbits]
    return np.packbits(bits, bitorder="little")


def _streamed(bitmap: np.ndarray, nbits: int, max_gap: int, scale: int, chunk: int, step: int,
              workers: int = 1) -> np.ndarray:
    stream = ExtentStream(nbits, max_gap, scale, step_bytes=step, workers=workers)
    parts = [stream.feed(piece) for piece in memory_chunks(bitmap, chunk)] + [stream.finish()]
    return np.concatenate(parts)


@pytest.mark.parametrize(("nbits", "gap_bytes"), [(1 << 22, 32 * 1024), (1 << 22, 4096), (3_000_001, 256 * 1024),
                                                  (1 << 23, 128 * 1024)])
def test_same_extents_as_the_whole_bitmap_code_it_replaced(nbits: int, gap_bytes: int):
    """A fragmented 16-32 GiB volume, read in odd chunk sizes, gives exactly the old code's extents."""
    bitmap = _fragmented(nbits, seed=nbits % 97)
    old = before.bitmap_to_extents(bitmap, nbits, 4096, gap_bytes)
    assert old.shape[0] > 1000
    for chunk, step, workers in ((4 << 20, 256 * 1024, 1), (12_345, 4096, 1), (100_003, 999, 1),
                                 (4 << 20, 64 * 1024, 2), (100_000, 4096, 3)):
        got = _streamed(bitmap, nbits, gap_bytes // 4096, 4096, chunk, step, workers)
        assert np.array_equal(got, old), (chunk, step, workers)
    runs = np.concatenate(list(iter_extents(memory_chunks(bitmap, 77_777), nbits)))
    assert np.array_equal(runs, before.used_runs(bitmap, nbits))


@settings(max_examples=200, deadline=None)
@given(bits=st.lists(st.integers(0, 1), max_size=600), junk=st.integers(0, 3), max_gap=st.integers(0, 6),
       chunk=st.integers(1, 40), step=st.sampled_from([8, 16, 64]), offset=st.integers(0, 7),
       workers=st.sampled_from([1, 2]))
def test_any_chunking_matches_the_bit_by_bit_walk(bits: list[int], junk: int, max_gap: int, chunk: int, step: int,
                                                  offset: int, workers: int):
    """Runs cut at every position, unaligned chunks, set bits past the end, steps on threads: as the Python walk says."""
    packed = np.packbits(np.array(bits + [1] * (8 * junk + 7), dtype=np.uint8), bitorder="little")
    backing = np.zeros(packed.size + offset, dtype=np.uint8)
    backing[offset:] = packed
    stream = ExtentStream(len(bits), max_gap, 1, step_bytes=step, workers=workers)
    got = np.concatenate([stream.feed(p) for p in memory_chunks(backing[offset:], chunk * 4)] + [stream.finish()])
    merged: list[list[int]] = []
    for start, length in python_loop_runs(packed.tobytes(), len(bits)):
        if merged and start - sum(merged[-1]) <= max_gap:
            merged[-1][1] = start + length - merged[-1][0]
        else:
            merged.append([start, length])
    if merged and 0 < merged[0][0] <= max_gap:
        merged[0] = [0, sum(merged[0])]
    assert [tuple(e) for e in got.tolist()] == [tuple(m) for m in merged]
    assert stream.used_clusters == sum(bits)


def test_short_bitmap_and_reuse_are_refused():
    stream = ExtentStream(100)
    stream.feed(b"\xff" * 5)
    with pytest.raises(ValueError, match="40 bits, fewer than the 100 clusters"):
        stream.finish()
    done = ExtentStream(8)
    done.feed(b"\x0f")
    assert done.finish().tolist() == [[0, 4]]
    with pytest.raises(ValueError, match="already finished"):
        done.feed(b"\x00")
    with pytest.raises(ValueError, match="gap -1"):
        ExtentStream(8, -1)


def test_gap_zero_is_the_whole_cluster_area_without_reading():
    def never() -> object:
        raise AssertionError("the bitmap must not be read for imagegapsize 0")
        yield

    assert [b.tolist() for b in iter_bitmap_extents(never(), 10, 4096, 0)] == [[[0, 40960]]]


def _bench_child(tib: float, tmp_path: Path) -> dict[str, float]:
    """The benchmark's own measuring process (bitmap cached in tmp_path), its peak RSS from os.wait4."""
    env = {**os.environ, "SERVERFREE_BENCH_CACHE": str(tmp_path)}
    nbits = int(tib * (1 << 40)) // 4096
    subprocess.run([sys.executable, str(BENCH), "--make-bitmap", str(nbits)], env=env, check=True, timeout=120)
    child = subprocess.Popen([sys.executable, str(BENCH), "--child", str(nbits), "--repeat", "1"], env=env,
                             stdout=subprocess.PIPE, text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    assert status == 0
    return {**json.loads(out), "rss_mib": usage.ru_maxrss / 1024}


def test_memory_stays_flat_as_the_volume_grows(tmp_path: Path):
    """8x the volume (4 MiB -> 32 MiB of bitmap, 1 -> 8 million extents): peak RSS grows by less than 12 MiB."""
    small = _bench_child(0.125, tmp_path)
    large = _bench_child(1.0, tmp_path)
    assert large["extents"] > 7 * small["extents"] > 1_000_000
    assert large["rss_mib"] - small["rss_mib"] < 12, (small, large)
