"""Per-initiator ACL end to end: what a limited initiator sees, and that it cannot copy a hidden LUN."""
from __future__ import annotations

import os
import struct

import pytest

from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator, InitiatorError
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config
from scsi.xcopy.cscd import IdentificationCscd
from scsi.xcopy.param_list import ParameterList
from scsi.xcopy.segments import BlockToBlock

TARGET = "iqn.2026-11.org.serverfree:dm-acl"
LIMITED = "iqn.2026-11.org.serverfree:limited"
TRUSTED = "iqn.2026-11.org.serverfree:trusted"
BLOCKS = 2048


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("acl")
    luns = []
    for n in range(2):
        p = d / f"l{n}.img"
        p.write_bytes(os.urandom(BLOCKS * 512))
        luns.append({"id": n, "path": str(p)})
    cfg = parse_config({"target": TARGET, "luns": luns,
                        "acl": [{"initiator": LIMITED, "luns": [0]}, {"initiator": TRUSTED, "luns": "all"}]})
    built = build_target(cfg, with_copy_manager=True)
    t = ThreadedTarget([built.node]).start()
    yield t, built
    t.stop()
    built.close()


def _xcopy(built, list_id: int, src: int, dst: int, blocks: int = 16) -> tuple[bytes, bytes]:
    cscds = tuple(IdentificationCscd(designator=built.luns[n].naa.hex(), block_length=512) for n in (src, dst))
    plist = ParameterList(header={"list_id": list_id}, cscds=cscds,
                          segments=(BlockToBlock(src=0, dst=1, block_count=blocks, src_lba=0, dst_lba=100),))
    data = plist.encode()
    return bytes([0x83, 0]) + bytes(8) + struct.pack(">I", len(data)) + b"\0\0", data


def _session(t, name):
    async def go():
        ini = Initiator("127.0.0.1", t.port, name=name)
        await ini.connect()
        await ini.login(TARGET)
        return ini
    return t.run(go())


REPORT_LUNS = bytes([0xA0, 0, 0, 0, 0, 0]) + struct.pack(">I", 256) + b"\0\0"


def test_limited_initiator_sees_only_its_lun(setup):
    t, built = setup
    ini = _session(t, LIMITED)

    async def go():
        rl = await ini.command(REPORT_LUNS, read_len=256)
        hidden = await ini.command(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), lun=1, read_len=512)
        await ini.close()
        return rl, hidden
    rl, hidden = t.run(go())
    assert struct.unpack(">I", rl.data[:4])[0] == 8 and rl.data[8:10] == b"\0\0"
    s = Sense.decode(hidden.sense)
    assert hidden.status == 2 and (s.asc, s.ascq) == (0x25, 0x00)


def test_naming_a_hidden_lun_in_a_descriptor_is_refused(setup):
    t, built = setup
    before = built.luns[1].read(100, 16)
    cdb, data = _xcopy(built, 7, src=0, dst=1)
    ini = _session(t, LIMITED)

    async def go():
        r = await ini.command(cdb, lun=0, write_data=data)
        await ini.close()
        return r
    r = t.run(go())
    s = Sense.decode(r.sense)
    assert r.status == 2 and (s.asc, s.ascq) == (0x0D, 0x02)  # COPY TARGET DEVICE NOT REACHABLE
    assert built.luns[1].read(100, 16) == before


def test_trusted_initiator_copies_between_the_same_luns(setup):
    t, built = setup
    cdb, data = _xcopy(built, 8, src=0, dst=1)
    ini = _session(t, TRUSTED)

    async def go():
        r = await ini.command(cdb, lun=1, write_data=data)
        await ini.close()
        return r
    r = t.run(go())
    assert r.status == 0, Sense.decode(r.sense) if r.sense else r
    assert built.luns[1].read(100, 16) == built.luns[0].read(0, 16)


def test_initiator_without_acl_entry_cannot_log_in(setup):
    t, _ = setup

    async def go():
        ini = Initiator("127.0.0.1", t.port, name="iqn.2026-11.org.serverfree:stranger")
        await ini.connect()
        try:
            await ini.login(TARGET)
        except InitiatorError:
            pass
        await ini.close()
        return ini.login_status
    assert t.run(go()) == 0x0202
