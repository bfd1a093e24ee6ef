"""SSC basics of a tape LUN served by the target (in process, and once over iSCSI)."""
from __future__ import annotations

import struct

import pytest

from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator
from scsi.luns.tape import TapeLun
from scsi.result import Nexus, Status
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config
from scsi.target.tapedev import TapeLunDevice

NEXUS = Nexus("iqn.2026-11.org.test:host")


@pytest.fixture
def tape(tmp_path):
    lun = TapeLun("t0", tmp_path / "tape.bin", create=True)
    dev = TapeLunDevice(lun)
    yield dev
    lun.close()


def run(dev, cdb, data=b"", n=65536):
    return dev.execute(NEXUS, bytes(cdb), data, n)


def rw6(op, n, fixed=0, sili=0):
    return bytes([op, (sili << 1) | fixed]) + n.to_bytes(3, "big") + b"\0"


def test_inquiry_reports_a_removable_sequential_device(tape):
    d = run(tape, [0x12, 0, 0, 0, 96, 0]).data
    assert d[0] == 0x01 and d[1] & 0x80
    assert {int.from_bytes(d[i:i + 2], "big") for i in range(58, 74, 2)} >= {0x0300}


def test_variable_records_filemarks_and_read_back(tape):
    assert run(tape, rw6(0x0A, 5), b"hello").ok
    assert run(tape, rw6(0x0A, 3), b"abc").ok
    assert run(tape, [0x10, 0, 0, 0, 1, 0]).ok  # one filemark
    assert run(tape, rw6(0x0A, 4), b"next").ok
    pos = run(tape, [0x34] + [0] * 9).data
    assert struct.unpack(">I", pos[4:8])[0] == 4 and not pos[0] & 0x80
    assert run(tape, [0x01, 0, 0, 0, 0, 0]).ok  # REWIND
    assert run(tape, [0x34] + [0] * 9).data[0] & 0x80  # BOP
    assert run(tape, rw6(0x08, 100)).data == b"hello"
    assert run(tape, rw6(0x08, 100)).data == b"abc"
    fm = run(tape, rw6(0x08, 100))
    s = Sense.decode(fm.sense)
    assert fm.status == Status.CHECK_CONDITION and s.filemark
    assert run(tape, rw6(0x08, 100)).data == b"next"
    eod = Sense.decode(run(tape, rw6(0x08, 100)).sense)
    assert (int(eod.key), eod.asc, eod.ascq) == (0x8, 0x00, 0x05)  # BLANK CHECK, end of data


def test_fixed_mode_via_mode_select_block_descriptor(tape):
    bad = run(tape, rw6(0x0A, 2, fixed=1), b"x" * 1024)
    assert Sense.decode(bad.sense).asc == 0x24  # FIXED while in variable mode
    params = bytes([0, 0, 0, 8]) + bytes([0, 0, 0, 0, 0]) + (512).to_bytes(3, "big")
    assert run(tape, [0x15, 0x10, 0, 0, len(params), 0], params).ok
    ms = run(tape, [0x1A, 0, 0x3F, 0, 255, 0]).data
    assert ms[3] == 8 and int.from_bytes(ms[9:12], "big") == 512
    data = bytes(range(256)) * 8
    assert run(tape, rw6(0x0A, 4, fixed=1), data).ok
    run(tape, [0x01, 0, 0, 0, 0, 0])
    assert run(tape, rw6(0x08, 4, fixed=1)).data == data


def test_space_and_locate(tape):
    for rec in (b"a", b"b", b"c"):
        run(tape, rw6(0x0A, 1), rec)
    run(tape, [0x01, 0, 0, 0, 0, 0])
    assert run(tape, [0x11, 0x00, 0, 0, 2, 0]).ok  # space 2 blocks forward
    assert run(tape, rw6(0x08, 10)).data == b"c"
    assert run(tape, [0x11, 0x00, 0xFF, 0xFF, 0xFE, 0]).ok  # space 2 blocks back (signed)
    assert run(tape, rw6(0x08, 10)).data == b"b"
    assert run(tape, [0x2B, 0, 0, 0, 0, 0, 0, 0, 0, 0]).ok  # LOCATE 0
    assert run(tape, rw6(0x08, 10)).data == b"a"
    assert Sense.decode(run(tape, [0x11, 0x02, 0, 0, 1, 0]).sense).asc == 0x24  # unsupported code


