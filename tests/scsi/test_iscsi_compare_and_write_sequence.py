"""The sequence behind the whole-run failures of libiscsi's suite, replayed over iSCSI.

Root cause (libiscsi-bin 1.19.0-3, test-tool/test_compareandwrite_invalid_dataout_size.c as patched by
Debian from upstream 310e9ac, without the later fix cc3ddbf): CompareAndWrite.InvalidDataOutSize
replaces the *shared* TCP transport's ``queue_pdu`` with a hook that writes NUMBER OF LOGICAL BLOCKS
(byte 32 + 13 of every SCSI Command PDU, i.e. CDB byte 13) and restores it only at the end of the
test.  The test runs only on thin LUNs (CHECK_FOR_THIN_PROVISIONING; tgtd's LUNs are thick, ours
thin), and its COMPAREANDWRITE macro returns early when the target answers INVALID COMMAND
OPERATION CODE: so on a target without COMPARE AND WRITE the hook stayed for the rest of the process
and set CDB byte 13 of every later command to 1 — the LSB of the transfer length of READ(16)/WRITE(16)/
VERIFY(16)/WRITE SAME(16) and of EXTENDED COPY's parameter list length (2048 blocks became 2049,
a 44-byte list became 1 byte).  The target answered those altered CDBs correctly; implementing COMPARE
AND WRITE lets the test run to its end, where the hook is removed.

These tests replay what the tool sends — the two COMPARE AND WRITEs with a 4-block Data-Out and
NUMBER OF LOGICAL BLOCKS 1 and 3, then ExtendedCopy.Simple's commands — and the altered READ(16)
the tool sent, and run the two suites in that order with the tool itself.
"""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from scsi.copymgr.client import cscd_for_lun
from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config
from scsi.xcopy import BlockToBlock, Header, ParameterList

TARGET = "iqn.2026-12.org.serverfree:caw-sequence"
BLOCKS = 16384  # 8 MiB, thin (a sparse file)
COPIED = 2048


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("caw") / "lun.img"
    with open(path, "wb") as f:
        f.truncate(BLOCKS * 512)
    built = build_target(parse_config({"target": TARGET, "luns": [{"id": 0, "path": str(path)}]}),
                         with_copy_manager=True)
    t = ThreadedTarget([built.node]).start()
    t.built = built
    yield t
    t.stop()
    built.close()


def rw16(op: int, lba: int, n: int) -> bytes:
    return bytes([op, 0]) + struct.pack(">QI", lba, n) + b"\0\0"


def caw(lba: int, n: int) -> bytes:
    return bytes([0x89, 0]) + struct.pack(">Q", lba) + bytes([0, 0, 0, n, 0, 0])


def asc(r) -> tuple[int, int, int]:
    s = Sense.decode(r.sense)
    return int(s.key), s.asc, s.ascq


def test_replayed_sequence_over_iscsi(target):
    lun = target.built.luns[0]
    xcopy_list = ParameterList(
        header=Header(list_id=1, list_id_usage=2), cscds=(cscd_for_lun(lun),),
        segments=(BlockToBlock(src=0, dst=0, block_count=COPIED, src_lba=0, dst_lba=BLOCKS - COPIED),)).encode()

    async def go():
        ini = Initiator("127.0.0.1", target.port)
        await ini.connect()
        await ini.login(TARGET)
        out = {}
        # CompareAndWrite.InvalidDataOutSize: 4 blocks of Data-Out, NUMBER OF LOGICAL BLOCKS 1, then 3.
        out["caw1"] = await ini.command(caw(0, 1), write_data=b"\xa6" * 4 * 512)
        out["caw3"] = await ini.command(caw(0, 3), write_data=b"\xa6" * 4 * 512)
        out["after_caw"] = lun.read(0, 4)
        # ExtendedCopy.Simple, as the tool sends it once the hook is gone.
        out["zero"] = await ini.command(rw16(0x8A, BLOCKS - COPIED, COPIED), write_data=bytes(COPIED * 512))
        out["fill"] = await ini.command(rw16(0x8A, 0, COPIED), write_data=b"A" * COPIED * 512)
        out["xcopy"] = await ini.command(bytes([0x83, 0]) + bytes(8) + struct.pack(">I", len(xcopy_list)) + b"\0\0",
                                         write_data=xcopy_list)
        out["read"] = await ini.command(rw16(0x88, BLOCKS - COPIED, COPIED), read_len=COPIED * 512)
        # What the leaked hook made of that READ(16): byte 13 = 1, 2049 blocks from LBA end-2048.
        altered = bytearray(rw16(0x88, BLOCKS - COPIED, COPIED))
        altered[13] = 1
        out["altered"] = await ini.command(bytes(altered), read_len=COPIED * 512)
        await ini.logout()
        await ini.close()
        return out

    out = target.run(go())
    for name in ("caw1", "caw3"):
        assert out[name].status == 2 and asc(out[name]) == (5, 0x24, 0), name  # INVALID FIELD IN CDB
    assert out["after_caw"] == bytes(4 * 512)  # neither wrote anything
    for name in ("zero", "fill", "xcopy", "read"):
        assert out[name].status == 0, (name, out[name])
    assert out["read"].data == b"A" * COPIED * 512
    assert out["altered"].status == 2 and asc(out["altered"]) == (5, 0x21, 0)  # LBA OUT OF RANGE, as before


@pytest.mark.skipif(shutil.which("iscsi-test-cu") is None, reason="iscsi-test-cu not installed (libiscsi-bin)")
def test_the_tool_runs_extended_copy_after_compare_and_write(target):
    # The tool registers a comma list back to front: CompareAndWrite runs first, as in -t ALL.
    r = subprocess.run(["iscsi-test-cu", "--dataloss", "-t", "SCSI.ExtendedCopy,SCSI.CompareAndWrite",
                        target.url(TARGET, 0)], capture_output=True, text=True, errors="replace", timeout=240)
    out = r.stdout + r.stderr
    assert out.index("Suite: CompareAndWrite") < out.index("Suite: ExtendedCopy")
    assert "[SKIPPED]" not in out and "FAILED" not in out, out[-3000:]
    assert "tests     11     11     11      0" in out, out[-1500:]
