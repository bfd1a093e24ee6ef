"""Fault injection in the copy manager: each rule strikes exactly where it says, and only there.

Judged from outside the plan: the sense bytes the initiator receives (decoded
by scsi.sense against SPC-4's layout), the destination LUN's bytes, and the
time a BUSY window lasts.
"""
from __future__ import annotations

import os
import time

import pytest

from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.client import Client, cscd_for_lun, sense_of
from scsi.copymgr.faults import FaultError, FaultInjector, FaultPlan, parse_fault
from scsi.luns import MemoryBlockLun
from scsi.result import Status
from scsi.sense import SenseKey
from scsi.xcopy import BlockToBlock, Header, ParameterList

LIMITS = CopyLimits(chunk_bytes=4096, io_depth=2, io_workers=2)
BLOCKS_PER_SEGMENT = 16  # 8 KiB: two chunks, so a segment spans two I/O batches


@pytest.fixture
def mover():
    src = MemoryBlockLun("src", num_blocks=2048)
    dst = MemoryBlockLun("dst", num_blocks=2048)
    src.write(0, os.urandom(2048 * 512))
    m = CopyManager({"src": src, "dst": dst}, limits=LIMITS)
    yield m, src, dst
    m.close()


def arm(m: CopyManager, *rules: str) -> tuple[Client, FaultPlan]:
    plan = FaultPlan([parse_fault(r) for r in rules])
    m.faults = plan
    return Client(FaultInjector(plan, m)), plan


def plist(m, list_id: int, segments: int, first_lba: int = 0) -> ParameterList:
    cscds = (cscd_for_lun(m.luns["src"]), cscd_for_lun(m.luns["dst"]))
    segs = tuple(BlockToBlock(src=0, dst=1, block_count=BLOCKS_PER_SEGMENT,
                              src_lba=first_lba + k * BLOCKS_PER_SEGMENT, dst_lba=first_lba + k * BLOCKS_PER_SEGMENT)
                 for k in range(segments))
    return ParameterList(header=Header(list_id=list_id), cscds=cscds, segments=segs)


def copied_segments(src, dst, segments: int, first_lba: int = 0) -> list[bool]:
    n = BLOCKS_PER_SEGMENT
    return [src.read(first_lba + k * n, n) == dst.read(first_lba + k * n, n) for k in range(segments)]


def test_copy_aborted_at_list_and_segment(mover):
    m, src, dst = mover
    client, plan = arm(m, "copy-aborted=0D/02@list=2,segment=3")
    assert client.xcopy(plist(m, 1, 5)).ok  # list 1 untouched
    r = client.xcopy(plist(m, 2, 5, first_lba=512))
    s = sense_of(r)
    assert (s.key, s.asc, s.ascq) == (SenseKey.COPY_ABORTED, 0x0D, 0x02)
    assert s.command_specific & 0xFFFF == 3  # SEGMENT NUMBER: the segment that was not done
    assert copied_segments(src, dst, 5, 512) == [True, True, True, False, False]
    assert client.copy_status(2).segments_processed == 3
    assert client.xcopy(plist(m, 3, 2, first_lba=1024)).ok  # fired once only
    assert [(f.list, f.rule) for f in plan.fired] == [(2, "copy-aborted=0D/02@list=2,segment=3")]


def test_check_condition_instead_of_operating_parameters(mover):
    m, *_ = mover
    client, plan = arm(m, "check=02/04/01@command=rcr-op")
    from scsi.copymgr.cdb import SA_OPERATING_PARAMETERS
    s = sense_of(client.rcr(SA_OPERATING_PARAMETERS))
    assert (s.key, s.asc, s.ascq) == (SenseKey.NOT_READY, 0x04, 0x01)
    assert client.operating_parameters().max_segment_count == LIMITS.max_segments  # the next one is answered
    assert len(plan.fired) == 1


def test_busy_for_a_while_then_the_same_list_goes_through(mover):
    m, src, dst = mover
    client, plan = arm(m, "busy=0.4s@list=1")
    t0 = time.monotonic()
    statuses = []
    while True:
        r = client.xcopy(plist(m, 1, 2))
        statuses.append(r.status)
        if r.ok:
            break
        time.sleep(0.05)
    waited = time.monotonic() - t0
    assert set(statuses[:-1]) == {Status.BUSY} and len(statuses) > 2
    assert 0.4 <= waited < 2.0
    assert copied_segments(src, dst, 2) == [True, True]
    assert plan.lists == 1  # BUSY answers did not count as lists


def test_task_set_full_answers_every_command(mover):
    m, *_ = mover
    client, _ = arm(m, "task-set-full=5s@command=any")
    assert client.xcopy(plist(m, 1, 1)).status == Status.TASK_SET_FULL
    from scsi.copymgr.cdb import SA_OPERATING_PARAMETERS
    assert client.rcr(SA_OPERATING_PARAMETERS).status == Status.TASK_SET_FULL


def test_drop_after_bytes_calls_the_transport_mid_copy(mover):
    m, src, dst = mover
    client, plan = arm(m, "drop@bytes=40k")
    drops = []
    plan.on_drop = lambda: drops.append(time.monotonic()) or 1
    r = client.xcopy(plist(m, 1, 10))  # 80 KiB
    assert drops, "the transport was never asked to drop"
    s = sense_of(r)
    assert s.key == SenseKey.COPY_ABORTED
    done = copied_segments(src, dst, 10)
    assert done[:5] == [True] * 5 and not any(done[6:])  # 40 KiB = 5 segments, then it stopped
    assert plan.fired[0].bytes >= 40 * 1024


def test_bytes_count_across_lists(mover):
    m, src, dst = mover
    client, plan = arm(m, "copy-aborted=0D/01@bytes=24k")
    assert client.xcopy(plist(m, 1, 2)).ok  # 16 KiB
    s = sense_of(client.xcopy(plist(m, 2, 4, first_lba=512)))  # strikes after 8 KiB more
    assert (s.asc, s.ascq, s.command_specific & 0xFFFF) == (0x0D, 0x01, 1)
    assert copied_segments(src, dst, 4, 512) == [True, False, False, False]


def test_stall_holds_the_copy_and_other_commands(mover):
    m, *_ = mover
    client, plan = arm(m, "stall=0.5s@list=1,segment=1")
    t0 = time.monotonic()
    assert client.xcopy(plist(m, 1, 2)).ok
    assert time.monotonic() - t0 >= 0.5
    assert plan.fired and plan.fired[0].what.startswith("stalled")


@pytest.mark.parametrize("rule, message", [
    ("copy-aborted=0D", "is not ASC/ASCQ such as 0D/02"),
    ("explode", "unknown action 'explode'"),
    ("busy", "busy needs a duration"),
    ("busy=1s@bytes=1M", "trigger it with list= or command="),
    ("drop@bytes=lots", "bytes 'lots' is not a number"),
    ("stall=5s@when=now", "unknown condition 'when'"),
    ("check=02/04/01@segment=2", "use copy-aborted=ASC/ASCQ"),
    ("check=02/04/01@command=rcr-op,list=0", "list"),
])
def test_bad_rules_are_one_line_errors_naming_the_rule(rule, message):
    with pytest.raises(FaultError) as info:
        parse_fault(rule)
    text = str(info.value)
    assert "\n" not in text and rule in text and message in text, text
