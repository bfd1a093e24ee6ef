"""READ POSITION long form (service action 06h) of the emulated tape: logical object, file and set numbers."""
from __future__ import annotations

import pytest

from scsi.luns.base import SpaceCode
from scsi.luns.tape import TapeLun
from scsi.result import Nexus, Status
from scsi.sense import FieldPointer, Sense
from scsi.target.tapedev import READ_POSITION_LONG, READ_POSITION_SHORT, TapeLunDevice

NEXUS = Nexus("iqn.2026-11.org.test:host")


@pytest.fixture
def lun(tmp_path):
    t = TapeLun("t0", tmp_path / "tape.bin", create=True)
    yield t
    t.close()


def read_position(dev, service_action):
    r = dev.execute(NEXUS, bytes([0x34, service_action, 0, 0, 0, 0, 0, 0, 0, 0]), b"", 64)
    assert r.ok, r.sense.hex()
    return r.data


def long_form(dev):
    data = read_position(dev, 0x06)
    assert len(data) == READ_POSITION_LONG.size == 32
    return READ_POSITION_LONG.decode(data)


def test_long_form_counts_filemarks_before_the_position(lun):
    dev = TapeLunDevice(lun)
    v = long_form(dev)
    assert (v["bop"], v["logical_object"], v["file_number"], v["partition"], v["mpu"], v["lonu"]) == (1, 0, 0, 0, 0, 0)
    lun.write(b"a" * 10)
    lun.write(b"b" * 20)
    lun.write_filemarks(1)
    lun.write(b"c")
    lun.write_filemarks(2)
    v = long_form(dev)
    assert (v["bop"], v["logical_object"], v["file_number"], v["set_number"]) == (0, 6, 3, 0)
    lun.locate(3)  # right after the first filemark
    assert (long_form(dev)["logical_object"], long_form(dev)["file_number"]) == (3, 1)
    lun.locate(2)  # on the filemark itself: it is not yet before the position
    assert long_form(dev)["file_number"] == 0
    lun.space(SpaceCode.END_OF_DATA, 0)
    assert long_form(dev)["file_number"] == 3


def test_long_form_bytes_are_where_ssc_puts_them(lun):
    dev = TapeLunDevice(lun)
    for _ in range(3):
        lun.write(b"r")
    lun.write_filemarks(1)
    data = read_position(dev, 0x06)
    assert data[0] == 0 and data[1:4] == bytes(3)
    assert int.from_bytes(data[4:8], "big") == 0  # partition
    assert int.from_bytes(data[8:16], "big") == 4  # logical object number
    assert int.from_bytes(data[16:24], "big") == 1  # logical file identifier
    assert int.from_bytes(data[24:32], "big") == 0  # logical set identifier


def test_short_form_is_unchanged(lun):
    dev = TapeLunDevice(lun)
    lun.write(b"x")
    lun.write_filemarks(1)
    for sa in (0x00, 0x01):
        v = READ_POSITION_SHORT.decode(read_position(dev, sa))
        assert (v["first_block"], v["last_block"], v["bop"]) == (2, 2, 0)


@pytest.mark.parametrize("sa", [0x08, 0x02, 0x1F])
def test_other_service_actions_are_refused_pointing_at_byte_1(lun, sa):
    r = TapeLunDevice(lun).execute(NEXUS, bytes([0x34, sa, 0, 0, 0, 0, 0, 0, 0, 0]), b"", 64)
    assert r.status == Status.CHECK_CONDITION
    s = Sense.decode(r.sense)
    assert (int(s.key), s.asc) == (0x5, 0x24)
    assert isinstance(s.sks, FieldPointer) and s.sks.in_cdb and s.sks.byte == 1


def test_a_stream_lun_without_filemark_counts_sets_mark_position_unknown(lun):
    class NoFiles:
        """A StreamLun-like tape that cannot say its file number."""

        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            if name == "file_number":
                raise AttributeError(name)
            return getattr(self._inner, name)

    lun.write(b"x")
    v = long_form(TapeLunDevice(NoFiles(lun)))
    assert (v["mpu"], v["logical_object"], v["file_number"]) == (1, 1, 0)


def test_tape_lun_file_number_at_any_position_survives_reopening(tmp_path):
    path = tmp_path / "t.bin"
    t = TapeLun("t", path, create=True)
    t.write(b"1")
    t.write_filemarks(1)
    t.write(b"2")
    t.write_filemarks(1)
    t.close()
    t = TapeLun("t", path)
    try:
        assert [t.file_number(p) for p in range(5)] == [0, 0, 1, 1, 2]
        assert t.file_number(99) == 2 and t.file_number() == 0
    finally:
        t.close()
