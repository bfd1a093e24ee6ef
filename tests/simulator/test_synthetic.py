"""Synthetic capacity jobs on a small dual fabric: drive queueing, resumption, failover."""
import pytest

from simulator.calibration import Calibration
from simulator.faults import FaultInjector, FaultSpec
from simulator.synthetic import DrivePool, image_backup
from simulator.worlds import DualFabricSpec, dual_fabric

GiB = 1 << 30
MiB = 1 << 20


def _world(clients=4, drives=2, movers=2, **cal):
    spec = DualFabricSpec(clients=clients, arrays=2, movers=movers, drives=drives, drive_native_mb_s=100.0)
    san = dual_fabric(spec, Calibration(**cal))
    pool = DrivePool(san, sorted(san.dev.drives), recheck_s=100.0)
    return san, pool, sorted(san.dev.movers)


def _start(san, pool, movers, n, size=10 * GiB):
    return [san.env.process(image_backup(san, f"J{c}", f"ARR{c % 2}:{c // 2}", size, pool, movers,
                                         retry_delay_s=5.0)) for c in range(n)]


def test_jobs_queue_for_drives_and_all_finish():
    san, pool, movers = _world()
    procs = _start(san, pool, movers, 4)
    san.run()
    outs = [p.value for p in procs]
    assert all(o.ok and o.path == "server-free" for o in outs)
    # two drives at 100 MB/s, four 10 GiB jobs: two rounds
    assert san.env.now == pytest.approx(2 * 10 * GiB / 100e6, rel=1e-6)
    assert max(o.start for o in outs) == 0 and sorted(o.end for o in outs)[1] < sorted(o.end for o in outs)[2]


def test_tape_error_resumes_on_another_drive_after_the_last_whole_batch():
    san, pool, movers = _world(clients=1)
    san.register_job("J0", 10 * GiB)
    FaultInjector(san, [FaultSpec(kind="tape_error", target="DRV01", after_bytes=1000 * MiB + 5, job="J0")]).arm()
    (proc,) = _start(san, pool, movers, 1)
    san.run()
    out = proc.value
    assert out.ok and out.attempts == 2
    assert "THIRD PARTY DEVICE FAILURE (0Dh/01h), segment 40" in out.failures[0]  # 40 MiB into batch 12
    # 12 whole 80 MiB batches (960 MiB) were on tape; the rest, 40 MiB + 5 bytes, is copied again
    assert san.jobs["J0"].done == pytest.approx(10 * GiB + 40 * MiB + 5)
    labels = [f.label for f in san.timeline.flows.values()]
    assert labels == ["server-free:DM1->DRV01", "server-free:DM2->DRV02"]


def test_all_movers_hung_fails_over_to_lan_free():
    san, pool, movers = _world(clients=1, scsi_timeout_s=20.0)
    FaultInjector(san, [FaultSpec(kind="mover_hang", target=m, at_s=10.0) for m in movers]).arm()
    (proc,) = _start(san, pool, movers, 1)
    san.run()
    out = proc.value
    assert out.ok and out.path == "lan-free"
    assert sum("timed out" in f for f in out.failures) == 3
