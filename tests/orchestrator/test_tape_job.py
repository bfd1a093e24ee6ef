"""Backup and restore jobs on a tape storage pool, through the memory driver and the SQLite catalogue:
server-free both ways, drive failure, mover failure with LAN-free continuation, no half object visible."""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.memory import MemoryDriver
from orchestrator.drivers.memory_tape import MemoryTapeLun, MemoryTapes
from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec, restore_job
from orchestrator.job.spec import TapePlan
from orchestrator.ops import PathKind, run_job
from orchestrator.plan.tape_position import TapeLocation, object_records
from scsi.copymgr import CopyLimits

KIB, MIB = 1024, 1 << 20
VOL = 4 * MIB
EXTENTS = [(0, 512 * KIB), (1 * MIB, 300 * KIB), (3 * MIB, 700 * KIB)]
D = {"DISK": "6001405" + "d" * 25, "DEST": "6001405" + "e" * 25, "DRV1": "6001405" + "1" * 25,
     "DRV2": "6001405" + "2" * 25}
TAPE = TapePlan(record_bytes=64 * KIB, drives=["DRV2"])


@pytest.fixture
def site():
    disk = bytearray(random.Random(9).randbytes(VOL))
    dest = bytearray(VOL)
    tapes = {n: MemoryTapeLun(n, naa=bytes.fromhex(D[n])) for n in ("DRV1", "DRV2")}
    limits = CopyLimits(max_segment_length=256 * KIB, chunk_bytes=64 * KIB)
    mt = MemoryTapes({"DISK": (disk, D["DISK"]), "DEST": (dest, D["DEST"])}, tapes, {"DM1": limits, "DM2": limits})
    cat = Catalogue(":memory:")
    cat.add_pool_volume("TAPEPOOL", "VOL001", "DRV1", 1 << 30)
    driver = MemoryDriver({"DISK": disk, "DEST": dest}, cat, {m: mt.limits(m) for m in ("DM1", "DM2")}, tapes=mt)
    yield driver, mt, cat, disk, dest
    mt.close()


def paths(start=PathKind.SERVER_FREE, movers=("DM1", "DM2"), lan_free=True, tape=TAPE, lan=True):
    return PathPlan(start=start, movers=list(movers), lan_free=lan_free, lan=lan, server="srv:1500",
                    pool_designators={n: D[n] for n in ("DRV1", "DRV2")}, batch_mb=10, tape=tape)


def backup(driver, **kw):
    spec = BackupSpec(node="N1", filespace="H:", source=DeviceSpec(name="DISK", designator=D["DISK"]),
                      volume_size=VOL, extents=EXTENTS, pool="TAPEPOOL", paths=paths(**kw))
    return run_job(backup_job(spec), driver.execute)


def restore(driver, cat, **kw):
    chain = [object_spec(o) for o in cat.restore_chain("N1", "H:")]
    spec = RestoreSpec(node="N1", filespace="H:", chain=chain, destination=DeviceSpec(name="DEST",
                       designator=D["DEST"]), destination_size=VOL, paths=paths(**{"tape": None, **kw}))
    return run_job(restore_job(spec), driver.execute)


def identical(disk, dest):
    return all(disk[o:o + n] == dest[o:o + n] for o, n in EXTENTS)


def test_server_free_backup_to_tape_is_catalogued_with_its_position_and_restores_server_free(site):
    driver, mt, cat, disk, dest = site
    mt.tapes["DRV1"].write(b"an older object")
    mt.tapes["DRV1"].write_filemarks(1)
    rep = backup(driver)
    assert rep.outcome == "completed" and rep.path_used == "server-free", rep.message
    (obj,) = cat.query("N1", "H:", with_pieces=True)
    loc = TapeLocation.decode(obj.tape_location)
    pieces = obj.pieces
    assert (loc.drive, loc.file_number, loc.first_object) == ("DRV1", 1, 2)
    assert loc.records == object_records(pieces, loc.fmt)
    assert mt.tapes["DRV1"].records[loc.filemark_object] is None
    assert "VerifyPool" not in driver.log  # the client read no data back
    rep = restore(driver, cat)
    assert rep.outcome == "completed" and rep.path_used == "server-free", rep.message
    assert identical(disk, dest)


def test_drive_failure_restarts_on_the_spare_drive_and_the_catalogue_points_there(site):
    driver, mt, cat, disk, dest = site
    mt.tapes["DRV1"].fail_after_records = 5
    rep = backup(driver)
    assert rep.outcome == "completed" and rep.path_used == "server-free", rep.message
    assert any("MEDIUM ERROR" in f.reason for f in rep.failovers)
    loc = TapeLocation.decode(cat.query("N1", "H:")[0].tape_location)
    assert loc.drive == "DRV2" and loc.first_object == 0
    assert None not in mt.tapes["DRV1"].records  # the abandoned attempt never got its filemark
    assert restore(driver, cat).outcome == "completed" and identical(disk, dest)


