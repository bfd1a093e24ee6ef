"""The emulated tape's index of its records at hundreds of thousands of records (tracemalloc): a tape that
holds a 16 TiB image as 256 KiB records has millions of them, and the LUN indexes them all."""
from __future__ import annotations

import tracemalloc

import pytest

from scsi.luns import TapeLun
from scsi.luns.base import LunError

MIB = 1 << 20


def test_a_tape_of_many_records_is_indexed_compactly(tmp_path):
    """100,000 one-byte records and 30,000 filemarks indexed on opening the tape: the old list of an Entry
    object per record peaked at 21.0 MiB; the index now keeps 17 bytes a record (2.1 MiB)."""
    n, marks = 100_000, 30_000
    data = bytes(i % 251 for i in range(n))
    tape = TapeLun("T1", tmp_path / "t.tape", create=True)
    tape.write(data, fixed=True, block_size=1)
    tape.write_filemarks(marks)
    tape.close()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        tape = TapeLun("T1", tmp_path / "t.tape")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    try:
        assert tape.end_of_data == n + marks
        assert tape.file_number(n) == 0 and tape.file_number(n + 7) == 7 and tape.file_number() == 0
        tape.locate(n - 3)
        assert tape.read(3, fixed=True, block_size=1) == data[-3:]
        with pytest.raises(LunError) as e:
            tape.read(1)
        assert e.value.filemark
        assert tape.file_number() == 1 and tape.position() == n + 1
        tape.locate(n // 2)
        tape.write(b"new")  # mid-tape: erases what follows
        assert tape.end_of_data == n // 2 + 1 and tape.file_number() == 0
        tape.locate(n // 2)
        assert tape.read(3) == b"new"
    finally:
        tape.close()
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"
