"""The data mover as it works: reads and writes overlapped, each a queue of ``mover_io_depth`` chunks whose
size follows the LUNs' Block Limits -- the same rule as the real mover (scsi/copymgr/blockcopy.py)."""
import pytest

from scsi.copymgr.blockcopy import chunk_size
from scsi.copymgr.io import BlockCopy, Extent
from simulator.calibration import Calibration
from simulator.copy_plan import UniformCopyPlan
from simulator.devices import queued_commands
from simulator.exact import NullBlockLun
from simulator.fluid import copy

MB = 1_000_000
KIB, MIB = 1024, 1 << 20


class LimitedLun(NullBlockLun):
    def __init__(self, name, most, best):
        super().__init__(name, num_blocks=1 << 20)
        self._limits = (most, best)

    def transfer_limits(self):
        return self._limits


@pytest.mark.parametrize("chunk_kib, most_kib, best_kib", [(1024, 0, 0), (1024, 256, 0), (1024, 0, 768),
                                                           (1024, 512, 192), (64, 0, 128), (4096, 3000, 0)])
def test_the_simulated_chunk_is_the_one_the_real_mover_chooses(chunk_kib, most_kib, best_kib):
    a, b = LimitedLun("a", most_kib * KIB, best_kib * KIB), LimitedLun("b", most_kib * KIB, best_kib * KIB)
    real = chunk_size(BlockCopy((Extent(a, 0, b, 0, 8),), chunk_kib * KIB, 16, lambda i, n: None))
    cal = Calibration(mover_chunk_kib=chunk_kib, lun_max_transfer_kib=most_kib, lun_optimal_transfer_kib=best_kib)
    assert cal.mover_chunk() == real


def test_queued_commands_hide_latency_by_the_depth():
    assert queued_commands(16 * MIB, MIB, 1) == 16
    assert queued_commands(16 * MIB, MIB, 16) == 1
    assert queued_commands(16 * MIB + 1, MIB, 1, extents=3) == 17 + 2  # a short chunk per extent
    assert queued_commands(0, MIB, 4) == 0


def _copy_seconds(san_factory, run_proc, **cal):
    san = san_factory(**cal)
    san.add_disk("POOL", 400)
    san.add_route("DM1", "POOL", [("M1", False), ("T1", True)])
    total = 64 * MIB
    res = run_proc(san, copy(san, "DM1", "C1:D", "POOL", UniformCopyPlan(total, total, total, total, 1), job="J"))
    assert res.ok
    return res.elapsed


def test_a_copy_runs_at_the_slower_device_stream_at_the_movers_depth(san_factory, run_proc):
    # client disk 200 MB/s + 4 ms per command, pool 400 MB/s + the same; mover 1000 MB/s, never the bottleneck
    cal = dict(disk_command_ms=4.0, mover_mb_s=1000.0, mover_chunk_kib=1024)
    total, chunk = 64 * MIB, MIB
    for depth in (1, 4, 16):
        took = _copy_seconds(san_factory, run_proc, mover_io_depth=depth, **cal)
        # reads and writes overlap: the copy takes as long as the slower stream alone, each command's 4 ms
        # overlapped depth-fold -- not the sum of a read and a write stream
        read_stream = total / (200 * MB) + (total / chunk) * 0.004 / depth
        assert took == pytest.approx(read_stream, rel=1e-6), depth
    # deeper queues approach the device's streaming rate; a synchronous stream pays every latency
    assert _copy_seconds(san_factory, run_proc, mover_io_depth=64, **cal) == pytest.approx(total / (200 * MB), rel=0.02)
    assert _copy_seconds(san_factory, run_proc, mover_io_depth=1, **cal) > 1.7 * total / (200 * MB)


def test_the_lab_calibration_recovers_rate_and_latency_from_two_depths():
    from tests.fixtures.sanlab_calibration import device_model

    bandwidth, latency, chunk, depth = 200 * MB, 0.004, MIB, 16
    sync = 1 / (1 / bandwidth + latency / chunk)
    queued = 1 / (1 / bandwidth + latency / (depth * chunk))
    assert device_model(sync, queued, chunk, depth) == (200.0, 4.0)
    # a queue measured no faster than one command (load noise): no latency, the better rate
    assert device_model(150 * MB, 140 * MB, chunk, depth) == (150.0, 0.0)


def test_the_default_simulated_chunk_is_the_real_movers_default():
    """Exact mode's engines take the calibration's chunk, the flow model queues it: both must be the mover's."""
    from scsi.copymgr.config import CopyLimits, MoverLimits

    assert Calibration().mover_chunk_kib * KIB == CopyLimits().chunk_bytes == MoverLimits().chunk_bytes
    assert Calibration().mover_io_depth == MoverLimits().io_depth  # datamover serve's depth (exact mode keeps 4)
