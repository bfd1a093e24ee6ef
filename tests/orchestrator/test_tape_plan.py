"""Tape pools: 00h/10h backup lists and 01h restore lists run through the real copy manager engine
on a memory disk and an emulated tape; resume after a failure from COPY STATUS; byte-identical restores."""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import replace

import pytest

from orchestrator.ops import CopyResult, Failure, ListAccount, MoverLimits, pieces_from_extents, slice_pieces
from orchestrator.plan.disk import CscdRef, PlanError
from orchestrator.plan.tape import TapeFormat, TapeRef, is_filemark, max_stream_transfer, plan_tape_batches
from orchestrator.plan.tape_position import TapeLocation, known_on_tape, object_records, record_of, resume_decision
from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.client import Client
from scsi.luns import MemoryBlockLun, TapeLun
from scsi.luns.base import medium_error, not_ready
from scsi.sense import Sense

KIB = 1024
BS = 512
LIMITS = MoverLimits(max_target_count=2, max_segment_count=4, max_descriptor_list_length=1024,
                     max_segment_length=192 * KIB, data_segment_granularity=9,
                     implemented_codes=(0x00, 0x01, 0x02, 0x10, 0xE4))
ENGINE = CopyLimits(chunk_bytes=16 * KIB, io_depth=2, io_workers=2)
EXTENTS = [(0, 100 * KIB), (300 * KIB, 33 * KIB), (512 * KIB, 260 * KIB), (1024 * KIB, 7 * KIB)]


def volume(seed: int = 5, size: int = 2048 * KIB) -> MemoryBlockLun:
    rng = random.Random(seed)
    disk = MemoryBlockLun("DISK", num_blocks=size // BS, naa=bytes.fromhex("6001405" + "d" * 25))
    disk.write(0, rng.randbytes(size))
    return disk


def blank(name: str = "DEST", size: int = 2048 * KIB) -> MemoryBlockLun:
    return MemoryBlockLun(name, num_blocks=size // BS, naa=bytes.fromhex("6001405" + "e" * 25))


def tape(tmp_path, name: str = "TAPE", cls=TapeLun, **kw) -> TapeLun:
    return cls(name, tmp_path / f"{name}.tape", create=True, naa=bytes.fromhex("6001405" + "f" * 25), **kw)


def refs(disk, drive, fmt):
    return CscdRef(disk.name, disk.naa.hex(), BS), TapeRef(drive.name, drive.naa.hex(), fmt)


@contextmanager
def mover(luns):
    m = CopyManager(luns, limits=ENGINE)
    try:
        yield m
    finally:
        m.close()


def send(manager, batches, *, start_batch=0):
    """Send lists in order like a driver; returns (CopyResult, COPY STATUS bytes of the failed list)."""
    client = Client(manager)
    acct = []
    for bi, batch in enumerate(batches[start_batch:]):
        for li, pl in enumerate(batch.lists):
            r = client.xcopy(pl.data)
            st = client.copy_status(pl.list_id)
            if not r.ok:
                seg = Sense.decode(r.sense).segment
                return CopyResult(bi, Failure("sense", "EXTENDED COPY failed", "DM", r.sense, int(r.status)),
                                  li, seg, accounting=tuple(acct)), st.bytes_transferred
            acct.append(ListAccount(pl.list_id, True, st.segments_processed, st.bytes_transferred))
    return CopyResult(len(batches) - start_batch, accounting=tuple(acct)), None


def restore(drive, drive_ref, pieces, loc: TapeLocation, dest, limits=LIMITS):
    drive.locate(loc.first_object)
    dest_ref = CscdRef(dest.name, dest.naa.hex(), BS)
    batches = plan_tape_batches(pieces, direction="restore", disk=dest_ref, tape=drive_ref, disk_base=0,
                                limits=limits, batch_bytes=10 << 20)
    with mover({"DEST": dest, drive.name: drive}) as m:
        cr, _ = send(m, batches)
    assert cr.ok, cr.failure and cr.failure.describe()
    return batches


def same_extents(a, b, extents):
    return all(a.read(o // BS, n // BS) == b.read(o // BS, n // BS) for o, n in extents)


@pytest.mark.parametrize("fmt", [TapeFormat(64 * KIB), TapeFormat(24 * KIB),
                                 TapeFormat(16 * KIB, fixed=True, block_length=BS)],
                         ids=["variable-64k", "variable-24k", "fixed-512"])
def test_backup_to_tape_and_server_free_restore_are_byte_identical(tmp_path, fmt):
    disk, drive, dest = volume(), tape(tmp_path), blank()
    disk_ref, drive_ref = refs(disk, drive, fmt)
    pieces = pieces_from_extents(EXTENTS)
    batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0,
                                limits=LIMITS, batch_bytes=10 << 20)
    lists = [pl for b in batches for pl in b.lists]
    assert len(lists) > 1 and all(len(pl.segments) <= LIMITS.max_segment_count for pl in lists)
    assert is_filemark(lists[-1].segments[-1]) and not any(is_filemark(s) for pl in lists[:-1] for s in pl.segments)
    with mover({"DISK": disk, "TAPE": drive}) as m:
        cr, _ = send(m, batches)
    assert cr.ok
    for pl, acct in zip(lists, cr.accounting):  # COPY STATUS vouches for each list as planned
        assert acct.mismatch(pl) == ""
    objs = drive.objects()
    n = object_records(pieces, fmt)
    assert len(objs) == n + 1 and objs[-1] is None and None not in objs[:-1]
    assert all(len(r) == fmt.unit for r in objs[:-1]) if fmt.fixed else max(map(len, objs[:-1])) == fmt.unit
    loc = TapeLocation(volume="VOL001", file_number=0, first_object=0, records=n, record_bytes=fmt.record_bytes,
                       fixed=fmt.fixed, block_length=fmt.block_length)
    restore(drive, drive_ref, pieces, loc, dest)
    assert same_extents(disk, dest, EXTENTS)
    assert dest.read(100 * KIB // BS, 1) == bytes(BS)  # gaps stay untouched


def test_layout_does_not_depend_on_how_the_work_is_cut(tmp_path):
    fmt = TapeFormat(32 * KIB)
    disk = volume()
    pieces = pieces_from_extents(EXTENTS)
    images = []
    for seg_len, batch in ((32 * KIB, 10 << 20), (256 * KIB, 64 * KIB), (96 * KIB, 10 << 20)):
        drive = tape(tmp_path, f"T{seg_len}")
        disk_ref, drive_ref = refs(disk, drive, fmt)
        lim = replace(LIMITS, max_segment_count=3, max_segment_length=seg_len)
        batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0,
                                    limits=lim, batch_bytes=batch)
        with mover({"DISK": disk, drive.name: drive}) as m:
            assert send(m, batches)[0].ok
        images.append(drive.objects())
    assert images[0] == images[1] == images[2]


def test_planning_respects_the_movers_stream_limits():
    disk_ref = CscdRef("DISK", "6001405" + "d" * 25, BS)
    drive_ref = TapeRef("TAPE", "6001405" + "f" * 25, TapeFormat(256 * KIB))
    pieces = pieces_from_extents([(0, 1 << 20)])
    with pytest.raises(PlanError, match="MAXIMUM STREAM DEVICE TRANSFER SIZE of 65536"):
        plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0, limits=LIMITS,
                          max_transfer=max_stream_transfer({"max_stream_device_transfer_size": 64 * KIB}))
    disk_only = MoverLimits(implemented_codes=(0x02, 0xE4))
    with pytest.raises(PlanError, match="does not implement 00h, 10h"):
        plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0, limits=disk_only)
    fixed = TapeRef("TAPE", "6001405" + "f" * 25, TapeFormat(8 * KIB, fixed=True, block_length=4 * KIB))
    with pytest.raises(PlanError, match="not a whole number of 4096-byte fixed tape blocks"):
        plan_tape_batches(pieces_from_extents([(0, 6 * KIB)]), direction="backup", disk=disk_ref, tape=fixed,
                          disk_base=0, limits=LIMITS)
    with pytest.raises(PlanError, match="not a multiple of the fixed block length"):
        TapeFormat(6 * KIB, fixed=True, block_length=4 * KIB)
    with pytest.raises(PlanError, match="leave no room"):
        plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0,
                          limits=MoverLimits(max_segment_count=1, implemented_codes=()))


