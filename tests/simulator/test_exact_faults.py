"""Exact mode meets scheduled faults the way the fluid mode does: byte- and percent-triggered faults
strike at the engine's progress, a hung mover ends in the initiator's timeout, a starved drive shoe-shines."""
import pytest

from orchestrator.ops import MoverLimits, pieces_from_extents
from orchestrator.plan.disk import CscdRef, default_encoder, plan_batches
from scsi.asc import COPY_TARGET_DEVICE_NOT_REACHABLE
from scsi.copymgr.cdb import extended_copy_cdb
from scsi.copymgr.client import Client
from scsi.result import Nexus
from scsi.sense import Sense, SenseKey
from simulator.exact import ExactMover, NullBlockLun
from simulator.faults import FaultInjector, FaultSpec

MIB = 1 << 20
SRC_NAA, DST_NAA = "6001405" + "c" * 25, "6001405" + "d" * 25
LIMITS = MoverLimits(max_target_count=2, max_segment_count=8, max_descriptor_list_length=1024,
                     max_segment_length=4 * MIB, data_segment_granularity=9)
NEXUS = Nexus("iqn.sim:h", "DM1")


def _mover(san, dest="POOL"):
    """Disk C1:D -> DM1 -> ``dest`` (the pool disk, or tape drive DRV1) as LUNs carrying no bytes."""
    luns = {"C1:D": NullBlockLun("C1:D", num_blocks=1 << 22, naa=bytes.fromhex(SRC_NAA)),
            dest: NullBlockLun(dest, num_blocks=1 << 22, naa=bytes.fromhex(DST_NAA))}
    if dest == "POOL":
        san.add_disk("POOL")
        san.add_route("DM1", "POOL", [("M1", False), ("T1", True)])
    return ExactMover(san, "DM1", luns)


def _lists(total, dest="POOL", batch_bytes=32 * MIB):
    batches = plan_batches(pieces_from_extents([(0, total)]), direction="backup", src=CscdRef("C1:D", SRC_NAA),
                           dst=CscdRef(dest, DST_NAA), src_base=0, dst_base=0, limits=LIMITS,
                           batch_bytes=batch_bytes, encoder=default_encoder())
    return [pl for b in batches for pl in b.lists]


def _copy(san, mover, total, faults, *, job="J", register=True):
    """Register the job, arm ``faults``, run one EXTENDED COPY of ``total`` bytes; (process, injector)."""
    if register:
        san.register_job(job, total)
    inj = FaultInjector(san, faults)
    inj.arm()
    (plist,) = _lists(total)
    proc = san.env.process(mover.extended_copy(NEXUS, extended_copy_cdb(len(plist.data)), plist.data, job=job))
    san.env.run(until=proc)
    return proc, inj, plist.list_id


def _written(mover, list_id):
    return Client(mover.manager, NEXUS).copy_status(list_id).bytes_transferred


def test_at_percent_fault_fires_at_that_share_of_the_copy(small_san):
    mover = _mover(small_san)
    total = 32 * MIB
    proc, inj, list_id = _copy(small_san, mover, total, [
        FaultSpec(kind="switch_port_down", target="SW1/3", at_percent=50, job="J")])
    assert len(inj.applied) == 1
    sense = Sense.decode(proc.value.sense)
    assert sense.key == SenseKey.COPY_ABORTED and (sense.asc, sense.ascq) == COPY_TARGET_DEVICE_NOT_REACHABLE
    # the port fell when the engine had written half the copy: what it reports done is just short of
    # that (the writes in flight are lost), not a quarter (reads counted too) nor everything
    written = _written(mover, list_id)
    assert total / 2 - 4 * MIB <= written <= total / 2


def test_after_bytes_fault_on_the_destination_forwards_its_sense(small_san):
    mover = _mover(small_san)
    proc, inj, list_id = _copy(small_san, mover, 32 * MIB, [
        FaultSpec(kind="lun_not_ready", target="POOL", after_bytes=8 * MIB, job="J")])
    assert [s.kind for _, s in inj.applied] == ["lun_not_ready"]
    sense = Sense.decode(proc.value.sense)
    assert sense.key == SenseKey.COPY_ABORTED
    assert sense.forwarded()["destination"][1].key == SenseKey.NOT_READY
    assert 4 * MIB <= _written(mover, list_id) <= 8 * MIB


def test_byte_trigger_counts_only_its_own_job(small_san):
    mover = _mover(small_san)
    small_san.register_job("OTHER", 32 * MIB)
    proc, inj, _ = _copy(small_san, mover, 16 * MIB, [
        FaultSpec(kind="switch_port_down", target="SW1/3", after_bytes=1, job="OTHER")])
    assert proc.value.ok and inj.applied == []


