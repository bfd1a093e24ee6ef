"""SG_IO backend: header layout against <scsi/sg.h>, result interpretation, errors.

No /dev/sg* exists on most CI machines, so the kernel is played by a fake
ioctl that fills in the header the way the sg driver does; the real-device
test runs only where a /dev/sg node is present.
"""
from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess

import pytest
from pyscsi.pyscsi.scsi import SCSI
from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

from scsi.devices import DeviceConnectionError, DeviceError, DeviceTimeout
from scsi.devices.sgio import (SG_DXFER_FROM_DEV, SG_DXFER_NONE, SG_DXFER_TO_DEV, SG_IO, SgIoHdr,
                               SgioDevice, build_header)

# hand-written fixed sense: NOT READY, MEDIUM NOT PRESENT (3Ah/00h)
NO_MEDIUM = bytes([0x70, 0, 0x02, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x3A, 0x00, 0, 0, 0, 0])
INQUIRY = bytes([0x00, 0, 0x05, 0x02, 31, 0, 0, 0]) + b"LINUXSG " + b"FAKE".ljust(16) + b"0001"

C_PROBE = r"""
#include <stdio.h>
#include <stddef.h>
#include <scsi/sg.h>
#define F(m) printf(#m " %zu\n", offsetof(struct sg_io_hdr, m));
int main(void) {
  printf("size %zu\n", sizeof(struct sg_io_hdr));
  F(interface_id) F(dxfer_direction) F(cmd_len) F(mx_sb_len) F(iovec_count) F(dxfer_len) F(dxferp)
  F(cmdp) F(sbp) F(timeout) F(flags) F(pack_id) F(usr_ptr) F(status) F(masked_status) F(msg_status)
  F(sb_len_wr) F(host_status) F(driver_status) F(resid) F(duration) F(info)
  printf("SG_IO %d\n", SG_IO);
  return 0;
}
"""


def test_header_layout_matches_the_c_header(tmp_path):
    # A layout mismatch is memory corruption, so this never skips: ./dev installs gcc and libc6-dev.
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "no C compiler: run ./dev setup (installs gcc, libc6-dev)"
    assert os.path.exists("/usr/include/scsi/sg.h"), "<scsi/sg.h> missing: run ./dev setup (installs libc6-dev)"
    (tmp_path / "p.c").write_text(C_PROBE)
    subprocess.run([cc, "-o", str(tmp_path / "p"), str(tmp_path / "p.c")], check=True)
    out = subprocess.run([str(tmp_path / "p")], capture_output=True, text=True, check=True).stdout
    c = {k: int(v) for k, v in (line.split() for line in out.splitlines())}
    assert c.pop("size") == ctypes.sizeof(SgIoHdr)
    assert c.pop("SG_IO") == SG_IO
    for name, offset in c.items():
        assert getattr(SgIoHdr, name).offset == offset, name


def test_build_header_directions():
    hdr, keep = build_header(bytes(6), b"", 0, 1000)
    assert (hdr.dxfer_direction, hdr.dxfer_len, hdr.cmd_len) == (SG_DXFER_NONE, 0, 6)
    hdr, keep = build_header(bytes(16), b"abc", 0, 1000)
    assert (hdr.dxfer_direction, hdr.dxfer_len) == (SG_DXFER_TO_DEV, 3)
    assert ctypes.string_at(hdr.dxferp, 3) == b"abc"
    hdr, keep = build_header(bytes([0x12, 0, 0, 0, 96, 0]), b"", 96, 1000)
    assert (hdr.dxfer_direction, hdr.dxfer_len, hdr.timeout) == (SG_DXFER_FROM_DEV, 96, 1000)
    assert ctypes.string_at(hdr.cmdp, 6) == bytes([0x12, 0, 0, 0, 96, 0])
    assert hdr.mx_sb_len == 252 and hdr.interface_id == ord("S")


