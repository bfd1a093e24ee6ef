"""Tape pools through the real driver's code paths: pyscsi commands (EXTENDED COPY, RECEIVE COPY RESULTS,
LOCATE, SPACE, READ POSITION) to in-process devices -- the project's copy manager and SSC tape device."""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.ops import pieces_from_extents, run_job
from orchestrator.plan.disk import CscdRef
from orchestrator.plan.tape import TapeFormat
from orchestrator.job.tape_move import (
    DriveRef,
    backup_to_tape,
    backup_to_tape_with_failover,
    lan_free_from_tape,
    restore_from_tape,
)
from orchestrator.ops.tape import LocateTape, ReadCopyStatus
from orchestrator.plan.tape_position import object_records
from scsi.copymgr import CopyLimits, CopyManager
from scsi.devices.inprocess import InProcessDevice
from scsi.luns import MemoryBlockLun, TapeLun
from scsi.target.blockdev import BlockLunDevice
from scsi.target.tapedev import TapeLunDevice

KIB, MIB, BS = 1024, 1 << 20, 512
EXTENTS = [(0, 256 * KIB), (768 * KIB, 200 * KIB)]


class FlakyDisk(MemoryBlockLun):
    """Goes NOT READY once after ``budget`` blocks read (a lost path the next mover does not share)."""

    budget: int | None = None

    def read(self, lba, count):
        from scsi.luns.base import not_ready

        if self.budget is not None:
            if self.budget < count:
                self.budget = None
                raise not_ready(self.name, "lost (injected)")
            self.budget -= count
        return super().read(lba, count)


@pytest.fixture
def site(tmp_path):
    rng = random.Random(11)
    disk = FlakyDisk("DISK", num_blocks=2 * MIB // BS, naa=bytes.fromhex("6001405" + "d" * 25))
    disk.write(0, rng.randbytes(2 * MIB))
    dest = MemoryBlockLun("DEST", num_blocks=2 * MIB // BS, naa=bytes.fromhex("6001405" + "e" * 25))
    tape = TapeLun("DRV1", tmp_path / "drv1.tape", create=True, naa=bytes.fromhex("6001405" + "1" * 25))
    luns = {"DISK": disk, "DEST": dest, "DRV1": tape}
    limits = CopyLimits(max_segment_length=64 * KIB, chunk_bytes=16 * KIB, io_workers=2)
    managers = [CopyManager(luns, limits=limits, name=f"DM{i}") for i in (1, 2)]
    movers = {f"DM{i}": InProcessDevice(m) for i, m in enumerate(managers, 1)}
    devices = {"DRV1": InProcessDevice(TapeLunDevice(tape)), "DISK": InProcessDevice(BlockLunDevice(disk)),
               "DEST": InProcessDevice(BlockLunDevice(dest))}
    driver = RealDriver(Catalogue(":memory:"), movers, devices)

    def execute(op):
        return driver.execute(op)

    yield luns, execute
    for m in managers:
        m.close()
    tape.close()


def test_backup_to_tape_resumes_on_the_next_mover_and_restores_byte_identical(site):
    luns, execute = site
    luns["DRV1"].write(b"older object")
    luns["DRV1"].write_filemarks(1)
    luns["DISK"].budget = 300 * KIB // BS
    fmt = TapeFormat(32 * KIB)
    pieces = pieces_from_extents(EXTENTS)
    drive = DriveRef("DRV1", luns["DRV1"].naa.hex())
    move = run_job(backup_to_tape(pieces, disk=CscdRef("DISK", luns["DISK"].naa.hex(), BS), disk_base=0,
                                  drives=[drive], fmt=fmt, volume="VOL1", movers=["DM1", "DM2"]), execute)
    assert move.ok and move.movers_used == ["DM1", "DM2"], move.events
    assert move.location.first_object == 2 and move.location.file_number == 1  # READ POSITION long form
    objs = luns["DRV1"].objects()
    assert len(objs) == 2 + object_records(pieces, fmt) + 1 and objs[-1] is None
    done = run_job(restore_from_tape(pieces, location=move.location, drive=drive,
                                     disk=CscdRef("DEST", luns["DEST"].naa.hex(), BS), disk_base=0, movers=["DM2"]),
                   execute)
    assert done.ok
    for off, n in EXTENTS:
        assert luns["DEST"].read(off // BS, n // BS) == luns["DISK"].read(off // BS, n // BS)


def test_locate_past_end_of_data_is_a_failure_naming_the_drive(site):
    _, execute = site
    r = execute(LocateTape("DRV1", 99))
    assert not r.ok and r.failure.device == "DRV1" and r.failure.kind == "sense"
    r = execute(LocateTape("DRV1", None))
    assert r.ok and r.position == 0
    st = execute(ReadCopyStatus("DM1", 77))
    assert not st.ok and "list 77" in st.failure.message


def test_lan_free_continuation_and_lan_free_restore_through_pyscsi_read_write_6(site):
    luns, execute = site
    luns["DISK"].budget = 300 * KIB // BS  # the only mover loses the volume: the client goes on itself
    fmt = TapeFormat(32 * KIB)
    pieces = pieces_from_extents(EXTENTS)
    drive = DriveRef("DRV1", luns["DRV1"].naa.hex())
    move = run_job(backup_to_tape_with_failover(pieces, disk=CscdRef("DISK", luns["DISK"].naa.hex(), BS),
                                                disk_base=0, drives=[drive], fmt=fmt, volume="VOL1",
                                                movers=["DM1"]), execute)
    assert move.ok and move.paths == ["server-free", "lan-free"], move.events
    objs = luns["DRV1"].objects()
    assert len(objs) == object_records(pieces, fmt) + 1 and objs.count(None) == 1
    done = run_job(lan_free_from_tape(pieces, location=move.location, drive=drive, destination="DEST",
                                      destination_offset=0), execute)
    assert done.ok
    for off, n in EXTENTS:
        assert luns["DEST"].read(off // BS, n // BS) == luns["DISK"].read(off // BS, n // BS)


def test_fixed_block_client_io_is_refused_clearly(site):
    luns, execute = site
    from orchestrator.job.tape_move import lan_free_to_tape

    move = run_job(lan_free_to_tape(pieces_from_extents(EXTENTS), source="DISK", source_offset=0,
                                    drive=DriveRef("DRV1", luns["DRV1"].naa.hex()),
                                    fmt=TapeFormat(16 * KIB, fixed=True, block_length=BS), volume="VOL1"), execute)
    assert not move.ok and "fixed-block LAN-free I/O is not supported" in move.failure
