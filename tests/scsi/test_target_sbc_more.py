"""READ(6)/WRITE(6), WRITE AND VERIFY, PRE-FETCH, ORWRITE, COMPARE AND WRITE, RESERVE/RELEASE(6),
PREVENT ALLOW and GET LBA STATUS on a block LUN, in process; REPORT SUPPORTED OPERATION CODES
against the dispatch table."""
from __future__ import annotations

import struct
import threading

import pytest

from scsi.result import Nexus, Status
from scsi.sense import Sense
from tests.fixtures.inproc_scsi import A, B, key_asc, run

BLOCKS = 4096  # sizes the conftest's file LUN
SERIAL = "SBCMORE001"


def cdb16(op: int, lba: int, n: int, byte1: int = 0) -> bytes:
    return bytes([op, byte1]) + struct.pack(">QI", lba, n) + b"\0\0"


def caw(lba: int, n: int, byte1: int = 0) -> bytes:
    return bytes([0x89, byte1]) + struct.pack(">Q", lba) + bytes([0, 0, 0, n, 0, 0])


def rw6(op: int, lba: int, n: int) -> bytes:
    return bytes([op, (lba >> 16) & 0x1F, (lba >> 8) & 0xFF, lba & 0xFF, n, 0])


def read(dev, lba: int, n: int) -> bytes:
    r = run(dev, cdb16(0x88, lba, n))
    assert r.ok, r
    return r.data


# -- READ(6) / WRITE(6) -------------------------------------------------------------------------
def test_write6_read6_round_trip_and_zero_means_256_blocks(dev):
    data = bytes(range(256)) * 2 * 256  # 256 blocks
    assert run(dev, rw6(0x0A, 100, 0), data).ok
    assert read(dev, 100, 256) == data
    r = run(dev, rw6(0x08, 100, 0))
    assert r.ok and r.data == data
    assert dev.data_out_length(rw6(0x0A, 0, 0)) == 256 * 512


def test_read6_beyond_the_end_is_lba_out_of_range(dev):
    assert key_asc(run(dev, rw6(0x08, BLOCKS - 1, 2))) == (5, 0x21, 0)


# -- WRITE AND VERIFY ---------------------------------------------------------------------------
@pytest.mark.parametrize("cdb", [
    lambda lba, n, b1: bytes([0x2E, b1]) + struct.pack(">I", lba) + bytes([0]) + struct.pack(">H", n) + b"\0",
    lambda lba, n, b1: bytes([0xAE, b1]) + struct.pack(">II", lba, n) + b"\0\0",
    lambda lba, n, b1: cdb16(0x8E, lba, n, b1),
], ids=["10", "12", "16"])
def test_write_and_verify_writes_then_checks(dev, cdb):
    data = b"\x5a" * 1024
    for bytchk in (0, 0x02):
        assert run(dev, cdb(8, 2, bytchk), data).ok
        assert read(dev, 8, 2) == data
    assert key_asc(run(dev, cdb(BLOCKS - 1, 2, 0), data)) == (5, 0x21, 0)
    assert key_asc(run(dev, cdb(8, 2, 0x20), data)) == (5, 0x24, 0)  # WRPROTECT without PI
    assert key_asc(run(dev, cdb(8, 2, 0x04), data)) == (5, 0x24, 0)  # BYTCHK 10b reserved


# -- PRE-FETCH ------------------------------------------------------------------------------------
def test_pre_fetch_checks_the_range_only(dev):
    assert run(dev, bytes([0x34, 0x02, 0, 0, 0, 0, 0, 0, 8, 0])).ok
    assert run(dev, cdb16(0x90, BLOCKS - 8, 8, 0x02)).ok
    assert key_asc(run(dev, cdb16(0x90, BLOCKS - 8, 9))) == (5, 0x21, 0)


# -- ORWRITE --------------------------------------------------------------------------------------
def test_orwrite_ors_the_data_into_the_blocks(dev):
    assert run(dev, cdb16(0x8A, 0, 1), b"\x0f" * 512).ok
    assert run(dev, cdb16(0x8B, 0, 1), b"\xf0" * 256 + b"\x01" * 256).ok
    assert read(dev, 0, 1) == b"\xff" * 256 + b"\x0f" * 256
    assert key_asc(run(dev, cdb16(0x8B, 0, 1, 0x20), b"\0" * 512)) == (5, 0x24, 0)  # ORPROTECT


