"""The real driver in-process: failures blamed on the component that failed; server-free jobs never read
the client's volume (verification from the mover's COPY STATUS, pool read back on the pool side only)."""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, backup_job, run_job
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import LanFreeWrite, LanSend, PathKind, Piece, VerifyPool
from scsi.copymgr import CopyLimits, CopyManager
from scsi.devices import InProcessDevice
from scsi.luns.file import FileBlockLun
from scsi.luns.memory import MemoryBlockLun
from scsi.result import Nexus, ScsiResult, Status
from scsi.target.blockdev import BlockLunDevice

KIB, MIB = 1024, 1 << 20
VOL_SIZE = 6 * MIB
EXTENTS = [(0, 512 * KIB), (MIB, 2 * MIB), (4 * MIB, 4 * KIB), (5 * MIB, MIB)]
IMAGE = sum(n for _, n in EXTENTS)
NOT_READY = bytes([0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x02, 0, 0, 0, 0])  # 04h/02h


class Watched:
    """The client's view of a LUN: counts READ(16) bytes, and can be switched NOT READY."""

    def __init__(self, inner: BlockLunDevice):
        self.inner, self.read_bytes, self.ready = inner, 0, True
        self.attentions: list[bytes] = []  # UNIT ATTENTION sense queued for the next non-INQUIRY commands

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        if not self.ready and cdb[0] != 0x12:  # INQUIRY still answers
            return ScsiResult(Status.CHECK_CONDITION, b"", NOT_READY)
        if self.attentions and cdb[0] != 0x12:
            return ScsiResult(Status.CHECK_CONDITION, b"", self.attentions.pop(0))
        r = self.inner.execute(nexus, cdb, data_out, data_in_len)
        if cdb[0] == 0x88 and r.ok:
            self.read_bytes += len(r.data)
        return r


@pytest.fixture
def san(tmp_path):
    pool_file = tmp_path / "pool.img"
    pool_file.write_bytes(bytes(32 * MIB))
    disk = MemoryBlockLun("disk0", num_blocks=VOL_SIZE // 512, serial="disk0-serial")
    disk.write(0, random.Random(5).randbytes(VOL_SIZE))
    pool = FileBlockLun("pool0", pool_file, serial="pool0-serial")
    luns = {"disk0": disk, "pool0": pool}
    cm = CopyManager(luns, limits=CopyLimits(max_segments=8, max_segment_length=MIB, chunk_bytes=256 * KIB))
    cat = Catalogue(tmp_path / "cat.db")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 32 * MIB)
    server = LocalPool({"VOL1": pool_file})
    client, pool_side = Watched(BlockLunDevice(disk)), Watched(BlockLunDevice(pool))
    drv = RealDriver(cat, movers={"DM1": InProcessDevice(cm)},
                     devices={"disk0": InProcessDevice(client), "pool0": InProcessDevice(pool_side)})
    drv.pool_side = pool_side
    yield drv, luns, client, server
    server.close()
    pool.close()
    cat.close()


def run(drv, luns, server, start=PathKind.SERVER_FREE, lan_free=True):
    ops = []

    def execute(op):
        ops.append(op)
        return drv.execute(op)

    plan = PathPlan(start=start, movers=["DM1"] if start == PathKind.SERVER_FREE else [], lan_free=lan_free,
                    lan=True, server=server.address, pool_designators={"pool0": luns["pool0"].naa.hex()},
                    batch_mb=10, max_lan_piece=MIB)
    disk = luns["disk0"]
    spec = BackupSpec(node="N1", filespace="F:", source=DeviceSpec(name="disk0", designator=disk.naa.hex()),
                      volume_size=VOL_SIZE, file_system="ntfs", extents=EXTENTS, paths=plan)
    return run_job(backup_job(spec), execute), ops


