"""Exact mode without bytes: NullBlockLun timing runs, and refusals the engine turns into sense."""
import pytest

from orchestrator.ops import MoverLimits, pieces_from_extents
from orchestrator.plan.disk import CscdRef, default_encoder, plan_batches
from scsi.copymgr.cdb import extended_copy_cdb
from scsi.result import Nexus
from scsi.sense import Sense, SenseKey
from simulator.exact import ExactMover, NullBlockLun

MIB = 1 << 20
SRC_NAA, DST_NAA = "6001405" + "a" * 25, "6001405" + "b" * 25
LIMITS = MoverLimits(max_target_count=2, max_segment_count=8, max_descriptor_list_length=1024,
                     max_segment_length=4 * MIB, data_segment_granularity=9)


def _mover(san):
    luns = {"C1:D": NullBlockLun("C1:D", num_blocks=1 << 22, naa=bytes.fromhex(SRC_NAA)),
            "POOL": NullBlockLun("POOL", num_blocks=1 << 22, naa=bytes.fromhex(DST_NAA))}
    san.add_disk("POOL")
    san.add_route("DM1", "POOL", [("M1", False), ("T1", True)])
    return ExactMover(san, "DM1", luns)


def _lists(total):
    batches = plan_batches(pieces_from_extents([(0, total)]), direction="backup", src=CscdRef("C1:D", SRC_NAA),
                           dst=CscdRef("POOL", DST_NAA), src_base=0, dst_base=0, limits=LIMITS,
                           batch_bytes=32 * MIB, encoder=default_encoder())
    return [pl for b in batches for pl in b.lists]


def _send(san, run_proc, mover, plist):
    return run_proc(san, mover.extended_copy(Nexus("iqn.sim:h", "DM1"), extended_copy_cdb(len(plist.data)),
                                             plist.data, job="J"))


def test_null_luns_cost_time_but_no_memory(small_san, run_proc):
    mover = _mover(small_san)
    (plist,) = _lists(32 * MIB)
    res = _send(small_san, run_proc, mover, plist)
    assert res.ok
    # the 100 MB/s mover is the bottleneck; the engine reads then writes each chunk, so between
    # fully overlapped (32 MiB / 100 MB/s) and fully serial (x2)
    assert 32 * MIB / 100e6 <= small_san.env.now <= 2 * 32 * MIB / 100e6 * 1.01
    assert mover.manager.counters["bytes"] == 32 * MIB


def test_lun_not_ready_before_the_copy_is_copy_aborted_with_its_sense(small_san, run_proc):
    from simulator.faults import FaultInjector, FaultSpec

    mover = _mover(small_san)
    FaultInjector(small_san, [FaultSpec(kind="lun_not_ready", target="C1:D", at_s=0)]).arm()
    small_san.env.run(until=0.1)
    (plist,) = _lists(4 * MIB)
    res = _send(small_san, run_proc, mover, plist)
    sense = Sense.decode(res.sense)
    assert sense.key == SenseKey.COPY_ABORTED and sense.segment == 0
    assert sense.forwarded()["source"][1].key == SenseKey.NOT_READY


def test_unknown_lun_is_named(small_san):
    with pytest.raises(LookupError, match="LUN 'NOPE' is no disk or drive"):
        ExactMover(small_san, "DM1", {"NOPE": NullBlockLun("NOPE", num_blocks=8)})
