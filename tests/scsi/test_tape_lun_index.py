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


def _reference_scan(path):
    """Indexing as it was: each entry header read and decoded strictly on its own."""
    from scsi.layout import LayoutError
    from scsi.luns.tape_format import ENTRY_HEADER, FILEMARK, RECORD, TAPE_HEADER, TapeFormatError

    data = path.read_bytes()
    pos, out = TAPE_HEADER.size, []
    while pos < len(data):
        raw = data[pos:pos + ENTRY_HEADER.size]
        if len(raw) < ENTRY_HEADER.size:
            raise TapeFormatError(str(path), pos, f"entry {len(out)} header is torn ({len(raw)} of "
                                  f"{ENTRY_HEADER.size} bytes)")
        try:
            e = ENTRY_HEADER.unpack_from(raw, 0, pos=pos)
        except LayoutError as err:
            raise TapeFormatError(str(path), err.offset or pos, f"entry {len(out)}: {err.message}") from err
        if e["kind"] not in (RECORD, FILEMARK):
            raise TapeFormatError(str(path), pos, f"entry {len(out)} has unknown kind {e['kind']:#04x}")
        if e["kind"] == FILEMARK and e["length"]:
            raise TapeFormatError(str(path), pos + 4, f"filemark entry {len(out)} claims {e['length']} data bytes")
        end = pos + ENTRY_HEADER.size + e["length"]
        if end > len(data):
            raise TapeFormatError(str(path), pos + 4, f"entry {len(out)} claims {e['length']} bytes but only "
                                  f"{len(data) - pos - ENTRY_HEADER.size} remain")
        out.append((pos, e["kind"], e["length"], e["crc32"]))
        pos = end
    return out


def test_indexing_reads_ahead_and_names_damage_as_before(tmp_path):
    """Small entries read many to a read, large ones header by header: the same index, and for a damaged
    file (a byte changed, the file cut) the same error, as reading each header on its own."""
    import random

    from scsi.luns.tape_format import SCAN_READ, TapeFormatError, scan

    rng = random.Random(3)
    path = tmp_path / "t.tape"
    tape = TapeLun("T1", path, create=True)
    for i in range(300):
        tape.write(rng.randbytes(rng.choice((1, 7, 100, 4000, SCAN_READ - 5, SCAN_READ, SCAN_READ + 9))))
        if i % 37 == 0:
            tape.write_filemarks(rng.randrange(1, 4))
    tape.close()
    good = path.read_bytes()
    heads = [pos for pos, *_ in _reference_scan(path)]
    cases = [good] + [good[:rng.randrange(32, len(good))] for _ in range(30)] + \
        [good[:rng.choice(heads) + rng.randrange(12)] for _ in range(30)]
    for _ in range(150):  # mostly in an entry header, where damage shows
        b = bytearray(good)
        b[rng.choice(heads) + rng.randrange(12) if rng.random() < 0.8 else rng.randrange(32, len(b))] = \
            rng.randrange(256)
        cases.append(bytes(b))
    damaged = 0
    for case in cases:
        path.write_bytes(case)
        try:
            want = _reference_scan(path)
        except TapeFormatError as e:
            want, damaged = str(e), damaged + 1
        with open(path, "rb") as f:
            try:
                _, got = scan(f.fileno(), str(path))
                got = [(e.offset, e.kind, e.length, e.crc32) for e in got]
            except TapeFormatError as e:
                got = str(e)
        assert got == want
    assert damaged > 100  # most cases are damage the index must name
