"""The LAN path to a tape pool with the real driver: the pool side (orchestrator.lan.local_pool) owns the drive
and writes / reads the object's records; backup and restore jobs over it are byte-identical."""
from __future__ import annotations

import json
import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.job import (
    BackupSpec,
    DeviceSpec,
    PathPlan,
    RestoreSpec,
    backup_job,
    object_spec,
    restore_job,
)
from orchestrator.job.spec import TapePlan
from orchestrator.lan.client import LanClient
from orchestrator.lan.frames import OP_ACK, OP_MARK, Frame, LanRemoteError, read_frame
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import PathKind, Piece, pieces_from_extents, run_job
from orchestrator.plan.tape import TapeFormat
from orchestrator.lan.tape_server import TapeLanClient, server_read, server_write
from orchestrator.ops.tape import TapeServerRead, TapeServerWrite
from orchestrator.plan.tape_position import TapeLocation, object_records
from orchestrator.ops.tape_records import transfers
from scsi.devices.inprocess import InProcessDevice
from scsi.luns import MemoryBlockLun, TapeLun
from scsi.target.blockdev import BlockLunDevice
from scsi.target.tapedev import TapeLunDevice

KIB, MIB, BS = 1024, 1 << 20, 512
VOL = 2 * MIB
EXTENTS = [(0, 256 * KIB), (768 * KIB, 200 * KIB), (1536 * KIB, 100 * KIB)]
D = {"DISK": "6001405" + "d" * 25, "DEST": "6001405" + "e" * 25, "DRV1": "6001405" + "1" * 25}
FMT = TapeFormat(32 * KIB)


def classify(exc, what, device):
    from orchestrator.drivers.real import failure_from

    return failure_from(exc, what, device)


