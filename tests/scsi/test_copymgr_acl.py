"""Attack suite: an initiator may copy only between LUNs its ACL lets it reach.

Alice may reach LUN A (and her scratch LUN S); Bob's secret LUN B is not hers.
Every way of naming B in a descriptor -- as source, destination, through a
second descriptor, a verify segment, an FC address -- must end in COPY
ABORTED 0Dh/02h COPY TARGET DEVICE NOT REACHABLE with a log line, and B's
data must not move.
"""
from __future__ import annotations

import logging

import pytest

from scsi.copymgr import CopyManager, FcMapEntry
from scsi.copymgr.client import Client, cscd_for_lun, sense_of
from scsi.luns import MemoryBlockLun
from scsi.result import Nexus
from scsi.sense import SenseKey
from scsi.xcopy import (BlockOffsetToBlockOffset, BlockToBlock, FcPortNameCscd, Header, IdentificationCscd,
                        ParameterList, VerifyCscd, lu_identifier_for)

ALICE = Nexus("iqn.2024-01.example:alice", "iqn.mover")
BOB = Nexus("iqn.2024-01.example:bob", "iqn.mover")
SECRET = b"TOP-SECRET-B" * 128


@pytest.fixture
def site():
    a = MemoryBlockLun("A", num_blocks=256, serial="lun-a")
    s = MemoryBlockLun("S", num_blocks=256, serial="lun-s")
    b = MemoryBlockLun("B", num_blocks=256, serial="lun-b")
    b.write(0, SECRET[:1536])
    fc = [FcMapEntry(lun="B", lun_number=2, wwpn="500a0b8000000002"),
          FcMapEntry(lun="A", lun_number=1, wwpn="500a0b8000000001")]
    m = CopyManager({"A": a, "S": s, "B": b},
                    acl={ALICE.initiator: ["A", "S"], BOB.initiator: ["B"]}, fc_map=fc)
    yield m, a, s, b
    m.close()


def b2b(src, dst, n=3, src_lba=0, dst_lba=0):
    return BlockToBlock(src=src, dst=dst, block_count=n, src_lba=src_lba, dst_lba=dst_lba)


def refused(r, caplog):
    s = sense_of(r)
    assert (s.key, s.asc, s.ascq) == (SenseKey.COPY_ABORTED, 0x0D, 0x02), str(s)
    assert any("may not reach" in rec.getMessage() for rec in caplog.records)


def attacks(a, s, b):
    """(name, ParameterList) pairs that each name LUN B somewhere Alice must not reach."""
    A, S, B = cscd_for_lun(a), cscd_for_lun(s), cscd_for_lun(b)
    B_by_naa_only = IdentificationCscd(designator=b.naa.hex(), block_length=0)
    B_fc = FcPortNameCscd(n_port_name="500a0b8000000002", lu_identifier=lu_identifier_for(2), block_length=512)
    h = Header(list_id=1)
    return [
        ("read B into A", ParameterList(header=h, cscds=(B, A), segments=(b2b(0, 1),))),
        ("write over B", ParameterList(header=h, cscds=(A, B), segments=(b2b(0, 1),))),
        ("B as both ends", ParameterList(header=h, cscds=(B,), segments=(b2b(0, 0, dst_lba=10),))),
        ("B hidden behind a good first segment",
         ParameterList(header=h, cscds=(A, S, B), segments=(b2b(0, 1), b2b(2, 1)))),
        ("B without block length", ParameterList(header=h, cscds=(B_by_naa_only, S), segments=(b2b(0, 1),))),
        ("B by byte offsets", ParameterList(header=h, cscds=(B, S), segments=(
            BlockOffsetToBlockOffset(src=0, dst=1, byte_count=100, src_lba=0, dst_lba=0),))),
        ("probe B with verify", ParameterList(header=h, cscds=(B,), segments=(VerifyCscd(src=0, tur=True),))),
        ("B through its FC address", ParameterList(header=h, cscds=(B_fc, S), segments=(b2b(0, 1),))),
    ]


@pytest.mark.parametrize("index", range(8))
def test_alice_cannot_reach_b(site, caplog, index):
    m, a, s, b = site
    name, pl = attacks(a, s, b)[index]
    before_s = s.read(0, 256)
    caplog.set_level(logging.WARNING)
    refused(Client(m, ALICE).xcopy(pl), caplog)
    assert s.read(0, 256) == before_s, name  # nothing of B landed anywhere
    assert b.read(0, 3) == SECRET[:1536], name  # and B is untouched
    assert m.counters["refused"] == 1


def test_a_good_segment_before_the_bad_one_does_not_run(site, caplog):
    """Resolution happens before any data moves, so even segment 0 (A->S) is not copied."""
    m, a, s, b = site
    a.write(0, b"\x11" * 1536)
    pl = attacks(a, s, b)[3][1]
    caplog.set_level(logging.WARNING)
    refused(Client(m, ALICE).xcopy(pl), caplog)
    assert s.read(0, 3) == bytes(1536)


def test_unknown_initiator_reaches_nothing(site, caplog):
    m, a, s, b = site
    caplog.set_level(logging.WARNING)
    pl = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(a), cscd_for_lun(s)), segments=(b2b(0, 1),))
    s_ = sense_of(Client(m, Nexus("iqn.mallory", "iqn.mover")).xcopy(pl))
    assert (s_.asc, s_.ascq) == (0x0D, 0x02)


def test_permitted_copies_still_work(site):
    m, a, s, b = site
    a.write(0, b"\x22" * 1536)
    ok = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(a), cscd_for_lun(s)), segments=(b2b(0, 1),))
    assert Client(m, ALICE).xcopy(ok).ok and s.read(0, 3) == b"\x22" * 1536
    mine = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(b),), segments=(b2b(0, 0, dst_lba=50),))
    assert Client(m, BOB).xcopy(mine).ok and b.read(50, 3) == SECRET[:1536]


def test_initiator_name_with_session_suffix_matches_its_acl(site):
    m, a, s, b = site
    nexus = Nexus(ALICE.initiator + ",i,0x23d000000001", "iqn.mover")
    ok = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(a), cscd_for_lun(s)), segments=(b2b(0, 1),))
    assert Client(m, nexus).xcopy(ok).ok


def test_acl_naming_unknown_lun_is_a_config_error():
    with pytest.raises(ValueError, match="unknown LUN"):
        CopyManager({"A": MemoryBlockLun("A", num_blocks=8)}, acl={"iqn.x": ["A", "Z"]})


def test_for_target_maps_lun_numbers_and_acl_function():
    a, b = MemoryBlockLun("lun0", num_blocks=8), MemoryBlockLun("lun1", num_blocks=8)
    allowed = {ALICE.initiator: frozenset({0}), BOB.initiator: None}
    m = CopyManager.for_target(object(), {0: a, 1: b}, lambda who: allowed.get(who, frozenset()))
    assert set(m.reachable(ALICE.initiator)) == {"lun0"}
    assert set(m.reachable(BOB.initiator)) == {"lun0", "lun1"}
    assert m.reachable("iqn.nobody") == {}
    m.close()