def test_block_limits_opcodes_and_unknown_commands(tape):
    bl = run(tape, [0x05, 0, 0, 0, 0, 0]).data
    assert int.from_bytes(bl[1:4], "big") == 0xFFFFFF and int.from_bytes(bl[4:6], "big") == 1
    rsoc = run(tape, bytes([0xA3, 0x0C, 0, 0, 0, 0]) + struct.pack(">I", 4096) + b"\0\0").data
    ops = {rsoc[4 + i] for i in range(0, struct.unpack(">I", rsoc[:4])[0], 8)}
    assert {0x08, 0x0A, 0x10, 0x11, 0x34} <= ops and 0x28 not in ops
    assert Sense.decode(run(tape, [0x28] + [0] * 9).sense).asc == 0x20  # READ(10) is a disk command


def test_tape_lun_over_iscsi_from_config(tmp_path):
    cfg = parse_config({"target": "iqn.2026-11.org.serverfree:tape", "luns": [
        {"id": 0, "path": str(tmp_path / "t.bin"), "kind": "tape", "create": True}]})
    built = build_target(cfg)
    try:
        with ThreadedTarget([built.node]) as t:
            async def go():
                ini = Initiator("127.0.0.1", t.port)
                await ini.connect()
                await ini.login(cfg.target)
                w = await ini.command(rw6(0x0A, 6), write_data=b"record")
                await ini.command(bytes([0x01, 0, 0, 0, 0, 0]))
                r = await ini.command(rw6(0x08, 64), read_len=64)
                await ini.close()
                return w, r
            w, r = t.run(go())
        assert w.status == 0 and r.status == 0 and r.data == b"record" and r.residual == 58
    finally:
        built.close()


def test_extended_copy_from_a_disk_lun_to_the_tape_lun(tmp_path):
    """The tape device routes EXTENDED COPY to the copy manager, which then writes the tape."""
    from scsi.xcopy.cscd import IdentificationCscd
    from scsi.xcopy.param_list import ParameterList
    from scsi.xcopy.segments import BlockToStream

    disk = tmp_path / "d.img"
    payload = bytes(range(256)) * 16  # 8 blocks
    disk.write_bytes(payload + bytes(1 << 20))
    cfg = parse_config({"target": "iqn.2026-11.org.serverfree:d2t", "luns": [
        {"id": 0, "path": str(disk)}, {"id": 1, "path": str(tmp_path / "t.bin"), "kind": "tape", "create": True}]})
    built = build_target(cfg, with_copy_manager=True)
    try:
        tape = built.devices[1]
        assert isinstance(tape, TapeLunDevice)
        assert run(tape, [0x12, 0, 0, 0, 96, 0]).data[5] & 0x08  # 3PC on the tape too
        plist = ParameterList(header={"list_id": 3}, cscds=(
            IdentificationCscd(designator=built.luns[0].naa.hex(), block_length=512),
            IdentificationCscd(designator=built.luns[1].naa.hex(), pdt=1)),
            segments=(BlockToStream(src=0, dst=1, stream_transfer_length=4096, block_count=8, lba=0),)).encode()
        cdb = bytes([0x83, 0]) + bytes(8) + len(plist).to_bytes(4, "big") + b"\0\0"
        r = built.scsi.execute(Nexus("iqn.2026-11.org.test:host", lun=1), cdb, plist, 0)
        assert r.status == 0, Sense.decode(r.sense)
        assert run(tape, [0x01, 0, 0, 0, 0, 0]).ok
        assert run(tape, rw6(0x08, 65536)).data == payload
    finally:
        built.close()