@pytest.fixture
def site(tmp_path):
    """A client with SAN access to its disks and the drive; the backup server drives the same tape LUN."""
    disk = MemoryBlockLun("DISK", num_blocks=VOL // BS, naa=bytes.fromhex(D["DISK"]))
    disk.write(0, random.Random(5).randbytes(VOL))
    dest = MemoryBlockLun("DEST", num_blocks=VOL // BS, naa=bytes.fromhex(D["DEST"]))
    tape = TapeLun("DRV1", tmp_path / "drv1.tape", create=True, naa=bytes.fromhex(D["DRV1"]))
    tape.write(b"an older object")
    tape.write_filemarks(1)
    drive = TapeLunDevice(tape)
    server = LocalPool({}, tapes={"DRV1": InProcessDevice(drive)})
    cat = Catalogue(":memory:")
    cat.add_pool_volume("TAPEPOOL", "VOL001", "DRV1", 1 << 30)
    devices = {"DISK": InProcessDevice(BlockLunDevice(disk)), "DEST": InProcessDevice(BlockLunDevice(dest)),
               "DRV1": InProcessDevice(drive)}
    driver = RealDriver(cat, {}, devices, lan_timeout=10.0)
    yield driver, server, cat, disk, dest, tape
    server.close()
    tape.close()


TAPE = TapePlan(record_bytes=32 * KIB)


def paths(server, start=PathKind.LAN, tape=TAPE):
    return PathPlan(start=start, movers=[], lan_free=False, lan=True, server=server.address,
                    pool_designators={"DRV1": D["DRV1"]}, batch_mb=10, tape=tape)


def identical(disk, dest):
    return all(disk.read(o // BS, n // BS) == dest.read(o // BS, n // BS) for o, n in EXTENTS)


def test_lan_backup_and_restore_jobs_to_a_tape_pool_are_byte_identical_with_the_real_driver(site):
    driver, server, cat, disk, dest, tape = site
    spec = BackupSpec(node="N1", filespace="H:", source=DeviceSpec(name="DISK", designator=D["DISK"]),
                      volume_size=VOL, extents=EXTENTS, pool="TAPEPOOL", paths=paths(server))
    rep = run_job(backup_job(spec), driver.execute)
    assert rep.outcome == "completed" and rep.path_used == "lan", rep.message
    obj = cat.restore_chain("N1", "H:")[0]
    loc = TapeLocation.decode(obj.tape_location)
    pieces = pieces_from_extents(EXTENTS)
    assert (loc.first_object, loc.file_number, loc.records) == (2, 1, object_records(pieces, FMT))
    objs = tape.objects()
    assert len(objs) == 2 + loc.records + 1 and objs[-1] is None  # the object, closed by its filemark
    assert objs[2:-1] == [r for p in pieces for r in transfers(disk.read(p.volume_offset // BS, p.length // BS),
                                                                FMT)]
    spec = RestoreSpec(node="N1", filespace="H:", chain=[object_spec(obj)],
                       destination=DeviceSpec(name="DEST", designator=D["DEST"]), destination_size=VOL,
                       paths=paths(server, tape=None))
    rep = run_job(restore_job(spec), driver.execute)
    assert rep.outcome == "completed" and rep.path_used == "lan", rep.message
    assert identical(disk, dest)


def test_the_server_locates_its_own_drive_and_refuses_a_position_it_cannot_reach(site):
    driver, server, _, disk, _, tape = site
    piece = Piece(0, 0, 64 * KIB)
    r = driver.execute(TapeServerWrite(server.address, "DISK", "DRV1", (piece,), FMT, position=None))
    assert r.ok and r.pieces_done == 1
    assert tape.objects()[2:] == transfers(disk.read(0, 128), FMT) + [None]
    r = driver.execute(TapeServerRead(server.address, "DRV1", "DEST", (piece,), FMT, position=9))
    assert not r.ok and r.pieces_done == 0 and r.failure.device == server.address
    assert "DRV1" in r.failure.message and "LOCATE" in r.failure.message


def test_a_failing_drive_stops_at_the_last_acknowledged_piece(tmp_path):
    """A medium that fills up mid-object: the pieces acknowledged before count, the rest is the server's fault."""
    small = TapeLun("DRV1", tmp_path / "small.tape", create=True, capacity=100 * KIB)
    src = random.Random(1).randbytes(192 * KIB)
    pieces = tuple(Piece(o, o, 64 * KIB) for o in range(0, 192 * KIB, 64 * KIB))
    with LocalPool({}, tapes={"DRV1": small}) as server:
        op = TapeServerWrite(server.address, "SRC", "DRV1", pieces, FMT, position=None)
        r = server_write(op, lambda p: src[p.volume_offset:p.image_end], classify, 10.0)
    assert r.pieces_done == 1 and len(r.stored) == 1
    assert r.failure.device == server.address and "medium full" in r.failure.message


def test_a_tape_lun_file_owned_by_the_server_round_trips_and_reports_file_numbers(tmp_path):
    path = tmp_path / "pool.tape"
    TapeLun("X", path, create=True).close()
    data = random.Random(2).randbytes(100 * KIB)
    pieces = (Piece(0, 0, 40 * KIB), Piece(40 * KIB, 40 * KIB, 60 * KIB))
    with LocalPool({}, tapes={"DRV9": path}) as server:
        for _ in range(2):  # two objects: the second starts after the first one's filemark
            with TapeLanClient(server.address, "DRV9", "write", FMT, None) as c:
                first, files = c.position, c.file_number
                for p in pieces:
                    c.put(p.image_offset, p.length, data[p.image_offset:p.image_end])
                c.mark()
        assert (first, files) == (5, 1)  # 2 + 2 records and one filemark before it
        got = bytearray(len(data))
        op = TapeServerRead(server.address, "DRV9", "DEST", pieces, FMT, position=first)
        r = server_read(op, lambda p, b: got.__setitem__(slice(p.image_offset, p.image_end), b), classify, 10.0)
    assert r.ok and r.pieces_done == 2 and bytes(got) == data
    reopened = TapeLun("X", path)
    try:
        assert reopened.objects().count(None) == 2 and reopened.end_of_data == 10
    finally:
        reopened.close()


def _raw_open(address, payload):
    c = LanClient.__new__(LanClient)
    from orchestrator.lan.client import connect

    c.sock = connect(address, 5.0)
    c.sock.sendall(Frame(1, payload=json.dumps(payload).encode()).encode())
    return c, read_frame(c.sock)


@pytest.mark.parametrize("payload, words", [
    ({"tape_drive": "NOPE", "mode": "write", "record_bytes": 1024}, ["'NOPE'", "not served", "DRV1"]),
    ({"tape_drive": "DRV1", "mode": "write", "record_bytes": 0}, ["record_bytes"]),
    ({"tape_drive": "DRV1", "mode": "read", "record_bytes": 1024}, ["position"]),
    ({"tape_drive": "DRV1", "mode": "append", "record_bytes": 1024}, ["mode"]),
    ({"tape_drive": "DRV1", "mode": "write", "record_bytes": 1024, "speed": 3}, ["speed"]),
])
def test_bad_tape_open_payloads_get_an_error_naming_the_field(tmp_path, payload, words):
    tape = TapeLun("DRV1", tmp_path / "t.tape", create=True)
    with LocalPool({}, tapes={"DRV1": tape}) as server:
        c, reply = _raw_open(server.address, payload)
        c.close()
    msg = reply.payload.decode()
    assert reply.op == 0x8F and all(w in msg for w in words), msg


def test_protocol_misuse_in_a_tape_session_is_refused_clearly(tmp_path):
    tape = TapeLun("DRV1", tmp_path / "t.tape", create=True)
    with LocalPool({}, tapes={"DRV1": tape}) as server:
        with TapeLanClient(server.address, "DRV1", "write", FMT, None) as c:
            with pytest.raises(LanRemoteError, match="busy"):
                TapeLanClient(server.address, "DRV1", "write", FMT, None)
            c.put(64 * KIB, 1024, b"x" * 1024)
            with pytest.raises(LanRemoteError, match="image order"):
                c.put(0, 1024, b"y" * 1024)
        with TapeLanClient(server.address, "DRV1", "write", FMT, None) as c, \
                pytest.raises(LanRemoteError, match="uncompressed"):  # the drive is free again
            c.put(0, 1024, b"z" * 10, compressed=True)
        with TapeLanClient(server.address, "DRV1", "read", FMT, 0) as c, \
                pytest.raises(LanRemoteError, match="MARK in a tape read session"):
            c.mark()
        with TapeLanClient(server.address, "DRV1", "read", FMT, 1) as c, \
                pytest.raises(LanRemoteError, match="DRV1.*reading the piece"):  # past the only record
            c.get(0, 1024, 1024)


def test_mark_outside_a_tape_session_is_refused(tmp_path):
    vol = tmp_path / "vol.img"
    vol.write_bytes(bytes(4096))
    with LocalPool({"VOL1": vol}) as server, LanClient(server.address, "VOL1", 0) as c:
        c.sock.sendall(Frame(OP_MARK).encode())
        reply = read_frame(c.sock)
    assert reply.op != OP_ACK and b"tape session" in reply.payload
