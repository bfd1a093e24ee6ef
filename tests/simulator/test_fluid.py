"""Fluid-mode copies and transfers: timing, and what a fault looks like to the orchestrator."""
import pytest

from orchestrator.ops import LanFreeWrite, LanSend, Piece
from scsi.sense import Sense, SenseKey
from simulator.copy_plan import ArrayCopyPlan, UniformCopyPlan
from simulator.faults import FaultInjector, FaultSpec
from simulator.fluid import copy, transfer

MB = 1_000_000
GB = 1000 * MB


def _layout(total=GB, batch=100 * MB, lst=50 * MB, seg=10 * MB, extents=1):
    return UniformCopyPlan(total, batch, lst, seg, extents)


def test_clean_copy_runs_at_the_drive_rate(small_san, run_proc):
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    assert res.ok and res.batches_done == 10
    assert res.elapsed == pytest.approx(GB / (50 * MB))


def test_tape_error_mid_copy_is_copy_aborted_with_segment_and_drive_sense(small_san, run_proc):
    small_san.register_job("J", GB)
    FaultInjector(small_san, [FaultSpec(kind="tape_error", target="DRV1", at_percent=43, job="J")]).arm()
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    # 430 MB done: batches 0-3 complete, batch 4 list 0 complete (50 MB), segment 3 of list 1 in flight
    assert (res.batches_done, res.lists_done, res.segments_done) == (4, 0, 3)
    sense = Sense.decode(res.failure.sense)
    assert res.failure.kind == "sense" and sense.key == SenseKey.COPY_ABORTED
    assert sense.asc_ascq == (0x0D, 0x01) and sense.segment == 3
    status, drive_sense = sense.forwarded()["destination"]
    assert status == 0x02 and drive_sense.key == SenseKey.MEDIUM_ERROR and drive_sense.asc_ascq == (0x0C, 0x00)
    assert res.elapsed == pytest.approx(430 * MB / (50 * MB))


def test_link_down_is_copy_target_not_reachable(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="switch_port_down", target="SW1/3", at_s=2.0)]).arm()
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    sense = Sense.decode(res.failure.sense)
    assert sense.key == SenseKey.COPY_ABORTED and sense.asc_ascq == (0x0D, 0x02)
    assert res.batches_done == 1 and res.elapsed == pytest.approx(2.0)


def test_mover_hang_times_out(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="mover_hang", target="DM1", at_s=1.0)]).arm()
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    assert res.failure.kind == "timeout" and res.segments_done is None
    assert res.elapsed == pytest.approx(1.0 + 30.0)  # hang + scsi_timeout_s


def test_short_hang_recovers_without_timeout(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="mover_hang", target="DM1", at_s=1.0, duration_s=5.0)]).arm()
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    assert res.ok and res.elapsed == pytest.approx(20.0 + 5.0)


def test_mover_reset_loses_the_copy_with_unit_attention(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="mover_reset", target="DM1", after_bytes=300 * MB, job="J")]).arm()
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    sense = Sense.decode(res.failure.sense)
    assert sense.key == SenseKey.UNIT_ATTENTION and sense.asc == 0x29
    assert res.batches_done == 3 and res.segments_done is None


def test_lun_not_ready_before_start_is_refused_at_once(small_san, run_proc):
    FaultInjector(small_san, [FaultSpec(kind="lun_not_ready", target="C1:D", at_s=0.0)]).arm()
    small_san.env.run(until=0.5)
    res = run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="J"))
    sense = Sense.decode(res.failure.sense)
    assert sense.asc_ascq == (0x0D, 0x01) and res.elapsed == 0
    src_status, src_sense = sense.forwarded()["source"]
    assert src_sense.key == SenseKey.NOT_READY and src_sense.asc == 0x04


def test_array_layout_locates_segments():
    lay = ArrayCopyPlan([10, 20, 30, 40], segments_per_list=[2, 1, 1], lists_per_batch=[2, 1])
    assert (lay.locate(0).batch, lay.locate(0).segment_in_list) == (0, 0)
    p = lay.locate(15)
    assert (p.batch, p.list_in_batch, p.segment_in_list, p.done_bytes) == (0, 0, 1, 10)
    p = lay.locate(65)
    assert (p.batch, p.list_in_batch, p.segment_in_list) == (1, 0, 0)
    assert lay.locate(100).batch == 2
    with pytest.raises(ValueError, match="does not add up"):
        ArrayCopyPlan([1, 2], [1], [1])


def test_fragmented_source_starves_the_drive_into_shoe_shine(san_factory, run_proc):
    def run(extents):
        san = san_factory(disk_positioning_ms=8.0, disk_mb_s=60.0)
        res = run_proc(san, copy(san, "DM1", "C1:D", "DRV1", _layout(extents=extents), job="J"))
        return res, san

    few, san_few = run(10)
    many, san_many = run(40_000)  # a tiny imagegapsize: 40k extents in 1 GB
    assert few.ok and many.ok
    assert not san_few.timeline.events_of("shoeshine")
    assert san_many.timeline.events_of("shoeshine")[0].subject == "DRV1"
    assert many.elapsed > 2 * few.elapsed


def test_lan_free_agent_down_is_lost_connection_with_pieces_done(small_san, run_proc):
    pieces = tuple(Piece(i * 100 * MB, i * 100 * MB, 100 * MB) for i in range(5))
    FaultInjector(small_san, [FaultSpec(kind="agent_down", target="SA1", at_s=3.5)]).arm()
    op = LanFreeWrite(source="C1:D", pool_device="DRV1", pool_offset=0, pieces=pieces)
    res = run_proc(small_san, transfer(small_san, op, job="J"))
    assert res.failure.kind == "lost-connection" and res.pieces_done == 1  # 175 MB at 50 MB/s
    assert [p.image_offset for p in res.stored] == [0]


def test_server_free_offloads_client_and_server_cpu(small_san, run_proc):
    pieces = (Piece(0, 0, GB),)
    run_proc(small_san, copy(small_san, "DM1", "C1:D", "DRV1", _layout(), job="A"))
    cpu_c = small_san.net.work_done(small_san.host("C1").cpu)
    cpu_s = small_san.net.work_done(small_san.host("SRV").cpu)
    run_proc(small_san, transfer(small_san, LanSend("SRV", "C1:D", "DRV1", 0, pieces), job="B"))
    lan_c = small_san.net.work_done(small_san.host("C1").cpu) - cpu_c
    lan_s = small_san.net.work_done(small_san.host("SRV").cpu) - cpu_s
    assert cpu_c == 0 and lan_c == pytest.approx(6.0e-3 * GB / (1 << 20))
    assert lan_s > 10 * cpu_s > 0
