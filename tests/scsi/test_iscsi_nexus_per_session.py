"""Each iSCSI session is its own I_T nexus (``iqn,i,0x<ISID>``): copy results are not shared between two
sessions of one initiator, ACLs still match the bare IQN, and a closed session's results are forgotten."""
from __future__ import annotations

import os
import struct
import time

import pytest

from scsi.iscsi.connection import initiator_port_name
from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config
from scsi.xcopy.cscd import IdentificationCscd
from scsi.xcopy.param_list import ParameterList
from scsi.xcopy.segments import BlockToBlock

TARGET = "iqn.2026-11.org.serverfree:dm-nexus"
MOVER = "iqn.2026-11.org.serverfree:mover"
OTHER = "iqn.2026-11.org.serverfree:other"
BLOCKS = 1024


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("nexus")
    luns = []
    for n in range(2):
        p = d / f"l{n}.img"
        p.write_bytes(os.urandom(BLOCKS * 512))
        luns.append({"id": n, "path": str(p)})
    cfg = parse_config({"target": TARGET, "luns": luns,
                        "acl": [{"initiator": MOVER, "luns": "all"}, {"initiator": OTHER, "luns": [0]}]})
    built = build_target(cfg, with_copy_manager=True)
    t = ThreadedTarget([built.node]).start()
    yield t, built
    t.stop()
    built.close()


def _xcopy(built, list_id: int) -> tuple[bytes, bytes]:
    cscds = tuple(IdentificationCscd(designator=built.luns[n].naa.hex(), block_length=512) for n in (0, 1))
    data = ParameterList(header={"list_id": list_id}, cscds=cscds,
                         segments=(BlockToBlock(src=0, dst=1, block_count=8, src_lba=0, dst_lba=200),)).encode()
    return bytes([0x83, 0]) + bytes(8) + struct.pack(">I", len(data)) + b"\0\0", data


def _copy_status_cdb(list_id: int) -> bytes:
    return bytes([0x84, 0x00, list_id]) + bytes(7) + struct.pack(">I", 64) + b"\0\0"


def _session(t, name, isid):
    async def go():
        ini = Initiator("127.0.0.1", t.port, name=name, isid=isid)
        await ini.connect()
        await ini.login(TARGET)
        return ini
    return t.run(go())


def test_port_name_follows_spc():
    assert initiator_port_name(MOVER, bytes.fromhex("80123456789a")) == f"{MOVER},i,0x80123456789a"


def test_two_sessions_of_one_initiator_keep_separate_copy_results(setup):
    t, built = setup
    a = _session(t, MOVER, bytes.fromhex("800000000001"))
    b = _session(t, MOVER, bytes.fromhex("800000000002"))
    cdb, data = _xcopy(built, 41)

    async def go():
        done = await a.command(cdb, write_data=data)
        mine = await a.command(_copy_status_cdb(41), read_len=64)
        theirs = await b.command(_copy_status_cdb(41), read_len=64)
        await a.close()
        await b.close()
        return done, mine, theirs
    done, mine, theirs = t.run(go())
    assert done.status == 0, done.sense.hex()
    assert mine.status == 0 and mine.data[4] & 0x7F == 0x01  # COMPLETED on the session that copied
    assert theirs.status == 2  # another I_T nexus: no such list (ILLEGAL REQUEST)
    assert Sense.decode(theirs.sense).key == 0x5


def test_acl_still_matches_the_bare_iqn(setup):
    t, built = setup
    ini = _session(t, OTHER, bytes.fromhex("800000000003"))

    async def go():
        seen = await ini.command(bytes([0xA0, 0, 0, 0, 0, 0]) + struct.pack(">I", 256) + b"\0\0", read_len=256)
        hidden = await ini.command(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), lun=1, read_len=512)
        await ini.close()
        return seen, hidden
    seen, hidden = t.run(go())
    assert struct.unpack(">I", seen.data[:4])[0] == 8  # exactly LUN 0, as its ACL entry says
    assert hidden.status == 2


def test_closing_a_session_forgets_its_copy_results(setup):
    t, built = setup
    isid = bytes.fromhex("800000000004")
    a = _session(t, MOVER, isid)
    cdb, data = _xcopy(built, 42)

    it = (initiator_port_name(MOVER, isid), TARGET)
    records = built.copy_manager.records

    async def go():
        r = await a.command(cdb, write_data=data)
        kept = records.get(it, 42) is not None  # held under this session's own nexus
        await a.logout()
        await a.close()
        return r, kept
    r, kept = t.run(go())
    assert r.status == 0 and kept
    for _ in range(100):  # the target closes the connection asynchronously after logout
        if records.get(it, 42) is None:
            break
        time.sleep(0.05)
    assert records.get(it, 42) is None
