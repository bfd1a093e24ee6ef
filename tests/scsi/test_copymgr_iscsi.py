"""The copy manager behind the project's own iSCSI target, driven by real initiators.

``serverfree datamover serve`` runs as a child process on a free port.
libiscsi's conformance tests for EXTENDED COPY and RECEIVE COPY RESULTS must
pass with no [SKIPPED] line (a skip is a missing feature), and ``qemu-img
convert -C -n`` between two LUNs must be byte-identical with the copy done by
EXTENDED COPY (the target's counters, logged at shutdown, say so).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

IQN = "iqn.2026-11.org.serverfree:copymgr-test"
SERVE = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", "-v"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mover(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mover")
    luns = []
    for n in range(2):
        p = tmp / f"lun{n}.img"
        with open(p, "wb") as f:
            f.truncate(32 << 20)
        luns.append(p)
    port = _free_port()
    log = open(tmp / "serve.log", "w+")
    cmd = [*SERVE, "datamover", "serve", "--portal", f"127.0.0.1:{port}", "--iqn", IQN,
           "--lun", str(luns[0]), "--lun", str(luns[1])]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + 30  # start-up guard, not a speed check
        while "serving" not in (tmp / "serve.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"datamover did not start: {(tmp / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield {"port": port, "luns": luns, "proc": proc, "log": tmp / "serve.log"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def url(m, lun: int) -> str:
    return f"iscsi://127.0.0.1:{m['port']}/{IQN}/{lun}"


@pytest.mark.skipif(shutil.which("iscsi-test-cu") is None, reason="iscsi-test-cu (libiscsi-bin) is not installed")
def test_libiscsi_extended_copy_and_receive_copy_results(mover):
    res = subprocess.run(["iscsi-test-cu", "-V", "--dataloss", "-t", "SCSI.ExtendedCopy,SCSI.ReceiveCopyResults",
                          url(mover, 1)], capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert "[SKIPPED]" not in out, out
    assert "[FAILED]" not in out, out
    tests = re.search(r"tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert tests is not None, out
    total, ran, passed, failed = map(int, tests.groups())
    assert (ran, passed, failed) == (total, total, 0) and total >= 8, out
    assert res.returncode == 0, out


def test_operating_parameters_through_libiscsi(mover):
    """RECEIVE COPY RESULTS / OPERATING PARAMETERS through the libiscsi backend (the
    success branch that tgtd, having no copy manager, cannot take): the values are
    the ones docs/datamover.md prints for this two-LUN quick-form mover."""
    from pyscsi.pyscsi.scsi import SCSI

    from scsi import commands
    from scsi.devices.iscsi import LibiscsiDevice

    dev = LibiscsiDevice(url(mover, 0), initiator_iqn="iqn.2026-11.org.serverfree.test:op-params", timeout=10)
    try:
        p = commands.operating_parameters(SCSI(dev, 512))
    finally:
        dev.close()
    assert (p.max_cscd_count, p.max_segment_count, p.max_descriptor_list_length) == (32, 256, 8192)
    assert (p.max_segment_length, p.max_inline_data_length, p.held_data_limit) == (268435456, 0, 1048576)
    assert (p.max_stream_device_transfer_size, p.total_concurrent_copies, p.max_concurrent_copies) == (0, 16, 8)
    assert tuple(p.implemented_descriptors) == (0x02, 0x07, 0x0A, 0x0D, 0xE4)


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed")
def test_qemu_img_convert_offloads_to_extended_copy(mover):
    data = os.urandom(8 << 20)
    src, dst = mover["luns"]
    with open(src, "r+b") as f:
        f.write(data)
    res = subprocess.run(["qemu-img", "convert", "-C", "-n", "-f", "raw", "-O", "raw",
                          url(mover, 0), url(mover, 1)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    with open(dst, "rb") as f:
        assert f.read(len(data)) == data
    proc = mover["proc"]
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    text = mover["log"].read_text()
    xcopies = [int(n) for n in re.findall(r"'lun1\.xcopy': (\d+)", text)]
    assert xcopies and xcopies[0] > 0, text
    assert re.search(r"EXTENDED COPY list id \d+ from \S+: 1/1 segments, \d+ bytes, GOOD", text), text
