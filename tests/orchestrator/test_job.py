"""Backup and restore jobs end to end on the in-memory driver: paths, snapshots, incrementals."""
from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.memory import MemoryDriver
from orchestrator.job import (BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec,
                              restore_job, run_job)
from orchestrator.ops import BeginObject, CopyBatches, LanFreeWrite, LanSend, MoverLimits, PathKind

KIB, MIB = 1024, 1 << 20
VOL_OFF = MIB  # the volume starts 1 MiB into its LUN
VOL_SIZE = 8 * MIB
EXTENTS = [(0, 64 * KIB), (256 * KIB, 1536 * KIB), (3 * MIB, 4 * KIB), (4 * MIB, 3 * MIB)]
DISK = DeviceSpec(name="disk0", designator="60014051111111111111111111111111")
DEST = DeviceSpec(name="disk1", designator="60014053333333333333333333333333")
POOL_DESIG = {"pool0": "60014052222222222222222222222222"}
LIMITS = MoverLimits(max_target_count=2, max_segment_count=4, max_descriptor_list_length=1024,
                     max_segment_length=MIB, data_segment_granularity=9)


@pytest.fixture
def world(tmp_path):
    rnd = random.Random(6)
    disk = bytearray(rnd.randbytes(VOL_OFF + VOL_SIZE))
    cat = Catalogue(tmp_path / "cat.db")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 64 * MIB)
    drv = MemoryDriver({"disk0": disk, "disk1": bytearray(VOL_OFF + VOL_SIZE),
                        "pool0": bytearray(64 * MIB)}, cat, {"DM1": LIMITS, "DM2": LIMITS})
    yield drv
    cat.close()


def paths(start=PathKind.SERVER_FREE, **kw):
    base = dict(start=start, movers=["DM1", "DM2"] if start == PathKind.SERVER_FREE else [],
                lan_free=True, lan=True, server="server:1500", pool_designators=POOL_DESIG, batch_mb=10)
    base.update(kw)
    return PathPlan(**base)


def backup_spec(**kw):
    base = dict(node="NODE1", filespace="\\\\node1\\c$", source=DISK, volume_offset=VOL_OFF,
                volume_size=VOL_SIZE, file_system="ntfs", extents=EXTENTS, paths=paths())
    base.update(kw)
    return BackupSpec(**base)


def restore_spec(drv, incremental=False, **kw):
    chain = drv.catalogue.restore_chain("NODE1", "\\\\node1\\c$", incremental=incremental)
    base = dict(node="NODE1", filespace="\\\\node1\\c$", chain=[object_spec(o) for o in chain],
                destination=DEST, destination_offset=VOL_OFF, destination_size=VOL_SIZE,
                incremental=incremental, paths=paths())
    base.update(kw)
    return RestoreSpec(**base)


def used(dev: bytearray, extents=EXTENTS) -> bytes:
    return b"".join(bytes(dev[VOL_OFF + o:VOL_OFF + o + n]) for o, n in extents)


def test_server_free_backup_and_restore_are_byte_identical(world):
    report = run_job(backup_job(backup_spec()), world.execute)
    assert report.ok, report.summary()
    assert report.path_used == "server-free" and report.movers_used == ["DM1"]
    assert report.bytes_by_path == {"server-free": sum(n for _, n in EXTENTS)}
    assert "LanSend" not in world.log and "LanFreeWrite" not in world.log
    (obj,) = world.catalogue.query(with_pieces=True)
    assert obj.path_used == "server-free" and not obj.compressed
    pool = world.devices["pool0"]
    assert bytes(pool[obj.pool_offset:obj.pool_offset + obj.image_size]) == used(world.devices["disk0"])

    r = run_job(restore_job(restore_spec(world)), world.execute)
    assert r.ok and r.path_used == "server-free"
    assert used(world.devices["disk1"]) == used(world.devices["disk0"])


def test_job_yields_operations_and_never_does_io_itself():
    job = backup_job(backup_spec(paths=paths(PathKind.LAN, reasons=["enableserverfree is no"])))
    op = next(job)
    assert isinstance(op, BeginObject) and op.image_size == sum(n for _, n in EXTENTS)
    from orchestrator.ops import ObjectStarted, TransferResult, StoredPiece, VerifyResult
    op = job.send(ObjectStarted(7, "VOL1", "pool0", 0))
    assert isinstance(op, LanSend) and op.server == "server:1500" and not op.compress
    assert [p.length for p in op.pieces][:2] == [64 * KIB, 1536 * KIB]
    stored = tuple(StoredPiece(p.image_offset, p.volume_offset, p.length) for p in op.pieces)
    op = job.send(TransferResult(len(op.pieces), stored))
    op = job.send(VerifyResult(True))
    assert op.object_id == 7 and op.path_used == "lan"
    with pytest.raises(StopIteration) as stop:
        job.send(None)
    report = stop.value.value
    assert report.ok and report.reasons == ["enableserverfree is no"]


