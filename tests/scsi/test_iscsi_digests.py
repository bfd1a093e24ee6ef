"""iSCSI CRC32C header and data digests (RFC 7143 13.1), and what the target does with a bad one (7.8).

libiscsi 1.19 offers HeaderDigest only (``?header_digest=crc32c`` in the URL asks for CRC32C; it
always sends DataDigest=None), so data digests and corrupted digests are driven with the
project's raw initiator.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
import subprocess

import pytest

from scsi.devices.iscsi import LibiscsiDevice
from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator, InitiatorError
from scsi.iscsi.pdu import NO_TAG, Op, Reject, digest, make
from scsi.iscsi.textkeys import DIGEST_POLICIES, TargetLimits
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config

TARGET = "iqn.2026-12.org.serverfree:digests"
BLOCKS = 8192
BOTH = {"HeaderDigest": "CRC32C", "DataDigest": "CRC32C"}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("dig") / "lun.img"
    with open(path, "wb") as f:
        f.truncate(BLOCKS * 512)
    built = build_target(parse_config({"target": TARGET, "luns": [{"id": 0, "path": str(path)}]}))
    t = ThreadedTarget([built.node]).start()
    t.built = built
    yield t
    t.stop()
    built.close()


def rw16(op: int, lba: int, n: int) -> bytes:
    return bytes([op, 0]) + struct.pack(">QI", lba, n) + b"\0\0"


async def _session(port: int, **ops: str) -> Initiator:
    ini = Initiator("127.0.0.1", port)
    await ini.connect()
    await ini.login(TARGET, operational=ops)
    return ini


def test_crc32c_matches_rfc_3720_appendix_b4():
    assert digest(bytes(32)) == bytes.fromhex("aa36918a")  # CRC 0x8A9136AA, sent least significant byte first
    assert digest(b"\xff" * 32) == (0x62A8AB43).to_bytes(4, "little")
    assert digest(bytes(range(32))) == (0x46DD794E).to_bytes(4, "little")
    assert digest(bytes(range(16)), bytes(range(16, 32))) == digest(bytes(range(32)))


def test_negotiated_digests_carry_reads_and_writes(target):
    data = os.urandom(300 * 512)  # immediate data, unsolicited and solicited Data-Out, many Data-In

    async def go():
        ini = await _session(target.port, **BOTH, MaxRecvDataSegmentLength="8192")
        w = await ini.command(rw16(0x8A, 100, 300), write_data=data)
        r = await ini.command(rw16(0x88, 100, 300), read_len=len(data))
        nop = await ini.nop(b"ping")
        await ini.logout()
        await ini.close()
        return ini, w, r, nop

    before = dict(target.server.counters)
    ini, w, r, nop = target.run(go())
    assert ini.negotiated["HeaderDigest"] == "CRC32C" and ini.negotiated["DataDigest"] == "CRC32C"
    assert w.status == 0 and r.status == 0 and r.data == data and nop.data == b"ping"
    after = target.server.counters
    assert after["digest.header_sessions"] == before.get("digest.header_sessions", 0) + 1
    assert after["digest.data_sessions"] == before.get("digest.data_sessions", 0) + 1


def test_initiator_preference_and_refusal_in_negotiation(target):
    async def go(value):
        ini = await _session(target.port, HeaderDigest=value, DataDigest=value)
        await ini.close()
        return ini.negotiated["HeaderDigest"], ini.negotiated["DataDigest"], ini.header_digest

    assert target.run(go("None,CRC32C")) == ("None", "None", False)
    assert target.run(go("CRC32C,None")) == ("CRC32C", "CRC32C", True)


def test_bad_data_digest_on_data_out_rejects_then_fails_the_task_only(target):
    """RFC 7143 7.8: Reject (Data-Digest-Error), drop the data, end the task with CHECK CONDITION
    (PROTOCOL SERVICE CRC ERROR, 0Bh/47h/05h) once its data is in; the session goes on."""
    lun = target.built.luns[0]
    lun.write(200, b"o" * 1024)

    async def go():
        ini = await _session(target.port, **BOTH, InitialR2T="Yes", ImmediateData="No")
        data = b"n" * 1024
        pdu, itt = ini.scsi_pdu(rw16(0x8A, 200, 2), write_data=data, immediate_data=False)
        await ini.send(pdu)
        r2t = await ini.recv()
        assert r2t.opcode == Op.R2T
        out = make(Op.DATA_OUT, data, final=1, itt=itt, ttt=r2t["ttt"], expstatsn=ini.expstatsn, datasn=0,
                   buffer_offset=0).encode(header_digest=True, data_digest=True)
        await ini.send(out[:-1] + bytes([out[-1] ^ 0x01]))  # flip a bit of the data digest
        answers = [await ini.recv(), await ini.recv()]
        good = await ini.command(rw16(0x88, 200, 2), read_len=1024)
        await ini.close()
        return answers, good

    before = target.server.counters.get("digest.data_errors", 0)
    (reject, response), good = target.run(go())
    assert reject.opcode == Op.REJECT and reject["reason"] == Reject.DATA_DIGEST
    assert response.opcode == Op.SCSI_RSP and response["status"] == 2
    s = Sense.decode(response.data[2:])
    assert (int(s.key), s.asc, s.ascq) == (0x0B, 0x47, 0x05)
    assert good.status == 0 and good.data == b"o" * 1024  # nothing of the bad burst was written
    assert target.server.counters["digest.data_errors"] == before + 1


def test_bad_data_digest_on_immediate_data_discards_the_command_which_may_be_sent_again(target):
    async def go():
        ini = await _session(target.port, **BOTH)
        data = b"i" * 512
        pdu, itt = ini.scsi_pdu(rw16(0x8A, 300, 1), write_data=data)
        wire = pdu.encode(header_digest=True, data_digest=True)
        await ini.send(wire[:-2] + bytes([wire[-2] ^ 0x80]) + wire[-1:])
        reject = await ini.recv()
        quiet = None
        try:
            quiet = await ini.recv(timeout=0.5)  # the command was discarded: no response
        except asyncio.TimeoutError:
            pass
        await ini.send(wire)  # the same PDU, same CmdSN, intact this time
        answer = await ini.finish(itt, data)
        await ini.close()
        return reject, quiet, answer

    reject, quiet, answer = target.run(go())
    assert reject.opcode == Op.REJECT and reject["reason"] == Reject.DATA_DIGEST
    assert quiet is None
    assert answer.status == 0 and target.built.luns[0].read(300, 1) == b"i" * 512


def test_bad_header_digest_closes_the_connection_and_nothing_else(target):
    async def go():
        ini = await _session(target.port, HeaderDigest="CRC32C")
        other = await _session(target.port, HeaderDigest="CRC32C")
        nop = make(Op.NOP_OUT, b"", immediate=1, final=1, itt=ini.next_itt(), ttt=NO_TAG, cmdsn=ini.cmdsn,
                   expstatsn=ini.expstatsn).encode(header_digest=True)
        await ini.send(nop[:48] + bytes([nop[48] ^ 0xFF]) + nop[49:])
        closed = await asyncio.wait_for(ini.reader.read(), 10) == b""
        still = await other.command(rw16(0x88, 0, 1), read_len=512)
        await ini.close()
        await other.close()
        return closed, still

    before = target.server.counters.get("digest.header_errors", 0)
    closed, still = target.run(go())
    assert closed and still.status == 0
    assert target.server.counters["digest.header_errors"] == before + 1


def test_digests_are_not_renegotiated_in_full_feature_phase(target):
    async def go():
        ini = await _session(target.port)
        answers = dict(await ini.text([("HeaderDigest", "CRC32C")]))
        await ini.close()
        return answers

    assert target.run(go()) == {"HeaderDigest": "Reject"}


@pytest.fixture(scope="module")
def strict_target(tmp_path_factory):
    """A target that requires both digests (``header_digest: required``, ``data_digest: required``)."""
    path = tmp_path_factory.mktemp("dig-strict") / "lun.img"
    with open(path, "wb") as f:
        f.truncate(BLOCKS * 512)
    cfg = parse_config({"target": TARGET, "luns": [{"id": 0, "path": str(path)}],
                        "header_digest": "required", "data_digest": "required"})
    built = build_target(cfg)
    limits = TargetLimits(header_digests=DIGEST_POLICIES[cfg.header_digest],
                          data_digests=DIGEST_POLICIES[cfg.data_digest])
    t = ThreadedTarget([built.node], limits=limits).start()
    yield t
    t.stop()
    built.close()


def test_libiscsi_asking_for_header_digest_crc32c(target):
    """libiscsi (through the project's cffi device) offering HeaderDigest=CRC32C only."""
    before = target.server.counters.get("digest.header_sessions", 0)
    dev = LibiscsiDevice(target.url(TARGET, 0), header_digest="crc32c")
    try:
        data = os.urandom(64 * 1024)
        assert dev.run(rw16(0x8A, 500, 128), data, 0).status == 0
        r = dev.run(rw16(0x88, 500, 128), b"", len(data))
        assert r.status == 0 and r.data == data
    finally:
        dev.close()
    assert target.server.counters["digest.header_sessions"] == before + 1


def test_required_digests_refuse_initiators_that_do_not_offer_them(strict_target):
    async def go(**ops):
        ini = Initiator("127.0.0.1", strict_target.port)
        await ini.connect()
        try:
            await ini.login(TARGET, operational=ops)
            return dict(ini.negotiated)
        finally:
            await ini.close()

    with pytest.raises(InitiatorError, match="0200"):  # login fails: Initiator error
        strict_target.run(go(HeaderDigest="None", DataDigest="None"))
    with pytest.raises(InitiatorError, match="0200"):  # a key left out is None, the default
        strict_target.run(go(HeaderDigest="CRC32C"))
    got = strict_target.run(go(HeaderDigest="None,CRC32C", DataDigest="None,CRC32C"))
    assert got["HeaderDigest"] == "CRC32C" and got["DataDigest"] == "CRC32C"


@pytest.mark.skipif(shutil.which("iscsi-test-cu") is None, reason="libiscsi-bin is not installed")
def test_libiscsi_tools_run_with_header_digests_on_a_target_that_requires_them(strict_target):
    """libiscsi's tools offer "HeaderDigest=None,CRC32C" (they override a URL's header_digest), so a
    target that requires CRC32C gets them to use it: inquiry and whole suites then run with header
    digests on every PDU.  libiscsi 1.19 only ever offers DataDigest=None, so for the tools this
    target requires the header digest only."""
    server = strict_target.server
    before = server.counters.get("digest.header_sessions", 0)
    server.limits = TargetLimits(header_digests=("CRC32C",), data_digests=("CRC32C", "None"))
    url = strict_target.url(TARGET, 0)
    inq = subprocess.run(["iscsi-inq", url], capture_output=True, text=True, timeout=60)
    assert inq.returncode == 0 and "DIRECT_ACCESS" in inq.stdout, inq.stderr
    r = subprocess.run(["iscsi-test-cu", "--dataloss", "-t", "SCSI.Write16,SCSI.Read16,SCSI.CompareAndWrite,"
                        "iSCSI.iSCSIResiduals", url], capture_output=True, text=True, errors="replace", timeout=240)
    out = r.stdout + r.stderr
    assert "FAILED" not in out and "[SKIPPED]" not in out, out[-3000:]
    m = re.search(r"tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert m and int(m.group(4)) == 0 and int(m.group(1)) == int(m.group(3)) >= 15, out[-1500:]
    assert server.counters["digest.header_sessions"] >= before + 5  # iscsi-inq, then a session per suite
