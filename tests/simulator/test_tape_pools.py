"""Tape pools in the simulator: server-free backup to tape and restore from tape (00h/10h/01h)
through the real copy manager engine in simulated time (exact mode), with drive and path faults,
and tape sources in fluid mode."""
from __future__ import annotations

import random

from orchestrator.ops import CopyBatches, MoverLimits, pieces_from_extents
from orchestrator.plan.disk import CscdRef
from orchestrator.plan.tape import TapeFormat, TapeRef, plan_tape_batches
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
from scsi.luns import MemoryBlockLun, TapeLun
from scsi.sense import Sense, SenseKey
from simulator.driver import SimDriver
from simulator.exact import ExactMover
from simulator.faults import FaultInjector, FaultSpec
from simulator.fluid import copy_batches
from tests.simulator.conftest import MB, build_small_san

KIB, MIB, BS = 1024, 1 << 20, 512
VOL = 8 * MIB
EXTENTS = [(0, 1 * MIB), (2 * MIB, 700 * KIB), (4 * MIB, 2 * MIB + 12 * KIB)]
FMT = TapeFormat(64 * KIB)
ENGINE = CopyLimits(chunk_bytes=64 * KIB, io_depth=2, io_workers=2, max_stream_transfer=1 * MIB)
NAA = {"C1:D": "d", "C1:R": "e", "DRV1": "1", "DRV2": "2"}


def naa(name: str) -> str:
    return "6001405" + NAA[name] * 25


