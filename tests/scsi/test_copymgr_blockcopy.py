"""Pipelined block copies (scsi/copymgr/blockcopy.py): depth tuning, fair share, transfer sizes,
the zero-copy libiscsi path against a real tgtd, and failures naming their extent and side."""
from __future__ import annotations

import os

import pytest

from scsi.copymgr.blockcopy import BufferPool, chunk_size, run_block_copy, supports_zero_copy
from scsi.copymgr.pacing import DepthTuner, FairShare
from scsi.copymgr.io import BlockCopy, BlockCopyFailed, Extent
from scsi.copymgr.threaded import ThreadedDriver
from scsi.luns import MemoryBlockLun
from scsi.luns.remote import RemoteLun
from scsi.target.blockdev import BlockLunDevice


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def feed(tuner: DepthTuner, clock: Clock, rate_of_depth) -> None:
    """One window of completions at the throughput ``rate_of_depth(depth)`` (bytes/s)."""
    n = 1 << 20
    for _ in range(tuner.window):
        clock.t += n / rate_of_depth(tuner.depth)
        tuner.completed(n)


def test_depth_climbs_while_throughput_grows_and_settles_where_it_stops():
    clock = Clock()
    tuner = DepthTuner(32, start=4, clock=clock)
    for _ in range(20):
        feed(tuner, clock, lambda d: min(d, 10) * 1e8)  # the devices sustain up to 10 commands
    depths = [d for d, _ in tuner.history[-6:]]
    assert max(depths) <= 14 and min(depths) >= 8, tuner.history


def test_depth_backs_off_when_a_deeper_queue_only_adds_latency():
    clock = Clock()
    tuner = DepthTuner(32, start=16, clock=clock)
    for _ in range(20):
        feed(tuner, clock, lambda d: 1e8 if d <= 4 else 1e8 * 4 / d)  # past 4, throughput falls
    assert all(d <= 8 for d, _ in tuner.history[-6:]), tuner.history
    assert tuner.depth >= 2


def test_noisy_windows_do_not_walk_the_depth_down_to_where_it_is_slow():
    """tgtd-like devices: depth 2 is 40 % slower, 4 and up are equal, and windows vary by +-15 %."""
    import random
    rng = random.Random(11)
    for seed in range(20):
        rng.seed(seed)
        clock = Clock()
        tuner = DepthTuner(16, start=8, clock=clock)
        for _ in range(64):  # a 1 GiB list in 1 MiB chunks
            feed(tuner, clock, lambda d: (1.5e8 if d <= 2 else 2.5e8) * rng.uniform(0.85, 1.15))
        at_two = sum(1 for d, _ in tuner.history if d <= 2)
        assert at_two <= 8, (seed, tuner.history)  # only the odd probe of the shallow end
        assert tuner.depth >= 4, (seed, tuner.history)


def test_fair_share_splits_the_budget_among_running_copies():
    share = FairShare(32)
    share.join()
    assert share.cap() == 32
    for _ in range(3):
        share.join()
    assert share.cap() == 8
    for _ in range(30):
        share.join()
    assert share.cap() == 2  # never below 2: reads and writes still overlap


class LimitedLun(MemoryBlockLun):
    def __init__(self, *a, limits=(0, 0), **kw):
        super().__init__(*a, **kw)
        self._limits = limits

    def transfer_limits(self):
        return self._limits


def test_chunk_follows_the_block_limits_vpd():
    a = LimitedLun("a", num_blocks=8192, limits=(256 * 1024, 64 * 1024))
    b = LimitedLun("b", num_blocks=8192, limits=(0, 96 * 1024))
    req = BlockCopy((Extent(a, 0, b, 0, 100),), 1 << 20, 8, lambda i, n: None)
    assert chunk_size(req) == 192 * 1024  # at most a's maximum, a multiple of b's optimal
    plain = BlockCopy((Extent(MemoryBlockLun("c", num_blocks=8), 0, MemoryBlockLun("d", num_blocks=8), 0, 8),),
                      1 << 20, 8, lambda i, n: None)
    assert chunk_size(plain) == 1 << 20


def test_remote_lun_reads_its_block_limits_from_vpd_b0():
    backing = MemoryBlockLun("backing", num_blocks=4096)
    lun = RemoteLun("r", BlockLunDevice(backing, max_transfer_bytes=128 * 1024))
    try:
        most, best = lun.transfer_limits()
        assert most == 128 * 1024 and 0 < best <= most
        assert not supports_zero_copy(lun)  # an in-process device has no libiscsi session
    finally:
        lun.close()


def test_memory_luns_copy_through_the_thread_pool_in_order():
    src, dst = MemoryBlockLun("s", num_blocks=2048), MemoryBlockLun("d", num_blocks=2048)
    data = os.urandom(1024 * 512)
    src.write(0, data)
    seen = []
    req = BlockCopy((Extent(src, 0, dst, 0, 512), Extent(src, 512, dst, 1024, 512)), 64 * 1024, 4,
                    lambda i, n: seen.append((i, n)))
    driver = ThreadedDriver(4)
    try:
        [res] = driver.run_batch([req])
    finally:
        driver.close()
    assert res.ok and res.value == len(data)
    assert dst.read(0, 512) == data[:512 * 512] and dst.read(1024, 512) == data[512 * 512:]
    assert sum(n for i, n in seen if i == 0) == sum(n for i, n in seen if i == 1) == 512 * 512


