"""Persistent reservations (PR IN / PR OUT, RESERVATION CONFLICT, 2Ah unit attentions), byte by byte.

CDBs and parameter lists are built here with struct, independently of the
layouts in scsi.target.reservations, so a wrong offset there shows up.
"""
from __future__ import annotations

import struct

import pytest

from scsi.result import Nexus, ScsiResult, Status
from scsi.sense import SenseKey
from tests.fixtures.inproc_scsi import A, B, run, sense_of
from tests.fixtures.inproc_scsi import key_asc as asc

C = Nexus("iqn.2026-11.org.test:c,i,0x400001370003", "iqn.2026-11.org.test:dm", 0)
WE, EA, WE_RO, EA_RO, WE_AR, EA_AR = 1, 3, 5, 6, 7, 8
TUR = bytes(6)
READ10 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])
WRITE10 = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0])


@pytest.fixture
def dev(mem_dev):
    return mem_dev


def prout(dev, nexus, sa, key=0, sa_key=0, type_=0, scope=0, flags=0, length=24) -> ScsiResult:
    cdb = bytes([0x5F, sa, (scope << 4) | type_, 0, 0]) + struct.pack(">I", length) + b"\0"
    params = struct.pack(">QQ4xB3x", key, sa_key, flags)
    return run(dev, cdb, params[:length], nexus)


def prin(dev, sa, nexus=A, alloc=1024) -> bytes:
    r = run(dev, bytes([0x5E, sa, 0, 0, 0, 0, 0]) + struct.pack(">H", alloc) + b"\0", nexus=nexus)
    assert r.status == Status.GOOD, r
    return r.data


def keys(dev) -> tuple[int, list[int]]:
    data = prin(dev, 0)
    gen, length = struct.unpack(">II", data[:8])
    return gen, [struct.unpack(">Q", data[8 + i:16 + i])[0] for i in range(0, length, 8)]


def reservation(dev) -> tuple[int, int] | None:
    data = prin(dev, 1)
    if struct.unpack(">I", data[4:8])[0] == 0:
        return None
    assert len(data) == 24
    return struct.unpack(">Q", data[8:16])[0], data[21]


def ok(r: ScsiResult) -> None:
    assert r.status == Status.GOOD, (r.status, r.sense.hex())


def conflict(r: ScsiResult) -> None:
    assert r.status == Status.RESERVATION_CONFLICT and r.sense == b"", r


def test_register_read_keys_and_generation(dev):
    assert keys(dev) == (0, [])
    ok(prout(dev, A, 0, sa_key=0xAAAA))
    ok(prout(dev, B, 0, sa_key=0xBBBB))
    assert keys(dev) == (2, [0xAAAA, 0xBBBB])
    conflict(prout(dev, A, 0, key=0x1234, sa_key=0xCCCC))  # wrong current key
    ok(prout(dev, A, 0, key=0xAAAA, sa_key=0xA1))  # change key
    ok(prout(dev, B, 6, key=0x9999, sa_key=0xB1))  # REGISTER AND IGNORE EXISTING KEY
    assert keys(dev) == (4, [0xA1, 0xB1])
    ok(prout(dev, A, 0, key=0xA1, sa_key=0))  # unregister
    assert keys(dev) == (5, [0xB1])
    conflict(prout(dev, C, 0, key=0x77, sa_key=0x78))  # unregistered nexus with a non-zero key


def test_read_keys_truncates_to_allocation_length(dev):
    ok(prout(dev, A, 0, sa_key=0x0102030405060708))
    assert prin(dev, 0, alloc=12) == bytes([0, 0, 0, 1, 0, 0, 0, 8, 1, 2, 3, 4])


def test_report_capabilities_bytes(dev):
    assert prin(dev, 2) == bytes([0, 8, 0, 0x80, 0xEA, 0x01, 0, 0])


def test_reserve_read_reservation_and_release(dev):
    ok(prout(dev, A, 0, sa_key=0xAA))
    conflict(prout(dev, B, 1, key=0xBB, type_=WE))  # unregistered: RESERVE refused
    ok(prout(dev, A, 1, key=0xAA, type_=EA))
    assert prin(dev, 1)[:24] == bytes([0, 0, 0, 1, 0, 0, 0, 16]) + struct.pack(">Q", 0xAA) + bytes([0] * 5 + [EA, 0, 0])
    ok(prout(dev, A, 1, key=0xAA, type_=EA))  # same holder, same type: GOOD
    conflict(prout(dev, A, 1, key=0xAA, type_=WE))  # different type
    assert asc(prout(dev, A, 2, key=0xAA, type_=WE)) == (SenseKey.ILLEGAL_REQUEST, 0x26, 0x04)
    ok(prout(dev, A, 2, key=0xAA, type_=EA))
    assert reservation(dev) is None


@pytest.mark.parametrize("type_,read_ok", [(WE, True), (EA, False)])
def test_reservation_conflict_for_other_nexus(dev, type_, read_ok):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, B, 0, sa_key=0xBB))
    ok(prout(dev, A, 1, key=0xAA, type_=type_))
    ok(run(dev, WRITE10, bytes(512), A))
    ok(run(dev, READ10, nexus=A))
    conflict(run(dev, WRITE10, bytes(512), B))  # registered but not holder
    conflict(run(dev, WRITE10, bytes(512), C))
    for n in (B, C):
        r = run(dev, READ10, nexus=n)
        ok(r) if read_ok else conflict(r)
        ok(run(dev, TUR, nexus=n))  # always allowed
        ok(run(dev, bytes([0x12, 0, 0, 0, 36, 0]), nexus=n))  # INQUIRY