# -- COMPARE AND WRITE ------------------------------------------------------------------------------
def test_compare_and_write_writes_only_when_the_blocks_match(dev):
    old, new = b"A" * 1024, b"B" * 1024
    assert run(dev, cdb16(0x8A, 10, 2), old).ok
    assert run(dev, caw(10, 2), old + new).ok
    assert read(dev, 10, 2) == new
    r = run(dev, caw(10, 2), old[:700] + b"x" + old[701:] + b"C" * 1024)  # blocks hold "B": byte 0 differs
    assert key_asc(r) == (0x0E, 0x1D, 0)
    assert Sense.decode(r.sense).information == 0
    assert read(dev, 10, 2) == new  # nothing written on a miscompare
    r = run(dev, caw(10, 2), new[:513] + b"x" + new[514:] + b"C" * 1024)
    assert Sense.decode(r.sense).information == 513
    assert read(dev, 10, 2) == new


def test_compare_and_write_refuses_a_data_out_of_the_wrong_size(dev):
    """What libiscsi's InvalidDataOutSize sends: 4 blocks of data-out for NUMBER OF BLOCKS 1 and 3."""
    for n in (1, 3):
        assert key_asc(run(dev, caw(0, n), b"\xa6" * 4 * 512)) == (5, 0x24, 0)
    assert read(dev, 0, 4) == bytes(4 * 512)
    assert dev.data_out_length(caw(0, 3)) == 6 * 512


def test_compare_and_write_limits_and_vpd(dev):
    assert key_asc(run(dev, caw(BLOCKS - 1, 2), bytes(2048))) == (5, 0x21, 0)
    b0 = run(dev, bytes([0x12, 1, 0xB0, 0, 64, 0])).data
    assert b0[5] == 255  # MAXIMUM COMPARE AND WRITE LENGTH


def test_compare_and_write_is_atomic_against_writes_from_other_sessions(dev, lun):
    """Several "hosts" take an on-disk lock with COMPARE AND WRITE (VMware ATS) and increment a counter
    block under it, while another session keeps overwriting a neighbouring range: no increment is lost."""
    free, rounds, hosts = bytes(512), 40, 4
    counter_lba, lock_lba = 100, 99

    def host(i: int) -> None:
        nexus = Nexus(f"iqn.2026-12.org.test:h{i},i,0x8000000000{i:02x}", "dm", 0)
        mine = bytes([i + 1]) * 512
        done = 0
        while done < rounds:
            if not run(dev, caw(lock_lba, 1), free + mine, nexus).ok:
                continue  # someone else holds the lock
            value = int.from_bytes(read(dev, counter_lba, 1)[:8], "big")
            assert run(dev, cdb16(0x8A, counter_lba, 1), (value + 1).to_bytes(8, "big") + bytes(504), nexus).ok
            assert run(dev, caw(lock_lba, 1), mine + free, nexus).ok  # release
            done += 1

    stop = threading.Event()

    def noise() -> None:
        while not stop.is_set():
            lun.write(101, b"\xee" * 4096)

    threads = [threading.Thread(target=host, args=(i,)) for i in range(hosts)]
    n = threading.Thread(target=noise)
    n.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    n.join(10)
    assert int.from_bytes(read(dev, counter_lba, 1)[:8], "big") == hosts * rounds
    assert read(dev, lock_lba, 1) == free


def test_range_lock_holds_writes_out_while_a_compare_and_write_runs(lun):
    held, wrote = threading.Event(), threading.Event()
    with lun.ranges.hold(0, 8, exclusive=True):
        t = threading.Thread(target=lambda: (lun.write(4, b"z" * 512), wrote.set()))
        t.start()
        held.wait(0.3)
        assert not wrote.is_set()  # the overlapping write waits
        lun.write(8, b"y" * 512)  # a write next to the range does not
    t.join(5)
    assert wrote.is_set()


# -- RESERVE(6) / RELEASE(6) / PREVENT ALLOW -----------------------------------------------------
RESERVE6, RELEASE6 = bytes([0x16, 0, 0, 0, 0, 0]), bytes([0x17, 0, 0, 0, 0, 0])
MODE_SENSE6 = bytes([0x1A, 0, 0x3F, 0, 255, 0])


def test_reserve6_between_two_nexuses(dev):
    assert run(dev, RESERVE6).ok and run(dev, RESERVE6).ok  # the holder may reserve again
    assert run(dev, RESERVE6, nexus=B).status == Status.RESERVATION_CONFLICT
    assert run(dev, RELEASE6, nexus=B).ok  # a no-op from a non-holder
    assert run(dev, MODE_SENSE6).ok
    assert run(dev, MODE_SENSE6, nexus=B).status == Status.RESERVATION_CONFLICT
    assert run(dev, bytes([0x12, 0, 0, 0, 36, 0]), nexus=B).ok  # INQUIRY passes
    assert run(dev, RELEASE6).ok
    assert run(dev, RESERVE6, nexus=B).ok and run(dev, RELEASE6, nexus=B).ok


