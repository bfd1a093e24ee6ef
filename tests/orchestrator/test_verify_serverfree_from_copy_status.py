"""Server-free objects are verified from the data mover's COPY STATUS, never by reading the client's volume.

Also: verification goes through the backup server once the LAN-free path died
during the job (not only when the plan had none).
"""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.memory import Fault, MemoryDriver
from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, backup_job, run_job
from orchestrator.job.backup import UNREAD, split_accounted, unread_chunks
from orchestrator.ops import (DigestVolume, LanFreeWrite, LanSend, ListAccount, MoverLimits, ParameterListPlan,
                              PathKind, StoredPiece, VerifyPool)
from orchestrator.ops.types import CopySegment

KIB, MIB = 1024, 1 << 20
VOL_OFF, VOL_SIZE = MIB, 8 * MIB
EXTENTS = [(0, 64 * KIB), (256 * KIB, 1536 * KIB), (3 * MIB, 4 * KIB), (4 * MIB, 3 * MIB)]
IMAGE = sum(n for _, n in EXTENTS)
DISK = DeviceSpec(name="disk0", designator="60014051111111111111111111111111")
POOL_DESIG = {"pool0": "60014052222222222222222222222222"}
LIMITS = MoverLimits(max_target_count=2, max_segment_count=4, max_descriptor_list_length=1024,
                     max_segment_length=MIB, data_segment_granularity=9)


class Recorder:
    """Runs a job on the memory driver, keeping every operation and counting reads of the client's volume."""

    def __init__(self, drv: MemoryDriver):
        self.drv, self.ops = drv, []

    def __call__(self, op):
        self.ops.append(op)
        return self.drv.execute(op)

    def verify(self) -> VerifyPool:
        (v,) = [op for op in self.ops if isinstance(op, VerifyPool)]
        return v


@pytest.fixture
def world(tmp_path):
    disk = bytearray(random.Random(11).randbytes(VOL_OFF + VOL_SIZE))
    cat = Catalogue(tmp_path / "cat.db")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 64 * MIB)
    drv = MemoryDriver({"disk0": disk, "pool0": bytearray(64 * MIB)}, cat, {"DM1": LIMITS})
    yield drv
    cat.close()


def spec(start=PathKind.SERVER_FREE, lan_free=True, server="server:1500", **kw) -> BackupSpec:
    plan = PathPlan(start=start, movers=["DM1"] if start == PathKind.SERVER_FREE else [], lan_free=lan_free,
                    lan=bool(server), server=server, pool_designators=POOL_DESIG, batch_mb=10)
    return BackupSpec(node="N1", filespace="F:", source=DISK, volume_offset=VOL_OFF, volume_size=VOL_SIZE,
                      file_system="ntfs", extents=EXTENTS, paths=plan, **kw)


def covered(pieces) -> int:
    return sum(p.length for p in pieces)


def test_server_free_verification_reads_nothing_on_the_client(world):
    rec = Recorder(world)
    report = run_job(backup_job(spec()), rec)
    assert report.ok and report.path_used == "server-free", report.summary()
    v = rec.verify()
    assert v.pieces == () and covered(v.accounted) == IMAGE  # all proven by the mover, none read back
    assert v.pool_server == "server:1500"  # the server digests the object on the pool side
    (obj,) = world.catalogue.query(with_pieces=True)
    assert obj.path_used == "server-free"
    view = world.catalogue.digests([obj])
    assert view and UNREAD not in view.values()