def test_every_mover_lost_continues_lan_free_on_the_same_tape_and_stays_server_free_restorable(site):
    driver, mt, cat, disk, dest = site
    mt.disk_faults["DISK"] = 600 * KIB  # DM1 loses the volume; DM2 never saw it
    rep = backup(driver, movers=("DM1",))
    assert rep.outcome == "completed" and rep.path_used == "server-free+lan-free", rep.message
    assert [f.to_path for f in rep.failovers] == ["lan-free"]
    recs = mt.tapes["DRV1"].records
    obj = cat.query("N1", "H:", with_pieces=True)[0]
    assert len(recs) == object_records(obj.pieces, TAPE.fmt()) + 1 and recs.count(None) == 1
    rep = restore(driver, cat, movers=("DM2",))
    assert rep.outcome == "completed" and rep.path_used == "server-free" and identical(disk, dest)


def test_lan_free_restore_from_tape(site):
    driver, _, cat, disk, dest = site
    assert backup(driver).outcome == "completed"
    rep = restore(driver, cat, start=PathKind.LAN_FREE, movers=())
    assert rep.outcome == "completed" and rep.path_used == "lan-free" and identical(disk, dest)


def test_the_lan_path_continues_the_tape_object_through_the_server(site):
    driver, mt, cat, disk, dest = site
    mt.disk_faults["DISK"] = 600 * KIB
    rep = backup(driver, movers=("DM1",), lan_free=False)
    assert rep.outcome == "completed" and rep.path_used == "server-free+lan", rep.message
    assert "TapeServerWrite" in driver.log and "TapeClientWrite" not in driver.log
    rep = restore(driver, cat, movers=("DM2",))
    assert rep.outcome == "completed" and rep.path_used == "server-free" and identical(disk, dest)


def test_no_path_left_abandons_the_object_so_no_half_object_is_visible(site):
    driver, mt, cat, _, _ = site
    mt.disk_faults["DISK"] = 600 * KIB
    rep = backup(driver, movers=("DM1",), lan_free=False, lan=False)
    assert rep.outcome == "failed" and "no other path" in rep.message
    assert cat.query("N1", "H:") == [] and list(cat.states().values()) == ["abandoned"]
    assert None not in mt.tapes["DRV1"].records


def test_a_catalogue_from_before_tape_pools_gains_the_tape_location_column(tmp_path):
    import sqlite3

    from orchestrator.catalogue import SCHEMA

    old = SCHEMA.replace(",\n    tape_location TEXT)", ")")
    assert old != SCHEMA
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(old)
    db.close()
    cat = Catalogue(path)
    cols = {r["name"] for r in cat.db.execute("PRAGMA table_info(objects)")}
    assert "tape_location" in cols
    cat.close()


def test_an_empty_volume_still_gets_a_closed_tape_object(site):
    driver, mt, cat, _, _ = site
    spec = BackupSpec(node="N1", filespace="E:", source=DeviceSpec(name="DISK", designator=D["DISK"]),
                      volume_size=VOL, extents=[], pool="TAPEPOOL", paths=paths())
    rep = run_job(backup_job(spec), driver.execute)
    assert rep.outcome == "completed", rep.message
    loc = TapeLocation.decode(cat.query("N1", "E:")[0].tape_location)
    assert loc.records == 0 and mt.tapes["DRV1"].records == [None]


def test_image_incremental_on_tape_restores_the_chain_server_free(site):
    driver, _, cat, disk, dest = site
    assert backup(driver).outcome == "completed"
    disk[1 * MIB + 4096:1 * MIB + 8192] = b"\x5a" * 4096  # the volume changes after the full image
    (base,) = cat.query("N1", "H:")
    spec = BackupSpec(node="N1", filespace="H:", source=DeviceSpec(name="DISK", designator=D["DISK"]),
                      volume_size=VOL, extents=EXTENTS, pool="TAPEPOOL", mode="incremental",
                      base_object_id=base.id, base_digests=cat.digests([base]), paths=paths())
    rep = run_job(backup_job(spec), driver.execute)
    assert rep.outcome == "completed", rep.message
    chain = cat.restore_chain("N1", "H:", incremental=True)
    assert len(chain) == 2 and all(o.tape_location for o in chain)
    locs = [TapeLocation.decode(o.tape_location) for o in chain]
    assert locs[1].first_object == locs[0].end_object  # the incremental follows the full image on tape
    restore_spec = RestoreSpec(node="N1", filespace="H:", chain=[object_spec(o) for o in chain],
                               destination=DeviceSpec(name="DEST", designator=D["DEST"]), destination_size=VOL,
                               incremental=True, paths=paths(tape=None))
    rep = run_job(restore_job(restore_spec), driver.execute)
    assert rep.outcome == "completed" and rep.path_used == "server-free", rep.message
    assert identical(disk, dest)


def test_lan_restore_from_tape_through_the_server(site):
    driver, _, cat, disk, dest = site
    assert backup(driver).outcome == "completed"
    rep = restore(driver, cat, start=PathKind.LAN, movers=(), lan_free=False)
    assert rep.outcome == "completed" and rep.path_used == "lan" and identical(disk, dest)
    assert "TapeServerRead" in driver.log