def world(tmp_path):
    """The small SAN plus a second mover (own link M2), a second drive and a restore target disk."""
    san = build_small_san(tape_reposition_s=0.5)
    san.add_link("M2", 200 * MB)
    san.add_link("T2", 200 * MB)
    san.add_link("R1", 200 * MB)
    san.add_mover("DM2")
    san.add_drive("DRV2")
    san.add_disk("C1:R", owner="C1")
    san.add_route("C1:D", "DM2", [("A1", True), ("ISL", True), ("M2", True)])
    for mover, link in (("DM1", "M1"), ("DM2", "M2")):
        san.add_route(mover, "DRV2", [(link, False), ("T2", True)])
        san.add_route(mover, "C1:R", [(link, False), ("R1", True)])
    san.add_route("DM2", "DRV1", [("M2", False), ("T1", True)])
    san.add_route("C1:R", "C1", [("R1", True), ("H1", True)])
    rng = random.Random(7)
    disk = MemoryBlockLun("C1:D", num_blocks=VOL // BS, naa=bytes.fromhex(naa("C1:D")))
    disk.write(0, rng.randbytes(VOL))
    luns = {"C1:D": disk,
            "C1:R": MemoryBlockLun("C1:R", num_blocks=VOL // BS, naa=bytes.fromhex(naa("C1:R"))),
            "DRV1": TapeLun("DRV1", tmp_path / "drv1.tape", create=True, naa=bytes.fromhex(naa("DRV1"))),
            "DRV2": TapeLun("DRV2", tmp_path / "drv2.tape", create=True, naa=bytes.fromhex(naa("DRV2")))}
    movers = {m: ExactMover(san, m, luns, limits=ENGINE) for m in ("DM1", "DM2")}
    return san, luns, SimDriver(san, exact=movers), movers


def run(san, driver, job, name="CLIENT1:H:"):
    proc = driver.process(job, name=name, client="C1")
    san.env.run(until=proc)
    return proc.value


def backup(luns, movers=("DM1", "DM2"), drives=("DRV1", "DRV2")):
    pieces = pieces_from_extents(EXTENTS)
    return pieces, backup_to_tape(pieces, disk=CscdRef("C1:D", naa("C1:D"), BS), disk_base=0,
                                  drives=[DriveRef(d, naa(d)) for d in drives], fmt=FMT, volume="VOL001",
                                  movers=list(movers), batch_bytes=16 * MIB)


def restore_and_compare(san, driver, luns, pieces, move, movers=("DM1",)):
    job = restore_from_tape(pieces, location=move.location, drive=DriveRef(move.drive, naa(move.drive)),
                            disk=CscdRef("C1:R", naa("C1:R"), BS), disk_base=0, movers=list(movers))
    done = run(san, driver, job, name="restore")
    assert done.ok, done.failure
    src, dst = luns["C1:D"], luns["C1:R"]
    for off, n in EXTENTS:
        assert dst.read(off // BS, n // BS) == src.read(off // BS, n // BS)
    assert dst.read(1 * MIB // BS, 1) == bytes(BS)  # a gap was never written
    return done


def test_server_free_backup_to_tape_and_restore_from_tape_are_byte_identical(tmp_path):
    san, luns, driver, movers = world(tmp_path)
    luns["DRV1"].write(b"previous object")  # the new object is appended after what the tape holds
    luns["DRV1"].write_filemarks(1)
    pieces, job = backup(luns)
    move = run(san, driver, job)
    assert move.ok and move.closed and move.movers_used == ["DM1"] and move.drive == "DRV1"
    n = object_records(pieces, FMT)
    assert (move.location.first_object, move.location.file_number, move.location.records) == (2, 1, n)
    objs = luns["DRV1"].objects()
    assert len(objs) == 2 + n + 1 and objs[-1] is None
    t_backup = san.env.now
    assert t_backup > sum(n for _, n in EXTENTS) / (50 * MB)  # the 50 MB/s drive bounds the copy
    restore_and_compare(san, driver, luns, pieces, move)
    assert movers["DM1"].manager.counters["completed"] >= 2


def test_drive_error_mid_copy_restarts_the_object_on_the_next_drive(tmp_path):
    san, luns, driver, _ = world(tmp_path)
    FaultInjector(san, [FaultSpec(kind="tape_error", target="DRV1", at_s=0.53)]).arm()
    pieces, job = backup(luns)
    move = run(san, driver, job)
    assert move.ok and move.closed and move.drive == "DRV2"
    assert any("MEDIUM ERROR" in e and "restarts on a new tape position" in e for e in move.events)
    assert move.location.first_object == 0 and move.location.records == object_records(pieces, FMT)
    partial = luns["DRV1"].objects()
    assert 0 < len(partial) < move.location.records and None not in partial  # never closed, never catalogued
    restore_and_compare(san, driver, luns, pieces, move, movers=("DM2",))


def test_path_failure_continues_on_the_next_mover_after_the_last_record_known_written(tmp_path):
    san, luns, driver, _ = world(tmp_path)
    FaultInjector(san, [FaultSpec(kind="link_down", target="M1", at_s=0.56)]).arm()
    pieces, job = backup(luns)
    move = run(san, driver, job)
    assert move.ok and move.closed and move.drive == "DRV1" and move.movers_used == ["DM1", "DM2"]
    (event,) = move.events
    record = int(event.split("continue after record ")[1].split()[0])
    starts = {sum(FMT.records(p.length) for p in pieces[:i]) for i in range(len(pieces) + 1)}
    assert record not in starts  # mid-segment: whole records from COPY STATUS's TRANSFER COUNT
    objs = luns["DRV1"].objects()  # one object, every record once, one filemark: nothing written twice
    assert len(objs) == object_records(pieces, FMT) + 1 and objs.count(None) == 1
    restore_and_compare(san, driver, luns, pieces, move, movers=("DM2",))


def test_no_mover_left_reports_how_far_the_tape_got(tmp_path):
    san, luns, driver, _ = world(tmp_path)
    FaultInjector(san, [FaultSpec(kind="link_down", target="M1", at_s=0.54)]).arm()
    pieces, job = backup(luns, movers=("DM1",))
    move = run(san, driver, job)
    assert not move.ok and not move.closed and move.location is None
    assert 0 < move.image_offset < pieces[-1].image_end and "no data mover is left" in move.failure


def test_lan_free_failover_on_tape_then_lan_free_and_server_free_restores(tmp_path):
    san, luns, driver, _ = world(tmp_path)
    FaultInjector(san, [FaultSpec(kind="link_down", target="M1", at_s=0.56)]).arm()
    pieces = pieces_from_extents(EXTENTS)
    job = backup_to_tape_with_failover(pieces, disk=CscdRef("C1:D", naa("C1:D"), BS), disk_base=0,
                                       drives=[DriveRef("DRV1", naa("DRV1"))], fmt=FMT, volume="VOL001",
                                       movers=["DM1"])
    move = run(san, driver, job)
    assert move.ok and move.paths == ["server-free", "lan-free"], move.events
    objs = luns["DRV1"].objects()
    assert len(objs) == object_records(pieces, FMT) + 1 and objs.count(None) == 1
    restore_and_compare(san, driver, luns, pieces, move, movers=("DM2",))  # server-free: the layout held
    luns["C1:R"].write(0, bytes(VOL))
    t0 = san.env.now
    done = run(san, driver, lan_free_from_tape(pieces, location=move.location, drive=DriveRef("DRV1", naa("DRV1")),
                                               destination="C1:R", destination_offset=0), name="lan-free restore")
    assert done.ok and done.paths == ["lan-free"] and san.env.now > t0
    for off, n in EXTENTS:
        assert luns["C1:R"].read(off // BS, n // BS) == luns["C1:D"].read(off // BS, n // BS)


def _fluid_restore_op(san):
    pieces = pieces_from_extents([(0, 32 * MIB)])
    limits = MoverLimits(max_segment_count=16, max_descriptor_list_length=4096, implemented_codes=())
    batches = plan_tape_batches(pieces, direction="restore", disk=CscdRef("C1:D", naa("C1:D"), BS),
                                tape=TapeRef("DRV1", naa("DRV1"), FMT), disk_base=0, limits=limits,
                                batch_bytes=8 * MIB, encode=False)
    return CopyBatches("DM1", "DRV1", "C1:D", batches)


def test_fluid_restore_reads_the_drive(run_proc):
    san = build_small_san()
    res = run_proc(san, copy_batches(san, _fluid_restore_op(san), job="R"))
    assert res.ok and res.batches_done == 4
    assert san.env.now >= 32 * MIB / (50 * MB)  # the drive's native rate, not the disk's, bounds it


def test_fluid_restore_from_a_failed_drive_forwards_the_drives_sense_as_source(run_proc):
    san = build_small_san()
    FaultInjector(san, [FaultSpec(kind="tape_error", target="DRV1", at_s=0.2)]).arm()
    res = run_proc(san, copy_batches(san, _fluid_restore_op(san), job="R"))
    assert not res.ok and 0 < res.batches_done < 4
    sense = Sense.decode(res.failure.sense)
    assert sense.key == SenseKey.COPY_ABORTED
    assert sense.forwarded()["source"][1].key == SenseKey.MEDIUM_ERROR
    again = run_proc(san, copy_batches(san, _fluid_restore_op(san), job="R"))  # refused up front
    assert not again.ok and again.batches_done == 0
    assert Sense.decode(again.failure.sense).forwarded()["source"][1].key == SenseKey.MEDIUM_ERROR


def test_fluid_tape_backup_timing_only_restarts_on_the_spare_drive_after_a_drive_error():
    san = build_small_san(tape_reposition_s=0.5)
    san.add_drive("DRV2")
    san.add_link("T2", 200 * MB)
    san.add_route("DM1", "DRV2", [("M1", False), ("T2", True)])
    FaultInjector(san, [FaultSpec(kind="tape_error", target="DRV1", at_s=1.0)]).arm()
    driver = SimDriver(san)  # timing backend: no bytes, nominal tape positions
    pieces = pieces_from_extents([(0, 96 * MIB)])
    job = backup_to_tape(pieces, disk=CscdRef("C1:D", naa("C1:D"), BS), disk_base=0,
                         drives=[DriveRef("DRV1", naa("DRV1")), DriveRef("DRV2", naa("DRV2"))], fmt=FMT,
                         volume="VOL001", movers=["DM1"], batch_bytes=16 * MIB)
    move = run(san, driver, job)
    assert move.ok and move.drive == "DRV2" and move.location.records == object_records(pieces, FMT)
    assert "MEDIUM ERROR" in move.events[0]
    # the first attempt ran ~0.5 s on DRV1, then the whole object again on DRV2 at the drive's 50 MB/s
    assert san.env.now >= 1.0 + 0.5 + 96 * MIB / (50 * MB)


def test_backup_job_to_a_tape_pool_in_fluid_mode_survives_a_drive_error_and_restores_server_free():
    """The orchestrator's own backup and restore jobs on the simulated SAN (fluid timing), bytes kept by the
    memory driver's tapes: a drive error mid-copy restarts the object on DRV2; the restore reads DRV2."""
    from orchestrator.catalogue import Catalogue
    from orchestrator.drivers.memory import MemoryDriver
    from orchestrator.drivers.memory_tape import MemoryTapeLun, MemoryTapes
    from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec, restore_job
    from orchestrator.job.spec import TapePlan
    from orchestrator.ops import PathKind
    from orchestrator.plan.tape_position import TapeLocation

    san = build_small_san(tape_reposition_s=0.5)
    for link in ("T2", "R1"):
        san.add_link(link, 200 * MB)
    san.add_drive("DRV2")
    san.add_disk("C1:R", owner="C1")
    san.add_route("DM1", "DRV2", [("M1", False), ("T2", True)])
    san.add_route("DM1", "C1:R", [("M1", False), ("R1", True)])
    FaultInjector(san, [FaultSpec(kind="tape_error", target="DRV1", at_s=0.53)]).arm()
    disk = bytearray(random.Random(5).randbytes(VOL))
    dest = bytearray(VOL)
    tapes = {d: MemoryTapeLun(d, naa=bytes.fromhex(naa(d))) for d in ("DRV1", "DRV2")}
    mt = MemoryTapes({"C1:D": (disk, naa("C1:D")), "C1:R": (dest, naa("C1:R"))}, tapes, {"DM1": ENGINE})
    cat = Catalogue(":memory:")
    cat.add_pool_volume("TAPEPOOL", "VOL001", "DRV1", 1 << 30)
    memory = MemoryDriver({"C1:D": disk, "C1:R": dest}, cat, {"DM1": mt.limits("DM1")}, tapes=mt)
    driver = SimDriver(san, memory.execute)
    plan = PathPlan(start=PathKind.SERVER_FREE, movers=["DM1"], lan_free=True, server="srv:1500",
                    pool_designators={d: naa(d) for d in ("DRV1", "DRV2")}, batch_mb=10,
                    tape=TapePlan(record_bytes=64 * KIB, drives=["DRV2"]))
    spec = BackupSpec(node="CLIENT1", filespace="H:", source=DeviceSpec(name="C1:D", designator=naa("C1:D")),
                      volume_size=VOL, extents=EXTENTS, pool="TAPEPOOL", paths=plan)
    rep = run(san, driver, backup_job(spec))
    assert rep.outcome == "completed" and rep.path_used == "server-free", rep.message
    assert [f.reason.split(":")[0] for f in rep.failovers] == ["drive DRV1"]
    (obj,) = cat.query("CLIENT1", "H:", with_pieces=True)
    loc = TapeLocation.decode(obj.tape_location)
    assert loc.drive == "DRV2" and None not in tapes["DRV1"].records and tapes["DRV1"].records
    restore = RestoreSpec(node="CLIENT1", filespace="H:", chain=[object_spec(obj)],
                          destination=DeviceSpec(name="C1:R", designator=naa("C1:R")), destination_size=VOL,
                          paths=plan.model_copy(update={"tape": None}))
    t0 = san.env.now
    rep = run(san, driver, restore_job(restore), name="restore")
    assert rep.outcome == "completed" and rep.path_used == "server-free", rep.message
    assert san.env.now - t0 >= sum(n for _, n in EXTENTS) / (50 * MB)  # read at the drive's rate
    assert all(dest[o:o + n] == disk[o:o + n] for o, n in EXTENTS)
    mt.close()


def test_lan_path_to_tape_costs_lan_time_and_writes_the_same_records(tmp_path):
    san, luns, driver, _ = world(tmp_path)
    pieces = pieces_from_extents(EXTENTS)
    job = lan_free_to_tape(pieces, source="C1:D", source_offset=0, drive=DriveRef("DRV1", naa("DRV1")), fmt=FMT,
                           volume="VOL001", server="SRV")
    t0 = san.env.now
    move = run(san, driver, job)
    assert move.ok and move.paths == ["lan"]
    assert san.env.now - t0 >= sum(n for _, n in EXTENTS) / (125 * MB)  # through the 1 Gbit/s LAN
    assert len(luns["DRV1"].objects()) == object_records(pieces, FMT) + 1
    restore_and_compare(san, driver, luns, pieces, move)
