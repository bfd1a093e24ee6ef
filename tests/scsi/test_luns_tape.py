"""The emulated tape LUN: records, filemarks, positioning, on-disk format, damage."""
from __future__ import annotations

import struct

import pytest

from scsi.luns import LunError, SpaceCode, TapeFormatError, TapeLun
from scsi.sense import Sense, SenseKey


@pytest.fixture
def tape(tmp_path):
    t = TapeLun("t", tmp_path / "t.tape", create=True)
    yield t
    t.close()


def test_file_bytes_are_the_documented_format(tmp_path):
    t = TapeLun("t", tmp_path / "x.tape", create=True)
    t.write(b"abc")
    t.write_filemarks(1)
    t.close()
    raw = (tmp_path / "x.tape").read_bytes()
    assert raw[:8] == b"SFTAPE1\n" and raw[8:10] == b"\x00\x01" and len(raw) == 32 + 12 + 3 + 12
    # entry: kind 'R', 3 reserved, length 3, CRC-32("abc") = 352441C2h, data
    assert raw[32:47] == b"R\0\0\0" + b"\0\0\0\3" + bytes.fromhex("352441c2") + b"abc"
    assert raw[47:59] == b"F\0\0\0" + bytes(4) + bytes(4)


def test_variable_records_and_filemark(tape, tmp_path):
    tape.write(b"one")
    tape.write(b"second")
    tape.write_filemarks(1)
    tape.write(b"after")
    tape.rewind()
    assert tape.read(100) == b"one"
    assert tape.read(100) == b"second"
    with pytest.raises(LunError) as ei:
        tape.read(100)
    s = Sense.decode(ei.value.sense)
    assert s.filemark and (s.key, s.asc, s.ascq) == (SenseKey.NO_SENSE, 0x00, 0x01)
    assert tape.read(100) == b"after"
    with pytest.raises(LunError) as ei:
        tape.read(100)
    assert (ei.value.key, ei.value.asc, ei.value.ascq) == (SenseKey.BLANK_CHECK, 0, 5)
    # reopen: same contents
    again = TapeLun("t2", tmp_path / "t.tape")
    assert again.objects() == [b"one", b"second", None, b"after"]
    again.close()


def test_record_longer_than_request_sets_ili(tape):
    tape.write(b"x" * 10)
    tape.rewind()
    with pytest.raises(LunError) as ei:
        tape.read(4)
    assert ei.value.ili and ei.value.partial == b"xxxx"
    assert tape.position() == 1


def test_fixed_mode(tape):
    tape.write(b"a" * 8 + b"b" * 8, fixed=True, block_size=8)
    tape.write(b"c" * 5)
    tape.rewind()
    assert tape.read(2, fixed=True, block_size=8) == b"a" * 8 + b"b" * 8
    with pytest.raises(LunError) as ei:
        tape.read(1, fixed=True, block_size=8)
    assert ei.value.ili
    with pytest.raises(ValueError):
        tape.write(b"abc", fixed=True, block_size=2)


def test_fixed_read_hits_filemark_with_partial(tape):
    tape.write(b"a" * 4, fixed=True, block_size=4)
    tape.write_filemarks(1)
    tape.rewind()
    with pytest.raises(LunError) as ei:
        tape.read(3, fixed=True, block_size=4)
    assert ei.value.filemark and ei.value.partial == b"aaaa"


def test_space_and_locate(tape):
    for r in (b"1", b"2"):
        tape.write(r)
    tape.write_filemarks(1)
    tape.write(b"3")
    tape.write_filemarks(1)
    tape.write(b"4")
    tape.rewind()
    tape.space(SpaceCode.FILEMARKS, 2)
    assert tape.read(9) == b"4"
    tape.space(SpaceCode.FILEMARKS, -1)
    assert tape.position() == 4
    tape.rewind()
    tape.space(SpaceCode.BLOCKS, 1)
    assert tape.read(9) == b"2"
    with pytest.raises(LunError) as ei:
        tape.space(SpaceCode.BLOCKS, 2)
    assert ei.value.filemark and tape.position() == 3
    tape.space(SpaceCode.END_OF_DATA, 0)
    assert tape.position() == 6
    with pytest.raises(LunError):
        tape.locate(7)
    tape.locate(5)
    assert tape.read(9) == b"4"


def test_overwrite_mid_tape_erases_the_rest(tape, tmp_path):
    for r in (b"a", b"b", b"c"):
        tape.write(r)
    tape.locate(1)
    tape.write(b"X")
    assert tape.objects() == [b"a", b"X"]
    reopened = TapeLun("r", tmp_path / "t.tape")
    assert reopened.objects() == [b"a", b"X"]
    reopened.close()


def test_capacity_gives_volume_overflow(tmp_path):
    t = TapeLun("c", tmp_path / "c.tape", create=True, capacity=40)
    t.write(b"x" * 20)
    with pytest.raises(LunError) as ei:
        t.write(b"y" * 20)
    assert ei.value.key == SenseKey.VOLUME_OVERFLOW and ei.value.eom
    t.close()


@pytest.mark.parametrize("damage, where, what", [
    (lambda b: b"NOTATAPE" + b[8:], 0, "not an emulated tape"),
    (lambda b: b[:8] + b"\0\x09" + b[10:], 8, "version 9"),
    (lambda b: b[:45], 36, "claims 3 bytes"),
    (lambda b: b[:32] + b"Z" + b[33:], 32, "unknown kind"),
    (lambda b: b[:20], 20, "shorter than"),
    (lambda b: b + b"R\0\0", 59, "torn"),
])
def test_damaged_files_name_the_byte(tmp_path, damage, where, what):
    p = tmp_path / "d.tape"
    t = TapeLun("d", p, create=True)
    t.write(b"abc")
    t.write_filemarks(1)
    t.close()
    p.write_bytes(damage(p.read_bytes()))
    with pytest.raises(TapeFormatError) as ei:
        TapeLun("d", p)
    assert ei.value.offset == where and what in str(ei.value)


def test_crc_mismatch_is_medium_error(tmp_path):
    p = tmp_path / "crc.tape"
    t = TapeLun("d", p, create=True)
    t.write(b"abc")
    t.close()
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))
    t = TapeLun("d", p)
    with pytest.raises(LunError) as ei:
        t.read(10)
    assert ei.value.key == SenseKey.MEDIUM_ERROR and ei.value.asc == 0x11
    t.close()
