"""A SimSAN built from the dual-fabric example topology: routes, figures, failover across fabrics."""
from pathlib import Path

import pytest

from scsi.sense import Sense
from simulator.copy_plan import UniformCopyPlan
from simulator.faults import FaultInjector, FaultSpec, random_faults
from simulator.fluid import copy
from simulator.from_topology import san_from_topology
from topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2]
DUAL = ROOT / "scenarios" / "topologies" / "dual-fabric.yaml"
GB = 10**9


@pytest.fixture
def dual():
    return san_from_topology(load_topology(DUAL))


def test_devices_and_figures_come_from_the_topology(dual):
    assert set(dual.dev.movers) == {"DM1", "DM2"} and set(dual.dev.drives) == {"DRV1", "DRV2"}
    assert dual.owners["ARR1:5"] == "CLIENT1" and dual.server == "TSMSRV"
    assert dual.dev.drives["DRV1"].resource.capacity == pytest.approx(15e6)  # Drive.native_mb_s default
    fwd, rev = dual.link("SWA/3")  # switch-port alias of the DM1 cable, 2 Gbit/s each way
    assert fwd.capacity == rev.capacity == pytest.approx(200e6)
    # zoning: DM1 only reaches DRV1 (fabric A), DM2 only DRV2
    assert ("DM1", "DRV1") in dual.routes and ("DM1", "DRV2") not in dual.routes


def test_fabric_a_port_down_fails_dm1_but_dm2_on_fabric_b_completes(dual, run_proc):
    FaultInjector(dual, [FaultSpec(kind="switch_port_down", target="SWA/2", at_s=10)]).arm()
    lay = UniformCopyPlan(GB, 80 * 2**20, 80 * 2**20, 2**20)
    first = run_proc(dual, copy(dual, "DM1", "ARR1:5", "DRV1", lay, job="J"))
    assert Sense.decode(first.failure.sense).asc_ascq == (0x0D, 0x02)
    again = run_proc(dual, copy(dual, "DM1", "ARR1:5", "DRV1", lay, job="J"))
    assert again.failure is not None and again.elapsed == 0  # refused: no live route
    other = run_proc(dual, copy(dual, "DM2", "ARR1:5", "DRV2", lay, job="J"))
    assert other.ok


def test_unknown_fault_target_is_named(dual):
    with pytest.raises(LookupError, match="fault tape_error NOPE at 1 s: no tape drive named 'NOPE'"):
        FaultInjector(dual, [FaultSpec(kind="tape_error", target="NOPE", at_s=1)])


def test_fault_spec_needs_exactly_one_trigger():
    with pytest.raises(ValueError, match="exactly one of at_s, after_bytes, at_percent"):
        FaultSpec(kind="link_down", target="L", at_s=1, at_percent=5, job="J")
    with pytest.raises(ValueError, match="needs the job"):
        FaultSpec(kind="link_down", target="L", at_percent=5)


def test_same_seed_same_schedule_and_timeline(run_proc):
    def once(seed):
        san = san_from_topology(load_topology(DUAL))
        faults = random_faults(seed, 6, san, horizon_s=100.0, jobs=["J"])
        san.register_job("J", GB)
        FaultInjector(san, faults).arm()
        lay = UniformCopyPlan(GB, 80 * 2**20, 80 * 2**20, 2**20)
        res = run_proc(san, copy(san, "DM1", "ARR1:5", "DRV1", lay, job="J"))
        san.run(until=500)
        return faults, res, [(e.time, e.kind, e.subject) for e in san.timeline.events]

    a, b, c = once(7), once(7), once(8)
    assert a == b
    assert a[0] != c[0]


def test_offline_components_start_broken(run_proc):
    isl = san_from_topology(load_topology(ROOT / "scenarios/topologies/mistake-failed-isl.yaml"))
    fwd, rev = isl.link("ISL1")
    assert fwd.capacity == rev.capacity == 0 and isl.link_kind["ISL1"] == "isl"
    off = san_from_topology(load_topology(ROOT / "scenarios/topologies/mistake-mover-offline.yaml"))
    (mover,) = off.dev.movers
    (drive,) = off.dev.drives
    (disk,) = off.owners
    res = run_proc(off, copy(off, mover, disk, drive, UniformCopyPlan(GB, 80 * 2**20, 80 * 2**20, 2**20)))
    assert res.failure.kind == "timeout" and res.elapsed == off.cal.scsi_timeout_s