def test_lan_start_with_compression_compresses_and_restores(world):
    world.devices["disk0"][VOL_OFF:VOL_OFF + 64 * KIB] = bytes(64 * KIB)  # compressible
    report = run_job(backup_job(backup_spec(compression=True, paths=paths(PathKind.LAN))), world.execute)
    assert report.ok and report.compressed and report.stored_size < report.image_size
    (obj,) = world.catalogue.query(with_pieces=True)
    assert obj.compressed and any(p.compressed for p in obj.pieces)
    # server-free restore: compressed pieces go through the client, the rest by EXTENDED COPY
    r = run_job(restore_job(restore_spec(world)), world.execute)
    assert r.ok, r.summary()
    assert any("compressed pieces cannot go server-free" in w for w in r.warnings)
    assert used(world.devices["disk1"]) == used(world.devices["disk0"])


def test_server_free_ignores_compression_yes(world):
    report = run_job(backup_job(backup_spec(compression=True)), world.execute)
    assert report.ok and not report.compressed and report.path_used == "server-free"
    assert any("not applied" in w for w in report.warnings)


def test_snapshot_image_with_pre_and_post_commands(world):
    spec = backup_spec(image_type="snapshot", presnapshotcmd="quiesce db", postsnapshotcmd="resume db",
                       paths=paths(PathKind.LAN_FREE))
    report = run_job(backup_job(spec), world.execute)
    assert report.ok
    order = [n for n in world.log if n in ("RunCommand", "TakeSnapshot", "ReleaseSnapshot", "CommitObject")]
    assert order == ["RunCommand", "TakeSnapshot", "RunCommand", "ReleaseSnapshot", "CommitObject"]
    assert "snap:disk0" not in world.devices  # released


def test_host_snapshot_cannot_go_server_free(world):
    report = run_job(backup_job(backup_spec(image_type="snapshot")), world.execute)
    assert report.ok and report.path_used == "lan-free"
    assert any("data mover cannot read it" in r for r in report.reasons)


def test_failed_presnapshotcmd_moves_nothing(world):
    world.command_returncodes["quiesce"] = 3
    report = run_job(backup_job(backup_spec(image_type="snapshot", presnapshotcmd="quiesce")),
                     world.execute)
    assert not report.ok and "presnapshotcmd exited with 3" in report.message
    assert "BeginObject" not in world.log and "TakeSnapshot" not in world.log
    # no path carried the image, so the report must not name the one it would have started on
    assert report.path_used == "none" and report.as_dict()["path_used"] == "none"
    assert "path: none" in report.summary()


def test_snapshot_cache_exhaustion_fails_clearly_and_leaves_no_object(world):
    world.snapshot_cache_exhausted = True
    report = run_job(backup_job(backup_spec(image_type="snapshot")), world.execute)
    assert not report.ok and "snapshot cache exhausted" in report.message
    assert world.catalogue.query(inactive=True) == []
    assert list(world.catalogue.states().values()) == ["abandoned"]


def test_incremental_sends_only_changed_chunks_and_restores_in_order(world):
    assert run_job(backup_job(backup_spec()), world.execute).ok
    base = world.catalogue.query()[0]
    before = bytes(world.devices["disk0"])
    # change 100 bytes in the second extent and a few in the last one
    world.devices["disk0"][VOL_OFF + 300 * KIB:VOL_OFF + 300 * KIB + 100] = b"x" * 100
    world.devices["disk0"][VOL_OFF + 6 * MIB + 5] = 0x42 ^ world.devices["disk0"][VOL_OFF + 6 * MIB + 5]
    digests = world.catalogue.digests([base])
    spec = backup_spec(mode="incremental", base_object_id=base.id, base_digests=digests,
                       paths=paths(PathKind.LAN))
    report = run_job(backup_job(spec), world.execute)
    assert report.ok, report.summary()
    # chunk 0 (used: 64 KiB + 768 KiB) and chunk 6 (1 MiB) changed; nothing else is sent
    assert report.image_size == 832 * KIB + MIB
    full = run_job(restore_job(restore_spec(world)), world.execute)
    assert full.ok and used(world.devices["disk1"]) == used(bytearray(before))
    inc = run_job(restore_job(restore_spec(world, incremental=True, deletefiles=True)), world.execute)
    assert inc.ok and inc.image_size == sum(n for _, n in EXTENTS) + 832 * KIB + MIB
    assert used(world.devices["disk1"]) == used(world.devices["disk0"])
    assert any("-deletefiles ignored" in w for w in inc.warnings)


