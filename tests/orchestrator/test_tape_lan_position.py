"""The real driver's READ POSITION: the long form's file number, and the short form when a drive refuses it."""
from __future__ import annotations

import pytest

from orchestrator.drivers.real_tape import locate
from orchestrator.ops.tape import LocateTape
from scsi.devices.inprocess import InProcessDevice
from scsi.luns import TapeLun
from scsi.result import ScsiResult
from scsi.target import errors
from scsi.tape_client import read_position
from scsi.target.tapedev import READ_POSITION_CDB, READ_POSITION_LONG, TapeLunDevice


class ShortFormOnly:
    """A drive that answers READ POSITION in its short form only (as the target did before)."""

    def __init__(self, inner):
        self.inner = inner
        self.refused = 0

    def execute(self, nexus, cdb, data_out, n):
        if cdb[0] == 0x34 and cdb[1] & 0x1F == 0x06:
            self.refused += 1
            return errors.invalid_field(READ_POSITION_CDB, "service_action").result()
        return self.inner.execute(nexus, cdb, data_out, n)


class Lonu:
    """A drive that has lost its logical position (LONU set in the long form)."""

    def execute(self, nexus, cdb, data_out, n):
        return ScsiResult(data=READ_POSITION_LONG.encode(lonu=1, mpu=1))


@pytest.fixture
def tape(tmp_path):
    lun = TapeLun("DRV1", tmp_path / "t.tape", create=True)
    for rec in (b"a", b"b"):
        lun.write(rec)
        lun.write_filemarks(1)
    yield lun
    lun.close()


def test_locate_to_end_of_data_reports_the_file_number(tape):
    r = locate(InProcessDevice(TapeLunDevice(tape)), "DRV1", LocateTape("DRV1", None))
    assert r.ok and (r.position, r.file_number) == (4, 2)
    r = locate(InProcessDevice(TapeLunDevice(tape)), "DRV1", LocateTape("DRV1", 2))
    assert r.ok and (r.position, r.file_number) == (2, 1)


def test_a_drive_refusing_the_long_form_is_asked_the_short_form_and_the_file_number_is_unknown(tape):
    drive = ShortFormOnly(TapeLunDevice(tape))
    r = locate(InProcessDevice(drive), "DRV1", LocateTape("DRV1", None))
    assert r.ok and (r.position, r.file_number) == (4, None) and drive.refused == 1


def test_a_drive_that_lost_its_position_is_a_failure_not_a_guess():
    with pytest.raises(ValueError, match="LONU"):
        read_position(InProcessDevice(Lonu()))
    r = locate(InProcessDevice(Lonu()), "DRV1", LocateTape("DRV1", 3))
    assert not r.ok and r.failure.device == "DRV1"