def test_segment_counts_and_record_numbers_follow_the_format():
    fmt = TapeFormat(64 * KIB)
    drive_ref = TapeRef("TAPE", "6001405" + "f" * 25, fmt)
    disk_ref = CscdRef("DISK", "6001405" + "d" * 25, BS)
    pieces = pieces_from_extents(EXTENTS)
    batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=4096,
                                limits=LIMITS)
    segs = [s for b in batches for pl in b.lists for s in pl.segments if not is_filemark(s)]
    assert segs[0].src_lba == 4096 // BS and segs[0].dst_lba == 0
    for s in segs:  # every segment starts on a record boundary of its piece
        assert record_of(pieces, fmt, s.image_offset) == s.dst_lba
        assert s.length <= LIMITS.max_segment_length and s.length == s.blocks * BS
    assert object_records(pieces, fmt) == 2 + 1 + 5 + 1
    with pytest.raises(ValueError, match="falls inside a 65536-byte tape record"):
        record_of(pieces, fmt, 1000)


class FailingReads(MemoryBlockLun):
    """A disk that goes NOT READY once ``budget`` blocks have been read (a path/LUN failure, not the tape)."""

    budget = 0

    def read(self, lba, count):
        if self.budget < count:
            raise not_ready(self.name, "simulated loss of the source LUN")
        self.budget -= count
        return super().read(lba, count)


class FailingTape(TapeLun):
    """A drive that reports MEDIUM ERROR once ``budget`` records were written."""

    budget = 0

    def write(self, data, *, fixed=False, block_size=0):
        if self.budget <= 0:
            raise medium_error(self.name, "write error (simulated)")
        self.budget -= 1
        super().write(data, fixed=fixed, block_size=block_size)


