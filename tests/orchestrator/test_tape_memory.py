"""Tape pools on the in-memory driver's side: backup_to_tape / restore_from_tape run as sans-I/O jobs
against MemoryTapes (the copy manager engine over byte arrays and record-list tapes)."""
from __future__ import annotations

import random

import pytest

from orchestrator.drivers.memory_tape import MemoryTapeLun, MemoryTapes
from orchestrator.ops import OperatingParametersResult, ReadOperatingParameters, pieces_from_extents, run_job
from orchestrator.plan.disk import CscdRef
from orchestrator.plan.tape import TapeFormat
from orchestrator.job.tape_move import (
    DriveRef,
    backup_to_tape,
    backup_to_tape_with_failover,
    lan_free_from_tape,
    lan_free_to_tape,
    restore_from_tape,
)
from orchestrator.plan.tape_position import object_records
from scsi.copymgr import CopyLimits
from scsi.luns.base import LunError

KIB, MIB, BS = 1024, 1 << 20, 512
VOL = 2 * MIB
EXTENTS = [(4 * KIB, 300 * KIB), (512 * KIB, 96 * KIB), (1 * MIB, 640 * KIB + 512)]
DESIG = {"DISK": "6001405" + "d" * 25, "DEST": "6001405" + "e" * 25, "DRV1": "6001405" + "1" * 25,
         "DRV2": "6001405" + "2" * 25}
ENGINE = CopyLimits(max_segment_length=128 * KIB, max_segments=8, chunk_bytes=32 * KIB)


@pytest.fixture
def site():
    rng = random.Random(3)
    disk = bytearray(rng.randbytes(VOL))
    dest = bytearray(VOL)
    tapes = {d: MemoryTapeLun(d, naa=bytes.fromhex(DESIG[d])) for d in ("DRV1", "DRV2")}
    mt = MemoryTapes({"DISK": (disk, DESIG["DISK"]), "DEST": (dest, DESIG["DEST"])}, tapes,
                     {"DM1": ENGINE, "DM2": ENGINE})
    yield mt, disk, dest
    mt.close()


def execute(mt):
    def run(op):
        if mt.handles(op):
            return mt.execute(op)
        if isinstance(op, ReadOperatingParameters):
            return OperatingParametersResult(mt.limits(op.mover))
        raise AssertionError(f"unexpected operation {op}")
    return run


def backup(mt, fmt, movers=("DM1", "DM2"), drives=("DRV1", "DRV2")):
    pieces = pieces_from_extents(EXTENTS)
    move = run_job(backup_to_tape(pieces, disk=CscdRef("DISK", DESIG["DISK"], BS), disk_base=0,
                                  drives=[DriveRef(d, DESIG[d]) for d in drives], fmt=fmt, volume="VOL1",
                                  movers=list(movers), batch_bytes=10 * MIB), execute(mt))
    return pieces, move


def restore(mt, pieces, move, movers=("DM1",)):
    return run_job(restore_from_tape(pieces, location=move.location, drive=DriveRef(move.drive, DESIG[move.drive]),
                                     disk=CscdRef("DEST", DESIG["DEST"], BS), disk_base=0, movers=list(movers)),
                   execute(mt))


def identical(disk, dest):
    return all(disk[o:o + n] == dest[o:o + n] for o, n in EXTENTS)


@pytest.mark.parametrize("fmt", [TapeFormat(32 * KIB), TapeFormat(8 * KIB, fixed=True, block_length=BS)],
                         ids=["variable", "fixed"])
def test_backup_and_restore_through_memory_tapes(site, fmt):
    mt, disk, dest = site
    mt.tapes["DRV1"].write(b"older")
    mt.tapes["DRV1"].write_filemarks(1)
    pieces, move = backup(mt, fmt)
    assert move.ok and move.location.first_object == 2 and move.location.file_number == 1
    recs = mt.tapes["DRV1"].records
    assert len(recs) == 2 + object_records(pieces, fmt) + 1 and recs[-1] is None
    done = restore(mt, pieces, move)
    assert done.ok and identical(disk, dest)
    assert dest[:4 * KIB] == bytes(4 * KIB)