@pytest.mark.parametrize("lan_free", [True, False])
def test_server_free_job_reads_no_block_of_the_client_volume(san, lan_free):
    drv, luns, client, server = san
    report, ops = run(drv, luns, server, lan_free=lan_free)
    assert report.ok and report.path_used == "server-free", report.summary()
    assert client.read_bytes == 0 and drv.pool_side.read_bytes == 0  # the client moved no data at all
    (v,) = [op for op in ops if isinstance(op, VerifyPool)]
    assert v.pieces == () and sum(p.length for p in v.accounted) == IMAGE  # the mover's COPY STATUS agreed
    assert bool(v.server) is not lan_free
    (obj,) = drv.catalogue.query()
    view = drv.catalogue.digests([obj])  # the backup server's digests of the pool, for image incrementals
    assert view and "unread" not in view.values()


def test_server_free_without_a_reachable_server_checks_the_pool_without_reading_it(san):
    drv, luns, client, server = san
    server.close()  # the LAN is gone: the pool side is checked over the SAN (TEST UNIT READY, capacity)
    report, ops = run(drv, luns, server)
    assert report.ok and report.path_used == "server-free", report.summary()
    assert client.read_bytes == 0 and drv.pool_side.read_bytes == 0
    (obj,) = drv.catalogue.query()
    assert set(drv.catalogue.digests([obj]).values()) == {"unread"}


def test_server_free_verification_fails_when_the_pool_does_not_answer(san):
    drv, luns, client, server = san
    server.close()
    real = drv.execute

    def execute(op):  # the pool LUN goes NOT READY once the copy is done
        if isinstance(op, VerifyPool):
            drv.pool_side.ready = False
        return real(op)
    drv.execute = execute
    report, _ = run(drv, luns, server)
    assert not report.ok and "does not answer" in report.message, report.summary()
    assert drv.catalogue.query() == []


def test_lan_backup_still_compares_every_byte(san):
    drv, luns, client, server = san
    report, _ = run(drv, luns, server, PathKind.LAN, lan_free=False)
    assert report.ok, report.summary()
    assert client.read_bytes >= 2 * IMAGE  # once to send, once to verify


def test_a_not_ready_source_is_not_blamed_on_the_backup_server(san):
    drv, _, client, server = san
    client.ready = False
    r = drv.execute(LanSend(server.address, "disk0", "VOL1", 0, (Piece(0, 0, 4 * KIB),)))
    assert r.failure is not None and r.failure.device == "disk0", r.failure
    text = r.failure.describe()
    assert "client" in text and "backup server" not in text and "NOT READY" in text.upper(), text


def test_a_not_ready_source_is_not_blamed_on_the_pool_device(san):
    drv, _, client, _ = san
    client.ready = False
    r = drv.execute(LanFreeWrite("disk0", "pool0", 0, (Piece(0, 0, 4 * KIB),)))
    assert r.failure is not None and r.failure.device == "disk0", r.failure
    assert "pool" not in r.failure.describe(), r.failure.describe()


def test_an_unreachable_server_is_still_blamed_on_the_server(san):
    drv, _, _, server = san
    r = drv.execute(LanSend("127.0.0.1:1", "disk0", "VOL1", 0, (Piece(0, 0, 4 * KIB),)))
    assert r.failure is not None and r.failure.device == "127.0.0.1:1"
    assert "cannot reach the backup server" in r.failure.describe()


def test_the_client_resends_after_unit_attentions(san):
    """tgtd queues REPORTED LUNS DATA HAS CHANGED on every session when any LU of the target changes."""
    drv, luns, client, server = san
    ua = bytearray(NOT_READY)
    ua[2], ua[12], ua[13] = 0x06, 0x3F, 0x0E
    client.attentions = [bytes(ua), bytes(ua)]  # hits READ CAPACITY when the driver opens the volume
    report, _ = run(drv, luns, server, PathKind.LAN_FREE)
    assert report.ok and not report.failovers, report.summary()
    assert client.attentions == []
    client.attentions = [bytes(ua)] * 2  # and the reads of an already open volume
    report, _ = run(drv, luns, server, PathKind.LAN_FREE)
    assert report.ok and not report.failovers, report.summary()
