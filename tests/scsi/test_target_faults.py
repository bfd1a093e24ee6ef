"""`datamover serve --fault`: injected faults seen from a real initiator (libiscsi) over TCP.

The mover runs as a child process on 127.0.0.1; the test judges what the
initiator experiences (the connection really gone, the exact sense bytes, the
status) and the destination file's bytes, and checks the mover logged each
fault it fired.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyscsi.pyscsi.scsi import SCSI

from scsi import commands, designators
from scsi.devices import DeviceConnectionError, DeviceStatusError, DeviceTimeout
from scsi.devices.iscsi import LibiscsiDevice
from scsi.sense import SenseKey
from scsi.xcopy import BlockToBlock, Header, ParameterList

IQN = "iqn.2026-12.org.serverfree:faults-test"
INITIATOR = "iqn.2026-12.org.serverfree.test:faults"
SERVE = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", "-v"]
LUN_BYTES = 16 << 20
SEG_BLOCKS = 2048  # 1 MiB per segment


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp: Path, *faults: str):
    luns = []
    for n in range(2):
        p = tmp / f"lun{n}.img"
        p.write_bytes(os.urandom(LUN_BYTES) if n == 0 else bytes(LUN_BYTES))
        luns.append(p)
    port = _free_port()
    log_path = tmp / "serve.log"
    log = open(log_path, "w+")
    cmd = [*SERVE, "datamover", "serve", "--portal", f"127.0.0.1:{port}", "--iqn", IQN,
           "--lun", str(luns[0]), "--lun", str(luns[1]), *[f"--fault={f}" for f in faults]]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 30  # start-up guard, not a speed check
    while "serving" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"datamover did not start: {log_path.read_text()}")
        time.sleep(0.1)
    return proc, port, luns, log_path, log


@pytest.fixture
def served(tmp_path):
    started = []

    def start(*faults: str):
        s = _serve(tmp_path, *faults)
        started.append(s)
        return s

    yield start
    for proc, _, _, _, log in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _open(port: int, lun: int) -> tuple[LibiscsiDevice, SCSI]:
    dev = LibiscsiDevice(f"iscsi://127.0.0.1:{port}/{IQN}/{lun}", initiator_iqn=INITIATOR, timeout=20)
    return dev, SCSI(dev, 512)


def _list(s_src: SCSI, s_dst: SCSI, segments: int, list_id: int = 1) -> ParameterList:
    cscds = (designators.cscd_for_device(s_src), designators.cscd_for_device(s_dst))
    segs = tuple(BlockToBlock(src=0, dst=1, block_count=SEG_BLOCKS, src_lba=k * SEG_BLOCKS, dst_lba=k * SEG_BLOCKS)
                 for k in range(segments))
    return ParameterList(header=Header(list_id=list_id), cscds=cscds, segments=segs)


def _segments_copied(luns, segments: int) -> list[bool]:
    a, b = luns[0].read_bytes(), luns[1].read_bytes()
    n = SEG_BLOCKS * 512
    return [a[k * n:(k + 1) * n] == b[k * n:(k + 1) * n] for k in range(segments)]


def test_drop_after_bytes_really_cuts_the_connection(served):
    proc, port, luns, log_path, _ = served("drop@bytes=3M")
    src, s_src = _open(port, 0)
    dst, s_dst = _open(port, 1)
    try:
        plist = _list(s_src, s_dst, 8)
        with pytest.raises(DeviceConnectionError):
            commands.extended_copy(s_dst, plist)
        with pytest.raises(DeviceConnectionError):  # the other session was cut as well
            commands.operating_parameters(s_src)
    finally:
        src.close()
        dst.close()
    done = _segments_copied(luns, 8)
    assert done[:3] == [True] * 3 and not any(done[4:]), done
    text = log_path.read_text()
    assert "fault injected: drop@bytes=3M" in text and "iSCSI connection(s) closed" in text, text
    assert proc.poll() is None  # the mover itself lives on and takes new sessions
    again, s_again = _open(port, 0)
    try:
        assert commands.operating_parameters(s_again).max_segment_count == 256
    finally:
        again.close()


def test_copy_aborted_sense_reaches_the_initiator(served):
    _, port, luns, log_path, _ = served("copy-aborted=0D/02@list=1,segment=2")
    dst, s_dst = _open(port, 1)
    src, s_src = _open(port, 0)
    try:
        with pytest.raises(Exception) as info:
            commands.extended_copy(s_dst, _list(s_src, s_dst, 4))
        sense = commands.sense_from_exception(info.value)
        assert sense is not None, info.value
        assert (sense.key, sense.asc, sense.ascq) == (SenseKey.COPY_ABORTED, 0x0D, 0x02)
        assert sense.command_specific & 0xFFFF == 2
        assert commands.copy_status(s_dst, 1).segments_processed == 2
    finally:
        src.close()
        dst.close()
    assert _segments_copied(luns, 4) == [True, True, False, False]
    assert "fault injected: copy-aborted=0D/02@list=1,segment=2" in log_path.read_text()


def test_busy_is_a_status_not_an_error(served):
    _, port, _, log_path, _ = served("busy=30s@command=rcr-op")
    dev, s = _open(port, 0)
    try:
        with pytest.raises(DeviceStatusError) as info:
            commands.operating_parameters(s)
        assert info.value.status == 0x08, info.value  # BUSY (SAM-5 5.3.1)
    finally:
        dev.close()
    assert "fault injected: busy=30s@command=rcr-op -> busy for 30 s" in log_path.read_text()


def test_a_bad_rule_is_one_line_before_anything_listens(tmp_path):
    lun = tmp_path / "l.img"
    lun.write_bytes(bytes(1 << 20))
    res = subprocess.run([*SERVE[:-1], "datamover", "serve", "--portal", f"127.0.0.1:{_free_port()}",
                          "--iqn", IQN, "--lun", str(lun), "--fault", "drop@bytes=lots"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 2, res
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "drop@bytes=lots" in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_a_timed_out_command_is_aborted_on_the_target(served):
    """Timeout -> ABORT TASK, answered by the (stalled-copy but live) target: the session stays usable."""
    _, port, _, log_path, _ = served("stall=3s@list=1,segment=0")
    src, s_src = _open(port, 0)
    dst = LibiscsiDevice(f"iscsi://127.0.0.1:{port}/{IQN}/1", initiator_iqn=INITIATOR, timeout=1.5)
    try:
        with pytest.raises(DeviceTimeout) as info:
            commands.extended_copy(SCSI(dst, 512), _list(s_src, SCSI(dst, 512), 2))
        assert "ABORT TASK: function complete" in str(info.value), info.value
        assert dst.connected
        # The stall (3 s from segment 0) still holds every command: the next answers come only after it, about
        # as long after the abort as the abort came after the copy, so they get time beyond the 1.5 s above.
        dst.timeout = 10.0
        assert commands.operating_parameters(SCSI(dst, 512)).max_segment_count == 256  # answered after the hold
    finally:
        src.close()
        dst.close()
    assert "ABORT TASK" in log_path.read_text()  # the target saw it


def test_a_stopped_target_gets_abort_then_lun_reset_then_is_given_up(served):
    proc, port, _, _, _ = served()
    dev = LibiscsiDevice(f"iscsi://127.0.0.1:{port}/{IQN}/0", initiator_iqn=INITIATOR, timeout=1.0)
    try:
        proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            commands.operating_parameters(SCSI(dev, 512))
        waited = time.monotonic() - t0
        assert "ABORT TASK: no answer; LOGICAL UNIT RESET: no answer" in str(info.value), info.value
        assert not dev.connected  # given up: the caller fails over
        assert waited < 1.0 + 2 * dev.tmf_wait + 1.0, waited
    finally:
        proc.send_signal(signal.SIGCONT)
        dev.close()


def test_a_status_note_while_a_command_waits(served):
    _, port, _, _, _ = served("stall=2.5s@command=rcr-op")
    dev = LibiscsiDevice(f"iscsi://127.0.0.1:{port}/{IQN}/0", initiator_iqn=INITIATOR, timeout=6.0)
    notes = []
    dev.WAIT_NOTE = 1.0
    dev.on_wait = lambda waited, limit: notes.append((waited, limit))
    try:
        assert commands.operating_parameters(SCSI(dev, 512)).max_segment_count == 256  # answered after the hold
    finally:
        dev.close()
    assert notes[:2] == [(1.0, 6.0), (2.0, 6.0)], notes