def test_drive_medium_error_restarts_on_the_spare_drive(site):
    mt, disk, dest = site
    mt.tapes["DRV1"].fail_after_records = 7
    pieces, move = backup(mt, TapeFormat(32 * KIB))
    assert move.ok and move.drive == "DRV2" and move.movers_used == ["DM1"]
    assert len(mt.tapes["DRV1"].records) == 7 and None not in mt.tapes["DRV1"].records
    assert restore(mt, pieces, move).ok and identical(disk, dest)


def test_no_spare_drive_fails_without_a_location(site):
    mt, _, _ = site
    mt.tapes["DRV1"].fail_after_records = 3
    _, move = backup(mt, TapeFormat(32 * KIB), drives=("DRV1",))
    assert not move.ok and move.location is None and "no other drive is left" in move.failure


def test_source_loss_continues_on_the_next_mover_without_writing_twice(site):
    mt, disk, dest = site
    mt.disk_faults["DISK"] = 400 * KIB
    fmt = TapeFormat(32 * KIB)
    pieces, move = backup(mt, fmt)
    assert move.ok and move.movers_used == ["DM1", "DM2"] and move.drive == "DRV1"
    assert "COPY TARGET DEVICE NOT REACHABLE" in move.events[0] and "continue after record" in move.events[0]
    assert len(mt.tapes["DRV1"].records) == object_records(pieces, fmt) + 1
    assert restore(mt, pieces, move, movers=("DM2",)).ok and identical(disk, dest)


def test_memory_tape_semantics():
    t = MemoryTapeLun("T")
    t.write(b"a" * 10)
    t.write(b"b" * 4)
    t.write_filemarks(1)
    t.locate(0)
    with pytest.raises(LunError) as e:
        t.read(5)
    assert e.value.ili and e.value.partial == b"aaaaa"
    assert t.read(100) == b"bbbb"
    with pytest.raises(LunError) as e:
        t.read(100)
    assert e.value.filemark and t.file_number() == 1
    t.locate(1)
    t.write(b"c" * 4)  # writing mid-tape erases what followed
    assert t.records == [b"a" * 10, b"c" * 4]
    with pytest.raises(LunError, match="past end of data"):
        t.locate(5)
    t.write(bytes(1024), fixed=True, block_size=512)
    t.locate(2)
    assert t.read(2, fixed=True, block_size=512) == bytes(1024)


def test_lan_free_failover_keeps_the_layout_so_the_restore_can_still_be_server_free(site):
    mt, disk, dest = site
    mt.disk_faults["DISK"] = 500 * KIB  # the only mover loses the volume mid-copy; the client still sees it
    fmt = TapeFormat(32 * KIB)
    pieces = pieces_from_extents(EXTENTS)
    move = run_job(backup_to_tape_with_failover(pieces, disk=CscdRef("DISK", DESIG["DISK"], BS), disk_base=0,
                                                drives=[DriveRef("DRV1", DESIG["DRV1"])], fmt=fmt, volume="VOL1",
                                                movers=["DM1"]), execute(mt))
    assert move.ok and move.paths == ["server-free", "lan-free"], move.events
    assert any("server-free -> lan-free" in e for e in move.events)
    recs = mt.tapes["DRV1"].records
    assert len(recs) == object_records(pieces, fmt) + 1 and recs.count(None) == 1
    assert restore(mt, pieces, move).ok and identical(disk, dest)  # server-free restore of a mixed-path object


def test_lan_free_restore_reads_the_tape(site):
    mt, disk, dest = site
    fmt = TapeFormat(16 * KIB, fixed=True, block_length=BS)
    pieces, move = backup(mt, fmt)
    assert move.ok
    done = run_job(lan_free_from_tape(pieces, location=move.location, drive=DriveRef("DRV1", DESIG["DRV1"]),
                                      destination="DEST", destination_offset=0), execute(mt))
    assert done.ok and done.paths == ["lan-free"] and identical(disk, dest)