@pytest.mark.parametrize("cdb, out, inlen, words", [
    (bytes(5), b"", 0, "CDB of 5 bytes"),
    (bytes(17), b"", 0, "CDB of 17 bytes"),
    (bytes(10), b"x", 4, "bidirectional"),
])
def test_build_header_rejects_bad_commands(cdb, out, inlen, words):
    with pytest.raises(ValueError, match=words):
        build_header(cdb, out, inlen, 1000)


class FakeSg:
    """Plays the sg driver: answers INQUIRY, or whatever ``reply`` says."""

    def __init__(self, **reply):
        self.reply = reply
        self.calls = 0

    def __call__(self, fd, request, hdr):
        assert request == SG_IO and isinstance(hdr, SgIoHdr)
        self.calls += 1
        cdb = ctypes.string_at(hdr.cmdp, hdr.cmd_len)
        if "sense" in self.reply:
            sense = self.reply["sense"]
            ctypes.memmove(hdr.sbp, sense, len(sense))
            hdr.sb_len_wr, hdr.status, hdr.driver_status = len(sense), 0x02, 0x08
        elif "host_status" in self.reply:
            hdr.host_status = self.reply["host_status"]
        elif "errno" in self.reply:
            raise OSError(self.reply["errno"], os.strerror(self.reply["errno"]))
        elif cdb[0] == 0x12:
            n = min(len(INQUIRY), hdr.dxfer_len)
            ctypes.memmove(hdr.dxferp, INQUIRY, n)
            hdr.resid = hdr.dxfer_len - n
        return 0


@pytest.fixture
def node(tmp_path):
    path = tmp_path / "sg0"
    path.write_bytes(b"")
    return str(path)


def test_pyscsi_inquiry_through_fake_sg(node):
    fake = FakeSg()
    s = SCSI(SgioDevice(node, ioctl=fake))
    r = s.inquiry().result
    assert r["t10_vendor_identification"].startswith(b"LINUXSG") and fake.calls >= 1


def test_check_condition_sense_passed_through(node):
    dev = SgioDevice(node, ioctl=FakeSg())
    s = SCSI(dev)
    dev._ioctl = FakeSg(sense=NO_MEDIUM)
    with pytest.raises(SCSICheckCondition) as info:
        s.testunitready()
    assert info.value.sense == NO_MEDIUM and (info.value.asc, info.value.ascq) == (0x3A, 0)


@pytest.mark.parametrize("reply, exc, words", [
    ({"host_status": 0x03}, DeviceTimeout, "timed out"),
    ({"host_status": 0x01}, DeviceConnectionError, "DID_NO_CONNECT"),
    ({"errno": 5}, DeviceConnectionError, "SG_IO failed"),
])
def test_transport_failures_are_told_apart(node, reply, exc, words):
    dev = SgioDevice(node, ioctl=FakeSg(**reply))
    with pytest.raises(exc, match=words):
        dev.run(bytes(6), b"", 0)


def test_regular_file_is_not_a_sg_device(node):
    dev = SgioDevice(node)  # the real ioctl
    with pytest.raises(DeviceError, match="not a SCSI generic device"):
        SCSI(dev)
    dev.close()
    with pytest.raises(DeviceError, match="closed"):
        dev.run(bytes(6), b"", 0)


def test_missing_node_is_a_clear_error():
    with pytest.raises(DeviceConnectionError, match="cannot open SCSI generic device /nonexistent/sg9"):
        SgioDevice("/nonexistent/sg9")


SG_NODES = sorted(glob.glob("/dev/sg[0-9]*"))


@pytest.mark.skipif(not SG_NODES, reason="no /dev/sg* node on this machine (SCSI generic driver has no devices)")
def test_real_sg_device_inquiry():
    dev = SgioDevice(SG_NODES[0], readwrite=os.access(SG_NODES[0], os.W_OK))
    try:
        r = SCSI(dev).inquiry().result
        assert "peripheral_device_type" in r
    finally:
        dev.close()