def test_restore_refuses_too_small_destination(world):
    assert run_job(backup_job(backup_spec()), world.execute).ok
    n = len(world.log)
    r = run_job(restore_job(restore_spec(world, destination_size=VOL_SIZE // 2)), world.execute)
    assert not r.ok and "out of space" in r.message and "8388608" in r.message
    assert world.log[n:] == []  # refused before any operation


def test_specs_reject_bad_input():
    with pytest.raises(ValidationError, match="out of order"):
        backup_spec(extents=[(4096, 4096), (0, 4096)])
    with pytest.raises(ValidationError, match="past the volume size"):
        backup_spec(extents=[(VOL_SIZE - 512, 4096)])
    with pytest.raises(ValidationError, match="needs the base"):
        backup_spec(mode="incremental")
    with pytest.raises(ValidationError, match="at least one data mover"):
        PathPlan(start=PathKind.SERVER_FREE)
    with pytest.raises(ValidationError, match="batch_mb"):
        PathPlan(batch_mb=5)
    with pytest.raises(ValidationError, match="hex digits"):
        DeviceSpec(name="d", designator="60zz")


def test_copy_batches_carry_the_mover_and_devices(world):
    run_job(backup_job(backup_spec()), world.execute)
    job = backup_job(backup_spec())
    ops = []

    def spy(op):
        ops.append(op)
        return world.execute(op)

    run_job(job, spy)
    cb = next(o for o in ops if isinstance(o, CopyBatches))
    assert (cb.mover, cb.source, cb.destination) == ("DM1", "disk0", "pool0")
    assert all(b.nbytes <= 10 * MIB for b in cb.batches)


def test_job_abandoned_mid_flight_leaves_nothing_restorable(world):
    """A client that dies in the middle (the generator is simply dropped) leaves only a pending row."""
    job = backup_job(backup_spec(paths=paths(PathKind.LAN_FREE)))
    op = next(job)
    while not isinstance(op, LanFreeWrite):
        op = job.send(world.execute(op))
    job.close()  # the process is gone: no verify, no commit
    assert world.catalogue.query(inactive=True) == []
    assert list(world.catalogue.states().values()) == ["pending"]
    assert world.catalogue.sweep_pending() == 1
    with pytest.raises(LookupError, match="no restorable image"):
        world.catalogue.restore_chain("NODE1", "\\\\node1\\c$")


def test_incremental_after_a_coarser_base_sends_only_real_changes(world):
    """Base moved with a big gap (whole span), incremental with fine extents: coverage, not extents, decides."""
    from orchestrator.job.digest import view_coverage

    span = [(0, 7 * MIB)]
    assert run_job(backup_job(backup_spec(extents=span)), world.execute).ok
    chain = world.catalogue.restore_chain("NODE1", "\\\\node1\\c$", incremental=True)
    world.devices["disk0"][VOL_OFF + 4 * MIB + 10] ^= 0xFF  # one byte in chunk 4
    spec = backup_spec(mode="incremental", base_object_id=chain[0].id, paths=paths(PathKind.LAN),
                       base_digests=world.catalogue.digests(chain),
                       base_coverage=view_coverage([o.pieces for o in chain], MIB))
    report = run_job(backup_job(spec), world.execute)
    assert report.ok and report.image_size == MIB  # chunk 4's used bytes only (extent (4M, 3M) ∩ chunk 4)
    # without the coverage the finer extents would look changed in every chunk they touch
    naive = backup_spec(mode="incremental", base_object_id=chain[0].id, paths=paths(PathKind.LAN),
                        base_digests=world.catalogue.digests(chain))
    assert run_job(backup_job(naive), world.execute).image_size > MIB
    r = run_job(restore_job(restore_spec(world, incremental=True)), world.execute)
    assert r.ok and used(world.devices["disk1"]) == used(world.devices["disk0"])


def test_online_image_that_cannot_go_server_free_still_compresses(world):
    world.devices["disk0"][VOL_OFF:VOL_OFF + 64 * KIB] = bytes(64 * KIB)
    report = run_job(backup_job(backup_spec(image_type="snapshot", compression=True)), world.execute)
    assert report.ok and report.path_used == "lan-free" and report.compressed  # no server-free failover