def test_lan_free_write_error_leaves_no_location(site):
    mt, _, _ = site
    mt.tapes["DRV1"].fail_after_records = 4
    move = run_job(lan_free_to_tape(pieces_from_extents(EXTENTS), source="DISK", source_offset=0,
                                    drive=DriveRef("DRV1", DESIG["DRV1"]), fmt=TapeFormat(32 * KIB), volume="VOL1"),
                   execute(mt))
    assert not move.ok and move.location is None and "MEDIUM ERROR" in move.failure
    assert move.next_record == 0  # the first piece (10 records) never completed


def test_a_list_replayed_in_part_writes_only_its_first_segments(site):
    from dataclasses import replace as dc_replace

    from orchestrator.ops import Batch, CopyBatches
    from orchestrator.plan.tape import TapeRef, plan_tape_batches

    mt, _, _ = site
    fmt = TapeFormat(32 * KIB)
    pieces = pieces_from_extents(EXTENTS)
    (batch,) = plan_tape_batches(pieces, direction="backup", disk=CscdRef("DISK", DESIG["DISK"], BS),
                                 tape=TapeRef("DRV1", DESIG["DRV1"], fmt), disk_base=0, limits=mt.limits("DM1"),
                                 batch_bytes=10 * MIB)
    first = batch.lists[0]
    part = dc_replace(first, segments=first.segments[:1])  # the simulator's fluid mover finished one segment
    r = mt.execute(CopyBatches("DM1", "DISK", "DRV1", (Batch(0, (part,)),)))
    assert r.ok and len(mt.tapes["DRV1"].records) == fmt.records(first.segments[0].length)


def test_a_mover_whose_stream_transfers_are_too_small_is_passed_over(site):
    mt, disk, dest = site
    mt.movers = {"DM1": CopyLimits(max_segment_length=128 * KIB, max_segments=8, max_stream_transfer=16 * KIB),
                 "DM2": ENGINE}
    pieces, move = backup(mt, TapeFormat(32 * KIB))
    assert move.ok and move.movers_used == ["DM2"]
    assert "MAXIMUM STREAM DEVICE TRANSFER SIZE of 16384" in move.events[0]
    assert restore(mt, pieces, move, movers=("DM2",)).ok and identical(disk, dest)


@pytest.mark.parametrize("window", [1, 2, 1 << 16])
def test_lan_free_tape_writes_and_reads_go_in_windows_with_the_same_records(site, monkeypatch, window):
    """LAN-free writes of at most ``window`` pieces (the last closing the object), after a server-free
    failover, and reads back in windows: the tape holds the records of one write, the restore is identical."""
    import orchestrator.job.tape_move as tape_move
    from orchestrator.ops.tape import TapeClientRead, TapeClientWrite

    monkeypatch.setattr(tape_move, "LAN_WINDOW_PIECES", window)
    mt, disk, dest = site
    mt.disk_faults["DISK"] = 100 * KIB  # the mover loses the volume in the first piece
    fmt = TapeFormat(32 * KIB)
    pieces = pieces_from_extents(EXTENTS)
    sent = []

    def counting(op):
        if isinstance(op, (TapeClientWrite, TapeClientRead)):
            sent.append((type(op).__name__, len(op.pieces), getattr(op, "close", None)))
        return execute(mt)(op)

    move = run_job(backup_to_tape_with_failover(pieces, disk=CscdRef("DISK", DESIG["DISK"], BS), disk_base=0,
                                                drives=[DriveRef("DRV1", DESIG["DRV1"])], fmt=fmt, volume="VOL1",
                                                movers=["DM1"]), counting)
    assert move.ok and move.paths == ["server-free", "lan-free"], move.events
    recs = mt.tapes["DRV1"].records
    assert len(recs) == object_records(pieces, fmt) + 1 and recs.count(None) == 1 and recs[-1] is None
    writes = [s for s in sent if s[0] == "TapeClientWrite"]
    assert [c for *_, c in writes] == [False] * (len(writes) - 1) + [True]
    assert max(n for _, n, _ in writes) <= window and len(writes) == -(-3 // window)
    done = run_job(lan_free_from_tape(pieces, location=move.location, drive=DriveRef("DRV1", DESIG["DRV1"]),
                                      destination="DEST", destination_offset=0), counting)
    assert done.ok and done.paths == ["lan-free"] and identical(disk, dest)
    assert len([s for s in sent if s[0] == "TapeClientRead"]) == -(-3 // window)
