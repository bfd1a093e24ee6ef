"""Session behaviour seen from a raw initiator: R2T/Data-Out, Data-In, sequence numbers, TMF, NOP."""
from __future__ import annotations

import asyncio
import os
import struct

import pytest

from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator, InitiatorError
from scsi.iscsi.pdu import NO_TAG, Op, make
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config

TARGET = "iqn.2026-11.org.serverfree:dm-session"
BLOCKS = 8192


def read16(lba: int, n: int) -> bytes:
    return bytes([0x88, 0]) + struct.pack(">QI", lba, n) + b"\0\0"


def write16(lba: int, n: int) -> bytes:
    return bytes([0x8A, 0]) + struct.pack(">QI", lba, n) + b"\0\0"


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    d = tmp_path_factory.mktemp("sess")
    paths = []
    for name in ("a.img", "b.img"):
        with open(d / name, "wb") as f:
            f.truncate(BLOCKS * 512)
        paths.append(str(d / name))
    built = build_target(parse_config({"target": TARGET, "luns": [{"id": 0, "path": paths[0]},
                                                                  {"id": 1, "path": paths[1]}]}))
    t = ThreadedTarget([built.node]).start()
    yield t
    t.stop()
    built.close()


def session(target, **ops) -> Initiator:
    async def go():
        ini = Initiator("127.0.0.1", target.port)
        await ini.connect()
        await ini.login(TARGET, operational={k: str(v) for k, v in ops.items()})
        return ini
    return target.run(go())