def test_without_a_backup_server_the_chunks_are_marked_unread(world):
    rec = Recorder(world)
    report = run_job(backup_job(spec(server="")), rec)
    assert report.ok and report.path_used == "server-free", report.summary()
    assert rec.verify().pool_server == ""
    (obj,) = world.catalogue.query()
    view = world.catalogue.digests([obj])
    # every used chunk is unknown, so an image incremental can never skip one on a stale digest
    assert set(view) == {c for o, n in EXTENTS for c in range(o // MIB, (o + n - 1) // MIB + 1)}
    assert set(view.values()) == {UNREAD}


def test_a_mover_that_under_reports_its_transfer_count_abandons_the_object(world):
    world.miscount["DM1"] = 512
    report = run_job(backup_job(spec()), Recorder(world))
    assert not report.ok
    assert "COPY STATUS" in report.message and "bytes transferred" in report.message, report.message
    assert world.catalogue.query() == []  # never restorable


def test_full_data_verification_is_an_option(world):
    rec = Recorder(world)
    report = run_job(backup_job(spec(verify_server_free_data=True)), rec)
    assert report.ok, report.summary()
    v = rec.verify()
    assert v.accounted == () and covered(v.pieces) == IMAGE


def test_after_a_server_free_failover_only_client_moved_bytes_are_read_back(world):
    world.faults.append(Fault("copy", after_bytes=2 * MIB + 100 * KIB, kind="sense"))
    rec = Recorder(world)
    report = run_job(backup_job(spec()), rec)
    assert report.ok and [f.to_path for f in report.failovers] == ["lan-free"], report.summary()
    v = rec.verify()
    assert covered(v.pieces) + covered(v.accounted) == IMAGE
    lan_free = [op for op in rec.ops if isinstance(op, LanFreeWrite)]
    sent = sum(p.length for op in lan_free for p in op.pieces)
    # everything the client read itself is compared; at most one interrupted list more is
    assert sent <= covered(v.pieces) and covered(v.accounted) > 0
    assert all(a.image_offset + a.length <= 2 * MIB + 100 * KIB for a in v.accounted)


def test_verification_goes_through_the_server_after_the_lan_free_path_died(world):
    world.faults.append(Fault("lan-free", after_bytes=MIB, kind="lost-connection"))
    rec = Recorder(world)
    report = run_job(backup_job(spec(PathKind.LAN_FREE)), rec)
    assert report.ok and [f.to_path for f in report.failovers] == ["lan"], report.summary()
    assert any(isinstance(op, LanSend) for op in rec.ops)
    assert rec.verify().server == "server:1500"


def test_verification_uses_the_san_while_the_lan_free_path_lives(world):
    rec = Recorder(world)
    assert run_job(backup_job(spec(PathKind.LAN_FREE)), rec).ok
    assert rec.verify().server == ""


def test_incremental_after_a_server_free_full_still_sends_only_changes(world):
    assert run_job(backup_job(spec()), Recorder(world)).ok
    (base,) = world.catalogue.query()
    disk = world.devices["disk0"]
    disk[VOL_OFF + 4 * MIB + 10:VOL_OFF + 4 * MIB + 20] = b"x" * 10  # one chunk changes
    rec = Recorder(world)
    report = run_job(backup_job(spec(mode="incremental", base_object_id=base.id,
                                     base_digests=world.catalogue.digests([base]))), rec)
    assert report.ok and report.image_size == MIB, report.summary()
    assert any(isinstance(op, DigestVolume) for op in rec.ops)


# -- the pieces of the rule ---------------------------------------------------------------------------------
def _list(list_id: int, *lengths: int) -> ParameterListPlan:
    segs, at = [], 0
    for n in lengths:
        segs.append(CopySegment(at // 512, at // 512, n // 512, at, n))
        at += n
    return ParameterListPlan(tuple(segs), b"", list_id)


@pytest.mark.parametrize("acct, why", [
    (ListAccount(3, True, 2, 3 * KIB), ""),
    (ListAccount(3, True, 2, 2 * KIB, unit_bytes=KIB), "bytes transferred"),
    (ListAccount(3, True, 1, 3 * KIB), "segments processed"),
    (ListAccount(3, False, 2, 3 * KIB), "not reported COMPLETED"),
    (ListAccount(4, True, 2, 3 * KIB), "status of list 4"),
    (ListAccount(3, False, 0, 0, problem="timeout"), "no COPY STATUS"),
])
def test_list_account_mismatch(acct, why):
    got = acct.mismatch(_list(3, KIB, 2 * KIB))
    assert (why in got and got) if why else got == ""


def test_transfer_count_in_coarse_units_is_rounded_down():
    plan = _list(1, MIB, 512)
    assert ListAccount(1, True, 2, MIB, unit_bytes=KIB).mismatch(plan) == ""
    assert ListAccount(1, True, 2, MIB - KIB, unit_bytes=KIB).mismatch(plan) != ""


def test_split_accounted_cuts_pieces_at_range_edges():
    pieces = [StoredPiece(0, 100, 1000), StoredPiece(1000, 5000, 500),
              StoredPiece(1500, 9000, 100, True, 40)]
    by_bytes, by_mover = split_accounted(pieces, [(200, 1200)])
    assert [(p.image_offset, p.volume_offset, p.length) for p in by_mover] == [(200, 300, 800), (1000, 5000, 200)]
    assert [(p.image_offset, p.volume_offset, p.length) for p in by_bytes] == [(0, 100, 200), (1200, 5200, 300),
                                                                            (1500, 9000, 100)]
    assert by_bytes[-1].compressed  # compressed pieces stay whole and are always read back


def test_chunks_nobody_read_back_never_keep_a_stale_digest():
    unread = [StoredPiece(0, 3 * MIB + 5, 10)]
    assert unread_chunks(((0, "a"), (3, "b")), unread, MIB) == ((0, "a"), (3, "b"))  # driver digested it
    assert unread_chunks(((0, "a"),), unread, MIB) == ((0, "a"), (3, UNREAD))