def test_reserve6_ends_with_the_nexus_and_with_a_lun_reset(dev):
    assert run(dev, RESERVE6).ok
    dev.nexus_lost(A.initiator)
    assert run(dev, RESERVE6, nexus=B).ok
    dev.lun_reset(A)
    assert run(dev, bytes([0x03, 0, 0, 0, 252, 0]), nexus=B).ok  # REQUEST SENSE takes the unit attention
    assert run(dev, RESERVE6).ok


def test_reserve6_conflicts_while_persistent_reservations_are_in_use(dev):
    register = bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0])
    assert run(dev, register, bytes(8) + (1).to_bytes(8, "big") + bytes(8)).ok
    assert run(dev, RESERVE6).status == Status.RESERVATION_CONFLICT
    assert key_asc(run(dev, bytes([0x16, 0x01, 0, 0, 0, 0]), nexus=B)) == (5, 0x24, 0)  # extents: refused


def test_prevent_allow_is_accepted_and_refused_for_bad_fields(dev):
    assert run(dev, bytes([0x1E, 0, 0, 0, 1, 0])).ok
    assert A.it in dev.reserve6.preventing
    assert run(dev, bytes([0x1E, 0, 0, 0, 0, 0])).ok
    assert A.it not in dev.reserve6.preventing


# -- GET LBA STATUS -----------------------------------------------------------------------------
def _lba_status(dev, lba: int, alloc: int) -> list[tuple[int, int, int]]:
    r = run(dev, bytes([0x9E, 0x12]) + struct.pack(">QI", lba, alloc) + b"\0\0")
    assert r.ok, r
    total = int.from_bytes(r.data[:4], "big")
    body = r.data[8:4 + total]
    return [(int.from_bytes(body[i:i + 8], "big"), int.from_bytes(body[i + 8:i + 12], "big"), body[i + 12] & 0xF)
            for i in range(0, len(body) - 15, 16)]


def test_get_lba_status_describes_the_range_asked_for_in_several_descriptors(dev):
    assert run(dev, cdb16(0x8A, 64, 64), b"d" * 64 * 512).ok  # mapped 64..127, holes around it
    got = _lba_status(dev, 8, 1024)
    assert got[0][0] == 8  # the first descriptor starts at the LBA asked for
    assert got[:3] == [(8, 56, 1), (64, 64, 0), (128, BLOCKS - 128, 1)]
    assert _lba_status(dev, 70, 24) == [(70, 58, 0)]  # allocation length: one descriptor
    assert key_asc(run(dev, bytes([0x9E, 0x12]) + struct.pack(">QI", BLOCKS, 24) + b"\0\0")) == (5, 0x21, 0)


# -- REPORT SUPPORTED OPERATION CODES is the dispatch table ---------------------------------------------
def test_report_supported_opcodes_lists_exactly_what_dispatches(dev):
    r = run(dev, bytes([0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0]))
    assert r.ok
    n = int.from_bytes(r.data[:4], "big")
    listed = set()
    for i in range(4, 4 + n, 8):
        d = r.data[i:i + 8]
        listed.add((d[0], int.from_bytes(d[2:4], "big") if d[5] & 1 else None))
    assert listed == set(dev.commands)
    for op in (0x08, 0x0A, 0x16, 0x17, 0x1E, 0x2E, 0x34, 0x89, 0x8B, 0x8E, 0x90, 0xAE):
        assert (op, None) in listed, hex(op)
    # Every listed command really runs (no INVALID COMMAND OPERATION CODE) ...
    for op, sa in listed:
        cdb = bytearray(16)
        cdb[0] = op
        if sa is not None:
            cdb[1] = sa
        res = run(dev, bytes(cdb))
        if res.status == Status.CHECK_CONDITION:
            assert key_asc(res)[1:] != (0x20, 0x00), hex(op)
    # ... and an unlisted one does not.
    assert key_asc(run(dev, bytes([0x8C] + [0] * 15)))[1:] == (0x20, 0)
    assert key_asc(run(dev, bytes([0x9E, 0x1F] + [0] * 14)))[1] == 0x24  # unknown service action


def test_unmap_waits_for_a_compare_and_write_on_the_same_blocks(dev, lun):
    """UNMAP deallocates (a write of zeros): it holds the blocks' range like every other write."""
    assert run(dev, cdb16(0x8A, 0, 8), b"u" * 4096).ok
    done = threading.Event()
    unmap = bytes([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0])
    params = bytes([0, 22, 0, 16]) + bytes(4) + struct.pack(">QI", 0, 8) + bytes(4)
    with lun.ranges.hold(0, 8, exclusive=True):
        t = threading.Thread(target=lambda: (run(dev, unmap, params), done.set()))
        t.start()
        assert not done.wait(0.3)
    t.join(5)
    assert done.is_set() and read(dev, 0, 8) == bytes(4096)
