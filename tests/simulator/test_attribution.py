"""Per-job attribution: which class of resource held a job back, and the time its failovers cost."""
import pytest

from simulator.attribution import describe, shares_of
from simulator.copy_plan import UniformCopyPlan
from simulator.faults import FaultInjector, FaultSpec
from simulator.fluid import copy

MB = 1_000_000
GB = 1000 * MB


def _layout():
    return UniformCopyPlan(GB, 100 * MB, 50 * MB, 10 * MB)


def test_a_clean_copy_is_held_back_by_the_drive(small_san, run_proc):
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    att = small_san.attribution.report("J", 0.0, small_san.env.now)
    assert res.ok and att["bottleneck_seconds"] == {"pool": pytest.approx(20.0)}
    assert att["bottleneck_share"] == {"pool": 1.0} and att["main_bottleneck"] == "pool"
    assert att["failover_seconds"] == 0 and att["waiting_seconds"] == 0


def test_a_slow_client_disk_is_charged_even_for_the_shoeshine_it_causes(san_factory, run_proc):
    san = san_factory(disk_mb_s=20.0)  # below the drive's streaming speed: start/stop slows it further
    run_proc(san, copy(san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    att = san.attribution.report("J", 0.0, san.env.now)
    assert san.env.now > 50.0 and san.timeline.events_of("shoeshine")
    assert att["bottleneck_seconds"] == {"client_disk": pytest.approx(san.env.now)}
    assert describe(att) == "bottleneck client_disk 100%"


def test_failover_loss_runs_from_the_last_kept_byte_to_the_next_flow(small_san, run_proc):
    san = small_san
    FaultInjector(san, [FaultSpec(kind="switch_port_down", target="SW1/3", at_s=2.1)]).arm()

    def job():
        res = yield from copy(san, "DM1", "C1:D", "DRV1", _layout(), job="J")
        assert not res.ok  # 105 MB moved, whole segments kept: 100 MB, reached at 2.0 s
        yield san.env.timeout(3.0)  # the job's failover: set-up of the next path
        flow = san.start_flow(100 * MB, [(san.drive("DRV1").resource, 1.0)], job="J")
        yield flow.finished

    run_proc(san, job())
    att = san.attribution.report("J", 0.0, san.env.now)
    assert san.env.now == pytest.approx(2.1 + 3.0 + 2.0)
    assert att["failover_seconds"] == pytest.approx(0.1 + 3.0)  # 5 MB redone + 3 s until the next flow
    assert att["bottleneck_seconds"] == {"pool": pytest.approx(2.0 + 2.0)}
    total = sum(att["bottleneck_share"].values()) + att["failover_seconds"] / att["elapsed_s"]
    assert total == pytest.approx(1.0, abs=1e-3)


def test_a_job_that_fails_for_good_counts_its_loss_to_the_end(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="mover_hang", target="DM1", at_s=1.0)]).arm()
    run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    att = small_san.attribution.report("J", 0.0, small_san.env.now + 4.0)
    # 50 MB moved in the first second, all in whole segments: kept; then stalled for the 30 s timeout
    assert att["failover_seconds"] == pytest.approx(30.0 + 4.0)
    assert att["bottleneck_seconds"] == {"pool": pytest.approx(1.0)}


def test_a_stall_that_recovers_is_stalled_time(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="mover_hang", target="DM1", at_s=1.0, duration_s=5.0)]).arm()
    run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    att = small_san.attribution.report("J", 0.0, small_san.env.now)
    assert att["bottleneck_seconds"] == {"pool": pytest.approx(20.0), "stalled": pytest.approx(5.0)}
    assert att["failover_seconds"] == 0


def test_shares_over_many_jobs_weigh_by_seconds():
    reports = [{"bottleneck_seconds": {"pool": 30.0}}, {"bottleneck_seconds": {"pool": 10.0, "mover": 60.0}}]
    assert shares_of(reports) == {"mover": pytest.approx(0.6), "pool": pytest.approx(0.4)}