def test_large_write_uses_r2t_and_reads_back_over_many_data_in(target):
    ini = session(target, MaxRecvDataSegmentLength=4096)
    data = os.urandom(1 << 20)  # > FirstBurstLength and > MaxBurstLength: several R2Ts

    async def go():
        w = await ini.command(write16(16, len(data) // 512), write_data=data)
        r = await ini.command(read16(16, len(data) // 512), read_len=len(data))
        await ini.logout()
        await ini.close()
        return w, r
    w, r = target.run(go())
    assert w.status == 0 and w.r2ts >= 4
    assert r.status == 0 and r.data == data


def test_initial_r2t_without_immediate_data(target):
    ini = session(target, InitialR2T="Yes", ImmediateData="No")
    assert ini.initial_r2t and not ini.immediate_data
    data = os.urandom(8192)

    async def go():
        w = await ini.command(write16(0, 16), write_data=data)
        r = await ini.command(read16(0, 16), read_len=len(data))
        await ini.close()
        return w, r
    w, r = target.run(go())
    assert w.status == 0 and w.r2ts == 1 and r.data == data


def test_check_condition_carries_sense_and_underflow_residual(target):
    ini = session(target)

    async def go():
        bad = await ini.command(read16(BLOCKS - 1, 2), read_len=1024)
        inq = await ini.command(bytes([0x12, 0, 0, 0, 255, 0]), read_len=255)
        await ini.close()
        return bad, inq
    bad, inq = target.run(go())
    s = Sense.decode(bad.sense)
    assert bad.status == 2 and (int(s.key), s.asc, s.ascq) == (5, 0x21, 0)
    assert inq.status == 0 and inq.residual == 255 - len(inq.data) and len(inq.data) == 74


def test_nop_echo_and_sequence_numbers(target):
    ini = session(target)

    async def go():
        p = await ini.nop(b"ping-data")
        await ini.close()
        return p
    p = target.run(go())
    assert p.opcode == Op.NOP_IN and p.data == b"ping-data" and p["ttt"] == NO_TAG
    assert p["expcmdsn"] == ini.cmdsn and p["maxcmdsn"] == ini.cmdsn + 63


async def _pending_write(ini: Initiator, lun: int = 0) -> tuple[int, int]:
    """Start a write whose data the target must ask for, and wait for its R2T."""
    pdu, itt = ini.scsi_pdu(write16(0, 8), lun=lun, write_data=b"\1" * 4096, immediate_data=False)
    await ini.send(pdu)
    r2t = await ini.recv()
    assert r2t.opcode == Op.R2T and r2t["itt"] == itt
    return itt, r2t["ttt"]


async def _late_data_is_rejected(ini: Initiator, itt: int, ttt: int) -> bool:
    """Data-Out for an aborted task: the target no longer knows it and rejects the PDU."""
    await ini.data_out(itt, ttt, b"\1" * 4096, 0, 4096)
    p = await ini.recv()
    return p.opcode == Op.REJECT and p["reason"] == 0x09 and p.data[16:20] == itt.to_bytes(4, "big")


def test_abort_task_drops_the_pending_write(target):
    ini = session(target)

    async def go():
        itt, ttt = await _pending_write(ini)
        response = await ini.task_management(1, rtt=itt, refcmdsn=ini.cmdsn - 1)
        rejected = await _late_data_is_rejected(ini, itt, ttt)
        nop = await ini.nop(b"after")  # the aborted task must not answer before this
        unknown = await ini.task_management(1, rtt=0x7777, refcmdsn=ini.cmdsn + 5)
        await ini.close()
        return response, rejected, nop, unknown
    response, rejected, nop, unknown = target.run(go())
    assert response == 0 and rejected and nop.opcode == Op.NOP_IN and nop.data == b"after"
    assert unknown == 1  # task does not exist


def test_lun_reset_aborts_tasks_of_every_session_on_that_lun(target):
    a, b = session(target), session(target)

    async def go():
        itt_a, ttt_a = await _pending_write(a, lun=1)
        itt_0, ttt_0 = await _pending_write(a, lun=0)
        reset = await b.task_management(5, lun=1)
        missing = await b.task_management(5, lun=9)
        rejected = await _late_data_is_rejected(a, itt_a, ttt_a)
        await a.data_out(itt_0, ttt_0, b"\2" * 4096, 0, 4096)  # LUN 0's task survived the reset
        other = await a.finish(itt_0)
        nop = await a.nop(b"still here")
        await a.close()
        await b.close()
        return reset, missing, rejected, other, nop
    reset, missing, rejected, other, nop = target.run(go())
    assert reset == 0 and missing == 2 and rejected and other.status == 0 and nop.data == b"still here"



def test_lun_reset_raises_unit_attention_on_the_other_sessions_that_used_the_lun(target):
    a, b = session(target), session(target)
    tur = bytes(6)

    async def go():
        before = await a.command(tur, lun=1)  # A uses LUN 1 before the reset
        reset = await b.task_management(5, lun=1)
        first = await a.command(tur, lun=1)  # A is told once: POWER ON, RESET, OR BUS DEVICE RESET (LUN RESET)
        second = await a.command(tur, lun=1)
        own = await b.command(tur, lun=1)  # the session that reset the LUN is not told
        await a.close()
        await b.close()
        return before, reset, first, second, own
    before, reset, first, second, own = target.run(go())
    assert before.status == 0 and reset == 0
    assert first.status == 2 and first.sense[2] & 0x0F == 6 and first.sense[12:14] == b"\x29\x03", first.sense.hex()
    assert second.status == 0 and own.status == 0

def test_a_stalled_session_does_not_hold_up_another(target):
    a, b = session(target), session(target)
    data = os.urandom(4096)

    async def go():
        pdu, itt = a.scsi_pdu(write16(0, 8), write_data=data, immediate_data=False)
        await a.send(pdu)
        r2t = await a.recv()  # A's write now waits for its Data-Out
        r = await b.command(read16(100, 8), read_len=4096)  # B is served meanwhile
        await a.data_out(itt, r2t["ttt"], data, 0, 4096)
        done = await a.finish(itt, data)
        check = await a.command(read16(0, 8), read_len=4096)
        await a.close()
        await b.close()
        return r, done, check
    r, done, check = target.run(go())
    assert r.status == 0 and done.status == 0 and check.data == data


def test_out_of_order_cmdsn_is_held_and_duplicates_dropped(target):
    ini = session(target)

    async def go():
        first, itt1 = ini.scsi_pdu(bytes(6))  # TEST UNIT READY, CmdSN n
        second, itt2 = ini.scsi_pdu(bytes(6))  # CmdSN n+1
        await ini.send(second)  # arrives first: held until n arrives
        await ini.send(first)
        got = {(await ini.recv())["itt"], (await ini.recv())["itt"]}
        dup = make(Op.SCSI_CMD, final=1, lun=bytes(8), itt=0x999, edtl=0, cmdsn=first["cmdsn"],
                   expstatsn=ini.expstatsn, cdb=bytes(16))
        await ini.send(dup)  # CmdSN already used: silently dropped
        nop = await ini.nop(b"x")
        await ini.close()
        return got, {itt1, itt2}, nop
    got, want, nop = target.run(go())
    assert got == want and nop.opcode == Op.NOP_IN


def test_discovery_session_sendtargets_and_unknown_target_login(target):
    async def go():
        ini = Initiator("127.0.0.1", target.port)
        await ini.connect()
        await ini.login(None)
        answer = await ini.text([("SendTargets", "All")])
        await ini.close()
        bad = Initiator("127.0.0.1", target.port)
        await bad.connect()
        try:
            await bad.login("iqn.2026-11.org.serverfree:nope")
        except InitiatorError:
            pass
        await bad.close()
        return answer, bad.login_status
    answer, status = target.run(go())
    assert ("TargetName", TARGET) in answer
    assert ("TargetAddress", f"127.0.0.1:{target.port},1") in answer
    assert status == 0x0203


def test_logout_closes_the_connection(target):
    ini = session(target)

    async def go():
        resp = await ini.logout()
        eof = await ini.reader.read(1)
        await ini.close()
        return resp, eof
    resp, eof = target.run(go())
    assert resp == 0 and eof == b""


def test_unsolicited_data_out_then_r2t_for_the_rest(target):
    ini = session(target)  # InitialR2T=No, FirstBurstLength=65536
    data = os.urandom(3 * 65536)

    async def go():
        itt = ini.next_itt()
        await ini.send(make(Op.SCSI_CMD, final=0, write=1, attr=1, lun=bytes(8), itt=itt, edtl=len(data),
                            cmdsn=ini.cmdsn, expstatsn=ini.expstatsn, cdb=write16(200, len(data) // 512)))
        ini.cmdsn += 1
        for n, off in enumerate(range(0, 65536, 16384)):  # unsolicited burst, no R2T
            await ini.send(make(Op.DATA_OUT, data[off:off + 16384], final=int(off + 16384 == 65536), itt=itt,
                                ttt=NO_TAG, datasn=n, buffer_offset=off, expstatsn=ini.expstatsn))
        r2t = await ini.recv()
        await ini.data_out(itt, r2t["ttt"], data, r2t["buffer_offset"], r2t["desired_length"])
        rest = await ini.finish(itt, data)
        back = await ini.command(read16(200, len(data) // 512), read_len=len(data))
        await ini.close()
        return r2t, rest, back
    r2t, rest, back = target.run(go())
    assert r2t.opcode == Op.R2T and r2t["buffer_offset"] == 65536 and r2t["r2tsn"] == 0
    assert rest.status == 0 and back.data == data


def test_same_isid_login_reinstates_the_session(target):
    old = session(target)

    async def go():
        new = Initiator("127.0.0.1", target.port, isid=old.isid)
        await new.connect()
        await new.login(TARGET)
        gone = await asyncio.wait_for(old.reader.read(1), 10)  # the target closed the old connection
        r = await new.command(read16(0, 1), read_len=512)
        await new.close()
        await old.close()
        return gone, r
    gone, r = target.run(go())
    assert gone == b"" and r.status == 0


def test_wrong_datasn_fails_the_command_not_the_session(target):
    ini = session(target, ImmediateData="No")

    async def go():
        pdu, itt = ini.scsi_pdu(write16(0, 2), write_data=b"\3" * 1024, immediate_data=False)
        await ini.send(pdu)
        r2t = await ini.recv()
        await ini.send(make(Op.DATA_OUT, b"\3" * 512, final=0, itt=itt, ttt=r2t["ttt"], datasn=5,
                            buffer_offset=0, expstatsn=ini.expstatsn))
        reject = await ini.recv()
        resp = await ini.finish(itt)
        after = await ini.command(read16(0, 1), read_len=512)  # same session still works
        await ini.close()
        return reject, resp, after
    reject, resp, after = target.run(go())
    s = Sense.decode(resp.sense)
    assert reject.opcode == Op.REJECT and reject["reason"] == 0x04
    assert resp.status == 2 and (int(s.key), s.asc, s.ascq) == (0xB, 0x4B, 0x00)
    assert after.status == 0
