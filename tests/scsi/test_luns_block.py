"""Block LUN kinds: memory (sparse) and file-backed, with their error sense."""
from __future__ import annotations

import os

import pytest

from scsi.luns import FileBlockLun, LunError, MemoryBlockLun, naa6_from_serial
from scsi.sense import Sense, SenseKey


def test_naa6_designator_layout_and_stability():
    naa = naa6_from_serial("0123456789abcdef0123456789")
    # NAA 6h, company id 001405h, then the serial's hex digits nibble by nibble
    assert naa.hex() == "60014050123456789abcdef012345678"
    assert naa6_from_serial("disk1") == naa6_from_serial("disk1")
    assert naa6_from_serial("disk1") != naa6_from_serial("disk2")


@pytest.fixture(params=["memory", "file"])
def lun(request, tmp_path):
    if request.param == "memory":
        yield MemoryBlockLun("m", block_size=512, num_blocks=256)
    else:
        lun = FileBlockLun("f", tmp_path / "disk.img", block_size=512, size=256 * 512)
        yield lun
        lun.close()


def test_round_trip_and_zero_fill(lun):
    assert (lun.block_size, lun.num_blocks) == (512, 256)
    assert lun.read(10, 2) == bytes(1024)
    payload = os.urandom(3 * 512)
    lun.write(100, payload)
    assert lun.read(100, 3) == payload
    assert lun.read(99, 1) == bytes(512)
    lun.flush()


def test_out_of_range_carries_lba_out_of_range_sense(lun):
    with pytest.raises(LunError) as ei:
        lun.read(255, 2)
    sense = Sense.decode(ei.value.sense)
    assert (sense.key, sense.asc, sense.ascq) == (SenseKey.ILLEGAL_REQUEST, 0x21, 0x00)
    assert sense.information == 255


def test_partial_block_write_rejected(lun):
    with pytest.raises(ValueError, match="whole number"):
        lun.write(0, b"x" * 100)


def test_read_only_write_is_data_protect(tmp_path):
    p = tmp_path / "ro.img"
    p.write_bytes(bytes(4096))
    lun = FileBlockLun("ro", p, read_only=True)
    try:
        with pytest.raises(LunError) as ei:
            lun.write(0, bytes(512))
        assert Sense.decode(ei.value.sense).key == SenseKey.DATA_PROTECT
    finally:
        lun.close()


def test_file_lun_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="cannot open"):
        FileBlockLun("x", tmp_path / "missing.img")
    (tmp_path / "tiny").write_bytes(b"abc")
    with pytest.raises(ValueError, match="smaller than one"):
        FileBlockLun("x", tmp_path / "tiny")
    with pytest.raises(ValueError, match="neither a regular file"):
        FileBlockLun("x", "/dev/null")
    with pytest.raises(ValueError, match="power of two"):
        FileBlockLun("x", tmp_path / "tiny", block_size=500)


def test_memory_lun_is_sparse():
    lun = MemoryBlockLun("big", block_size=4096, num_blocks=1 << 28)  # 1 TiB
    lun.write(12345678, b"\1" * 4096)
    lun.write(5, bytes(4096))  # zeros never allocate
    assert lun.stored_bytes == 65536
    assert lun.read(12345678, 1) == b"\1" * 4096


def test_closed_file_lun_reports_not_ready(tmp_path):
    lun = FileBlockLun("c", tmp_path / "c.img", size=4096)
    lun.close()
    with pytest.raises(LunError) as ei:
        lun.read(0, 1)
    assert ei.value.key == SenseKey.NOT_READY


def test_designators_list_naa_first():
    lun = MemoryBlockLun("m", num_blocks=8, serial="abc")
    d = lun.designators()[0]
    assert (d.code_set, d.association, d.type, d.value) == (1, 0, 3, naa6_from_serial("abc"))