@pytest.mark.parametrize("type_", [WE_RO, EA_RO, WE_AR, EA_AR])
def test_registrants_types_let_every_registrant_in(dev, type_):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, B, 0, sa_key=0xBB))
    ok(prout(dev, A, 1, key=0xAA, type_=type_))
    ok(run(dev, WRITE10, bytes(512), B))
    conflict(run(dev, WRITE10, bytes(512), C))
    held = reservation(dev)
    assert held == ((0 if type_ in (WE_AR, EA_AR) else 0xAA), type_)


def test_release_of_registrants_only_gives_reservations_released(dev):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, B, 0, sa_key=0xBB))
    ok(prout(dev, A, 1, key=0xAA, type_=WE_RO))
    ok(prout(dev, A, 2, key=0xAA, type_=WE_RO))
    assert asc(run(dev, TUR, nexus=B)) == (SenseKey.UNIT_ATTENTION, 0x2A, 0x04)
    ok(run(dev, TUR, nexus=B))
    ok(run(dev, TUR, nexus=A))  # the releaser gets none


def test_unregistering_holder_releases_reservation(dev):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, A, 1, key=0xAA, type_=EA))
    ok(prout(dev, A, 0, key=0xAA, sa_key=0))
    assert reservation(dev) is None
    ok(run(dev, WRITE10, bytes(512), B))


def test_clear_removes_everything_and_preempts_others(dev):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, B, 0, sa_key=0xBB))
    ok(prout(dev, A, 1, key=0xAA, type_=EA))
    conflict(prout(dev, C, 3, key=0xCC))  # unregistered nexus may not CLEAR
    ok(prout(dev, B, 3, key=0xBB))
    assert asc(run(dev, TUR, nexus=A)) == (SenseKey.UNIT_ATTENTION, 0x2A, 0x03)
    assert keys(dev)[1] == [] and reservation(dev) is None
    ok(run(dev, TUR, nexus=B))


@pytest.mark.parametrize("sa", [4, 5])
def test_preempt_takes_over_the_reservation(dev, sa):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, B, 0, sa_key=0xBB))
    ok(prout(dev, A, 1, key=0xAA, type_=EA))
    ok(prout(dev, B, sa, key=0xBB, sa_key=0xAA, type_=WE))
    assert asc(run(dev, TUR, nexus=A)) == (SenseKey.UNIT_ATTENTION, 0x2A, 0x05)
    assert keys(dev)[1] == [0xBB]
    assert reservation(dev) == (0xBB, WE)
    conflict(run(dev, WRITE10, bytes(512), A))
    ok(run(dev, WRITE10, bytes(512), B))


def test_preempt_without_reservation_removes_registration(dev):
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, B, 0, sa_key=0xBB))
    ok(prout(dev, A, 4, key=0xAA, sa_key=0xBB, type_=WE))
    assert keys(dev)[1] == [0xAA] and reservation(dev) is None
    conflict(prout(dev, A, 4, key=0xAA, sa_key=0x99, type_=WE))  # nothing with that key
    assert asc(prout(dev, A, 4, key=0xAA, sa_key=0, type_=WE))[1:] == (0x26, 0x00)


def test_preempt_all_registrants_with_key_zero(dev):
    for n, k in ((A, 0xAA), (B, 0xBB), (C, 0xCC)):
        ok(prout(dev, n, 0, sa_key=k))
    ok(prout(dev, A, 1, key=0xAA, type_=EA_AR))
    ok(prout(dev, C, 4, key=0xCC, sa_key=0, type_=EA))
    for n in (A, B):
        assert asc(run(dev, TUR, nexus=n)) == (SenseKey.UNIT_ATTENTION, 0x2A, 0x05)
    assert keys(dev)[1] == [0xCC] and reservation(dev) == (0xCC, EA)


def test_bad_prout_cdbs_and_parameter_lists(dev):
    ok(prout(dev, A, 0, sa_key=0xAA))
    assert asc(prout(dev, A, 1, key=0xAA, type_=2)) == (SenseKey.ILLEGAL_REQUEST, 0x24, 0x00)  # bad type
    r = prout(dev, A, 1, key=0xAA, type_=WE, scope=1)
    assert asc(r) == (SenseKey.ILLEGAL_REQUEST, 0x24, 0x00)
    assert sense_of(r).sks.byte == 2
    assert asc(prout(dev, A, 7, key=0xAA)) == (SenseKey.ILLEGAL_REQUEST, 0x24, 0x00)  # REGISTER AND MOVE
    assert asc(prout(dev, A, 0, key=0xAA, sa_key=1, length=20)) == (SenseKey.ILLEGAL_REQUEST, 0x1A, 0x00)
    assert asc(prout(dev, A, 0, key=0xAA, sa_key=1, flags=0x01)) == (SenseKey.ILLEGAL_REQUEST, 0x26, 0x00)  # APTPL
    assert keys(dev)[1] == [0xAA]  # none of these changed anything


def test_data_out_length_and_read_full_status(dev):
    assert dev.data_out_length(bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0])) == 24
    ok(prout(dev, A, 0, sa_key=0xAA))
    ok(prout(dev, A, 1, key=0xAA, type_=WE))
    data = prin(dev, 3)
    assert data[8:16] == struct.pack(">Q", 0xAA) and data[20] == 0x01 and data[21] == WE
    tid = data[32:]
    assert tid[0] == 0x45 and tid[4:].rstrip(b"\0") == A.initiator.encode()
    assert struct.unpack(">I", data[28:32])[0] == len(tid) and len(tid) % 4 == 0


def test_report_supported_opcodes_lists_prout(dev):
    r = run(dev, bytes([0xA3, 0x0C, 0x02, 0x5F, 0x00, 0x01, 0, 0, 1, 0, 0, 0]))
    ok(r)
    assert r.data[1] & 0x07 == 0b011 and r.data[4:14] == bytes([0x5F, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0])