@pytest.fixture
def tgtd_pair(tgtd):
    target = tgtd.new_target("blockcopy", {1: "16M", 2: "16M"})
    data = os.urandom(16 << 20)
    with open(target.luns[1], "r+b") as f:
        f.write(data)
    src = RemoteLun("client", target.url(1), sessions=2)
    dst = RemoteLun("pool", target.url(2), sessions=2)
    yield target, src, dst, data
    src.close()
    dst.close()
    target.delete()


def test_zero_copy_path_keeps_commands_in_flight_and_never_copies_in_python(tgtd_pair, monkeypatch):
    target, src, dst, data = tgtd_pair
    assert supports_zero_copy(src) and supports_zero_copy(dst)

    def forbidden(*a, **kw):
        raise AssertionError("the payload went through RemoteLun.read/write (a Python bytes copy)")
    monkeypatch.setattr(src, "read", forbidden)
    monkeypatch.setattr(dst, "write", forbidden)
    done = []
    blocks = len(data) // 512
    half = blocks // 2
    req = BlockCopy((Extent(src, 0, dst, 0, half), Extent(src, half, dst, half, blocks - half)),
                    256 * 1024, 8, lambda i, n: done.append(n))
    buffers = BufferPool()
    assert run_block_copy(req, FairShare(16), pool=None, buffers=buffers) == len(data)
    assert sum(done) == len(data)
    kept = [id(b) for b in buffers._free[256 * 1024]]
    assert 2 <= len(kept) <= 8  # the slots' buffers, back in the pool for the next list
    assert run_block_copy(req, FairShare(16), pool=None, buffers=buffers) == len(data)
    assert {id(b) for b in buffers._free[256 * 1024]} == set(kept)  # the second list used the same memory
    with open(target.luns[2], "rb") as f:
        assert f.read() == data
    inflight = [d.max_inflight for d in src._all + dst._all]
    assert max(inflight) >= 4, inflight  # several commands were outstanding on a session


def test_a_failing_extent_names_itself_and_its_side(tgtd_pair):
    _, src, dst, _ = tgtd_pair
    end = dst.num_blocks
    req = BlockCopy((Extent(src, 0, dst, 0, 64), Extent(src, 0, dst, end - 32, 64)), 16 * 1024, 4,
                    lambda i, n: None)
    with pytest.raises(BlockCopyFailed) as err:
        run_block_copy(req, FairShare(16), pool=None)
    assert err.value.index == 1 and err.value.role == "destination"
    assert err.value.error.key == 0x5 and err.value.error.asc == 0x21  # LBA OUT OF RANGE


def test_check_ends_the_zero_copy_pipeline_after_the_chunks_in_flight(tgtd_pair):
    """A fault plan's COPY ABORTED (``check``) stops new chunks; those in flight land first."""
    target, src, dst, data = tgtd_pair
    calls = []

    class Stop(Exception):
        pass

    def check():
        calls.append(1)
        return Stop("injected") if len(calls) > 4 else None
    done = []
    req = BlockCopy((Extent(src, 0, dst, 0, len(data) // 512),), 64 * 1024, 2, lambda i, n: done.append(n), check)
    with pytest.raises(Stop):
        run_block_copy(req, FairShare(16), pool=None)
    assert sum(done) == 4 * 64 * 1024  # exactly the four chunks started before the stop
    with open(target.luns[2], "rb") as f:
        copied = f.read(len(data))
    assert copied[:4 * 64 * 1024] == data[:4 * 64 * 1024]
    assert copied[4 * 64 * 1024:] == bytes(len(data) - 4 * 64 * 1024)


def test_the_next_list_between_the_same_luns_starts_at_the_depth_learned():
    from scsi.copymgr.pacing import DepthMemory
    a, b, c = (MemoryBlockLun(n, num_blocks=64) for n in "abc")
    memory = DepthMemory(start=4)
    first = BlockCopy((Extent(a, 0, b, 0, 8),), 4096, 32, lambda i, n: None)
    tuner = memory.tuner(first)
    clock = Clock()
    tuner.clock, tuner._t0 = clock, 0.0
    for _ in range(6):
        feed(tuner, clock, lambda d: min(d, 12) * 1e8)
    memory.keep(first, tuner)
    assert tuner.depth > 4
    assert memory.tuner(BlockCopy((Extent(a, 8, b, 8, 8),), 4096, 32, lambda i, n: None)).depth == tuner.depth
    assert memory.tuner(BlockCopy((Extent(a, 0, c, 0, 8),), 4096, 32, lambda i, n: None)).depth == 4


def test_two_copies_at_once_share_one_session_per_lun(tgtd):
    """Two copies in two threads into one pool LUN over its only session: both land, byte for byte."""
    import threading

    target = tgtd.new_target("blockcopy-shared", {1: "8M", 2: "16M"})
    data = os.urandom(8 << 20)
    with open(target.luns[1], "r+b") as f:
        f.write(data)
    src = RemoteLun("client", target.url(1), sessions=1)
    dst = RemoteLun("pool", target.url(2), sessions=1)
    share = FairShare(8)
    errors = []
    blocks = len(data) // 512

    def copy(dst_lba):
        try:
            run_block_copy(BlockCopy((Extent(src, 0, dst, dst_lba, blocks),), 128 * 1024, 8, lambda i, n: None),
                           share, pool=None)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    try:
        threads = [threading.Thread(target=copy, args=(lba,)) for lba in (0, blocks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        with open(target.luns[2], "rb") as f:
            assert f.read() == data + data
    finally:
        src.close()
        dst.close()
        target.delete()