def test_source_failure_continues_after_the_last_record_copy_status_vouches_for(tmp_path):
    fmt = TapeFormat(16 * KIB)
    data = volume()
    disk = FailingReads("DISK", num_blocks=data.num_blocks, naa=data.naa)
    disk.write(0, data.read(0, data.num_blocks))
    disk.budget = (180 * KIB) // BS  # stops inside the third piece, mid-list
    drive = tape(tmp_path)
    drive.write(b"an older object", fixed=False)  # the object starts after what is already on the tape
    drive.write_filemarks(1)
    first_object = drive.position()
    disk_ref, drive_ref = refs(disk, drive, fmt)
    pieces = pieces_from_extents(EXTENTS)
    batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0,
                                limits=LIMITS)
    with mover({"DISK": disk, "TAPE": drive}) as m:
        cr, moved = send(m, batches)
    assert not cr.ok and moved is not None
    on = known_on_tape(batches, fmt, cr, moved)
    assert 0 < on.image_offset < pieces[-1].image_end and not on.closed
    assert on.next_record == record_of(pieces, fmt, on.image_offset)
    decision = resume_decision(first_object, on, cr.failure)
    assert decision.action == "continue" and decision.locate_to == first_object + on.next_record
    # the mover may have written records COPY STATUS did not count: LOCATE + write erases them
    drive.locate(decision.locate_to)
    disk.budget = 1 << 30
    rest = slice_pieces(pieces, decision.image_offset)
    batches2 = plan_tape_batches(rest, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0,
                                 limits=LIMITS, first_record=decision.next_record)
    with mover({"DISK": disk, "TAPE": drive}) as m:
        assert send(m, batches2)[0].ok
    n = object_records(pieces, fmt)
    objs = drive.objects()
    assert objs[:2] == [b"an older object", None] and len(objs) == first_object + n + 1 and objs[-1] is None
    dest = blank()
    loc = TapeLocation(volume="VOL001", file_number=1, first_object=first_object, records=n,
                       record_bytes=fmt.record_bytes)
    restore(drive, drive_ref, pieces, loc, dest)
    assert same_extents(data, dest, EXTENTS)


def test_drive_failure_restarts_the_object_on_a_new_position(tmp_path):
    fmt = TapeFormat(32 * KIB)
    disk = volume()
    bad = tape(tmp_path, "DRV1", cls=FailingTape)
    bad.budget = 5
    disk_ref, bad_ref = refs(disk, bad, fmt)
    pieces = pieces_from_extents(EXTENTS)
    batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=bad_ref, disk_base=0,
                                limits=LIMITS)
    with mover({"DISK": disk, "DRV1": bad}) as m:
        cr, moved = send(m, batches)
    assert not cr.ok
    on = known_on_tape(batches, fmt, cr, moved)
    assert on.next_record <= 5
    decision = resume_decision(0, on, cr.failure)
    assert decision.action == "restart" and decision.locate_to is None and "MEDIUM ERROR" in decision.reason
    good = tape(tmp_path, "DRV2")
    good_ref = TapeRef("DRV2", good.naa.hex(), fmt)
    batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=good_ref, disk_base=0,
                                limits=LIMITS)
    with mover({"DISK": disk, "DRV2": good}) as m:
        assert send(m, batches)[0].ok
    dest = blank()
    loc = TapeLocation(volume="VOL002", file_number=0, first_object=0, records=object_records(pieces, fmt),
                       record_bytes=fmt.record_bytes)
    restore(good, good_ref, pieces, loc, dest)
    assert same_extents(disk, dest, EXTENTS)


def test_timeout_trusts_only_list_boundaries():
    fmt = TapeFormat(16 * KIB)
    disk_ref = CscdRef("DISK", "6001405" + "d" * 25, BS)
    drive_ref = TapeRef("TAPE", "6001405" + "f" * 25, fmt)
    pieces = pieces_from_extents(EXTENTS)
    batches = plan_tape_batches(pieces, direction="backup", disk=disk_ref, tape=drive_ref, disk_base=0,
                                limits=LIMITS, batch_bytes=10 << 20)
    cr = CopyResult(0, Failure("timeout", "EXTENDED COPY timed out", "DM"), 2, None)
    on = known_on_tape(batches, fmt, cr)
    assert on.image_offset == batches[0].lists[1].image_end
    d = resume_decision(10, on, cr.failure)
    assert d.action == "continue" and d.locate_to == 10 + on.next_record
    assert known_on_tape(batches, fmt, CopyResult(len(batches))).closed


def test_tape_location_round_trips_and_names_bad_fields():
    loc = TapeLocation(volume="VOL001", file_number=3, first_object=41, records=9, record_bytes=262144)
    assert TapeLocation.decode(loc.encode()) == loc
    assert loc.filemark_object == 50 and loc.end_object == 51
    with pytest.raises(ValueError, match="bad tape location field records"):
        TapeLocation.decode(loc.encode().replace('"records":9', '"records":-1'))
    with pytest.raises(ValueError, match="is not a tape location"):
        TapeLocation.decode("POOLVOL:123")