def test_same_faults_same_timeline(san_factory):
    def once():
        san = san_factory()
        mover = _mover(san)
        proc, inj, list_id = _copy(san, mover, 24 * MIB, [
            FaultSpec(kind="switch_port_down", target="SW1/3", at_percent=37, job="J")])
        return [t for t, _ in inj.applied], proc.value.sense, _written(mover, list_id), san.env.now

    first = once()
    assert first == once() and first[0]


@pytest.mark.parametrize("trigger", [{"at_percent": 50, "job": "J"}, {"after_bytes": 3 * MIB, "job": "J"},
                                     {"at_s": 0.05}])
def test_mover_hang_mid_copy_is_a_command_timeout(small_san, trigger):
    mover = _mover(small_san)
    proc, inj, _ = _copy(small_san, mover, 32 * MIB, [FaultSpec(kind="mover_hang", target="DM1", **trigger)])
    assert len(inj.applied) == 1
    hung_at = inj.applied[0][0]
    assert 0 < hung_at < 1
    assert proc.value is None  # no status, no sense: the mover never answered
    # the initiator's timer started with the command (at 0) and is what ends it
    assert small_san.env.now == pytest.approx(small_san.cal.scsi_timeout_s)


def test_hung_mover_moves_nothing_more(small_san):
    mover = _mover(small_san)
    _copy(small_san, mover, 32 * MIB, [FaultSpec(kind="mover_hang", target="DM1", at_percent=25, job="J")])
    # the writes in flight when it hung were lost, and no further chunk was read or written
    assert small_san.jobs["J"].done <= 8 * MIB


def test_mover_hung_before_the_command_times_out_without_io(small_san):
    mover = _mover(small_san)
    proc, _, _ = _copy(small_san, mover, 8 * MIB, [FaultSpec(kind="mover_hang", target="DM1", at_s=0)])
    assert proc.value is None
    assert small_san.env.now == pytest.approx(small_san.cal.scsi_timeout_s)
    assert small_san.jobs["J"].done == 0


def test_concurrent_flows_of_one_job_leave_no_byte_untriggerable(small_san):
    """Two flows of a job running at once cover consecutive ranges: a mark in the second range fires."""
    fired = []
    small_san.register_job("J", 2 * MIB)
    small_san.watch_job("J", 1.5 * MIB, lambda: fired.append(small_san.env.now))
    disk = small_san.disk("C1:D").resource
    a = small_san.start_flow(MIB, [(disk, 1.0)], job="J")
    b = small_san.start_flow(MIB, [(disk, 1.0)], job="J")
    assert (a.meta["job_base"], b.meta["job_base"]) == (0, MIB)
    small_san.run()
    assert len(fired) == 1 and 0 < fired[0] < small_san.env.now


def test_uncounted_flows_are_not_job_progress(small_san):
    disk = small_san.disk("C1:D").resource
    small_san.start_flow(MIB, [(disk, 1.0)], job="J", counts=False)
    small_san.start_flow(MIB, [(disk, 1.0)], job="J")
    small_san.run()
    assert small_san.jobs["J"].done == MIB


def _backup_to_drive(san, total):
    mover = _mover(san, "DRV1")
    (plist,) = _lists(total, "DRV1", batch_bytes=total)
    proc = san.env.process(mover.extended_copy(NEXUS, extended_copy_cdb(len(plist.data)), plist.data, job="J"))
    san.env.run(until=proc)
    assert proc.value.ok
    return mover


def test_drive_fed_below_streaming_speed_shoe_shines_in_exact_mode(san_factory):
    # a 10 MB/s source feeding a 50 MB/s drive that must stream at >= 25 MB/s
    san = san_factory(disk_mb_s=10.0, tape_buffer_mib=8.0, mover_buffer_mib=0.0, tape_reposition_s=1.0)
    total = 32 * MIB
    mover = _backup_to_drive(san, total)
    events = san.timeline.events_of("shoeshine")
    assert events and all(e.subject == "DRV1" and e.detail["mode"] == "exact" for e in events)
    cycles = sum(e.detail["cycles"] for e in events)
    assert cycles == pytest.approx(total / (8 * MIB)) == pytest.approx(mover.shoeshine_cycles["DRV1"])
    # the fluid mode's penalty: the feed's own time plus one reposition per buffer of bytes
    assert san.env.now >= total / 10e6 + cycles * 1.0


def test_drive_fed_at_streaming_speed_does_not_shoe_shine(san_factory):
    san = san_factory(disk_mb_s=200.0, tape_buffer_mib=8.0, mover_buffer_mib=0.0, tape_reposition_s=1.0)
    mover = _backup_to_drive(san, 32 * MIB)
    assert san.timeline.events_of("shoeshine") == [] and mover.shoeshine_cycles == {}
