"""LibiscsiDevice through pyscsi against the test session's own tgtd on 127.0.0.1.

Expected values come from what tgtd is told to serve (backing files, serial
numbers, CHAP accounts) and from SPC/SBC, never from the code under test.
"""
from __future__ import annotations

import os
import signal

import pytest
from pyscsi.pyscsi.scsi import SCSI
from pyscsi.pyscsi.scsi_cdb_read16 import Read16
from pyscsi.pyscsi.scsi_cdb_testunitready import TestUnitReady as TurCommand
from pyscsi.pyscsi.scsi_enum_command import sbc
from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

from scsi import commands, designators
from scsi.devices import (DeviceCheckCondition, DeviceConnectionError, DeviceLoginError, DeviceTimeout,
                          open_device)
from scsi.devices.iscsi import LibiscsiDevice

BLOCK = 512
LUN_BYTES = 8 << 20
NBLOCKS = LUN_BYTES // BLOCK
INITIATOR = "iqn.2026-11.org.serverfree.test:pytest-initiator"


def tur() -> TurCommand:
    return TurCommand(sbc.TEST_UNIT_READY)


@pytest.fixture(scope="module")
def target(tgtd):
    t = tgtd.new_target("devices", {1: LUN_BYTES, 2: LUN_BYTES})
    tgtd.tgtadm("--op", "update", "--mode", "logicalunit", "--tid", str(t.tid), "--lun", "1",
                "--params", "scsi_sn=SFTEST0001")
    return t


@pytest.fixture
def dev(target):
    d = LibiscsiDevice(target.url(1), initiator_iqn=INITIATOR, timeout=10)
    yield d
    d.close()


def test_standard_inquiry_and_device_type(dev):
    s = SCSI(dev, BLOCK)
    r = s.inquiry().result
    assert r["t10_vendor_identification"].rstrip() == b"IET"  # tgtd's vendor id
    assert r["peripheral_device_type"] == 0 and dev.devicetype == 0
    cap = s.readcapacity16().result
    assert (cap["returned_lba"], cap["block_length"]) == (NBLOCKS - 1, BLOCK)


def test_vpd_pages_83_and_80(dev):
    s = SCSI(dev, BLOCK)
    serial = s.inquiry(evpd=1, page_code=0x80).result
    assert serial["unit_serial_number"].strip(b"\0 ") == b"SFTEST0001"  # tgtd right-aligns it
    page = s.inquiry(evpd=1, page_code=0x83).result
    naa = [d for d in page["designator_descriptors"] if d["designator_type"] == 3 and d["association"] == 0]
    assert naa, f"tgtd always reports an NAA designator for the LU: {page}"


def test_e4_descriptor_names_this_lun(target, dev):
    s = SCSI(dev, BLOCK)
    cscd = designators.cscd_for_device(s, block_length=BLOCK)
    raw = cscd.encode()
    # the LU's NAA designator, read independently from the raw VPD 83h page (SPC-4 7.8.6)
    page = bytes(s.inquiry(evpd=1, page_code=0x83, alloclen=255).datain)
    length = int.from_bytes(page[2:4], "big")
    pos, naa_bodies = 4, []
    while pos < 4 + length:
        dlen = page[pos + 3]
        if page[pos + 1] & 0x0F == 3 and (page[pos + 1] >> 4) & 3 == 0:
            naa_bodies.append((page[pos] & 0x0F, page[pos + 4:pos + 4 + dlen]))
        pos += 4 + dlen
    assert naa_bodies, f"tgtd reports an NAA designator for the LU: {page.hex()}"
    code_set, naa = naa_bodies[0]
    # the 32-byte E4h descriptor, byte by byte as SPC-4 6.4.5.6 / reference 2 lays it out
    assert len(raw) == 32
    assert raw[0] == 0xE4                      # DESCRIPTOR TYPE CODE
    assert raw[1] == 0x00                      # LU ID TYPE 0, NUL 0, PERIPHERAL DEVICE TYPE 0 (disk)
    assert raw[2:4] == b"\0\0"                 # RELATIVE INITIATOR PORT IDENTIFIER: any
    assert raw[4] == code_set                  # CODE SET as the VPD page says (binary NAA: 1)
    assert raw[5] == 0x03                      # ASSOCIATION 00b (the LU), DESIGNATOR TYPE 3h (NAA)
    assert raw[6] == 0 and raw[7] == len(naa)  # reserved, DESIGNATOR LENGTH
    assert raw[8:8 + len(naa)] == naa and raw[8 + len(naa):28] == bytes(20 - len(naa))
    assert raw[28] == 0 and int.from_bytes(raw[29:32], "big") == BLOCK  # PAD 0, DISK BLOCK LENGTH
    other = LibiscsiDevice(target.url(2), initiator_iqn=INITIATOR)
    try:
        assert designators.cscd_for_device(SCSI(other, BLOCK)).designator != cscd.designator
    finally:
        other.close()


def test_read_write16_round_trip_reaches_the_backing_file(target, dev):
    s = SCSI(dev, BLOCK)
    payload = os.urandom(4 * BLOCK)
    s.write16(100, 4, bytearray(payload))
    assert bytes(s.read16(100, 4).datain) == payload
    with open(target.luns[1], "rb") as f:
        f.seek(100 * BLOCK)
        assert f.read(4 * BLOCK) == payload


def test_check_condition_passes_the_raw_sense(dev):
    s = SCSI(dev, BLOCK)
    with pytest.raises(SCSICheckCondition) as info:
        s.read16(NBLOCKS, 1)  # one past the last LBA
    exc = info.value
    assert isinstance(exc, DeviceCheckCondition) and isinstance(exc, dev.CheckCondition)
    sense = exc.sense
    # libiscsi's data-in for CHECK CONDITION is SenseLength(2) + sense: what we pass on
    # must be exactly one complete fixed-format sense buffer, nothing before or after.
    assert sense[0] & 0x7F == 0x70 and len(sense) == 8 + sense[7]
    assert (sense[2] & 0x0F, sense[12], sense[13]) == (0x05, 0x21, 0x00)
    assert exc.cdb[0] == 0x88
    dev.execute(tur())  # the session is still usable afterwards


def test_our_copy_commands_run_through_the_backend(dev):
    """tgtd has no copy manager: our RECEIVE COPY RESULTS CDB must reach it and come back rejected
    with the exact sense SPC-4 prescribes for an unsupported opcode (the good branch, with values,
    runs against our own target in test_copymgr_iscsi.py::test_operating_parameters_through_libiscsi)."""
    s = SCSI(dev, BLOCK)
    with pytest.raises(SCSICheckCondition) as info:
        commands.operating_parameters(s)
    exc = info.value
    assert (exc.sense_key, exc.asc, exc.ascq) == (0x05, 0x20, 0x00)  # INVALID COMMAND OPERATION CODE
    assert exc.cdb[0] == 0x84 and exc.cdb[1] & 0x1F == 0x03  # RCR, service action OPERATING PARAMETERS
    dev.execute(tur())  # the session is still usable afterwards


def test_several_commands_outstanding_on_one_session(dev):
    s = SCSI(dev, BLOCK)
    blocks = {lba: os.urandom(BLOCK) for lba in range(200, 264)}
    for lba, data in blocks.items():
        s.write16(lba, 1, bytearray(data))
    cmds = [Read16(sbc.READ_16, BLOCK, lba, 1) for lba in blocks]
    cmds.insert(10, Read16(sbc.READ_16, BLOCK, NBLOCKS + 5, 1))  # one bad command in the middle
    outcomes = dev.execute_many(cmds, max_outstanding=8)
    assert dev.max_inflight > 1, "commands were never in flight together"
    assert len(outcomes) == len(cmds)
    bad = outcomes.pop(10)
    assert isinstance(bad.error, DeviceCheckCondition) and bad.error.asc == 0x21
    for (lba, data), outcome in zip(blocks.items(), outcomes):
        assert outcome.ok and outcome.datain_len == BLOCK, lba
        assert bytes(outcome.cmd.datain) == data, lba


def test_submit_and_wait(dev):
    pending = [dev.submit(tur()) for _ in range(5)]
    dev.wait(pending)
    assert all(p.result is not None and p.result.ok for p in pending)
    assert dev.max_inflight >= 5


def test_initiator_iqn_is_what_the_target_sees(tgtd):
    t = tgtd.new_target("acl", {1: "4M"}, allow="127.0.0.1")
    tgtd.tgtadm("--op", "unbind", "--mode", "target", "--tid", str(t.tid), "-I", "127.0.0.1")
    tgtd.tgtadm("--op", "bind", "--mode", "target", "--tid", str(t.tid), "--initiator-name", INITIATOR)
    with LibiscsiDevice(t.url(1), initiator_iqn=INITIATOR) as ok:
        ok.execute(tur())
    with pytest.raises(DeviceLoginError, match="iqn.2026-11.org.serverfree.test:someone-else"):
        LibiscsiDevice(t.url(1), initiator_iqn="iqn.2026-11.org.serverfree.test:someone-else")
    t.delete()


@pytest.fixture(scope="module")
def chap_target(tgtd):
    t = tgtd.new_target("chap", {1: "4M"})
    t.require_chap("initiator-user", "initiator-secret-1")
    return t


def test_chap_one_way(chap_target):
    with open_device(chap_target.url(1), chap=("initiator-user", "initiator-secret-1")) as d:
        d.execute(tur())
    with pytest.raises(DeviceLoginError, match="CHAP user initiator-user.*Authentication failure"):
        LibiscsiDevice(chap_target.url(1), chap=("initiator-user", "wrong-secret-123"))
    with pytest.raises(DeviceLoginError, match="Authentication failure"):
        LibiscsiDevice(chap_target.url(1))


def test_chap_in_the_url(chap_target):
    url = chap_target.url(1).replace("iscsi://", "iscsi://initiator-user%initiator-secret-1@")
    with LibiscsiDevice(url) as d:
        d.execute(tur())
        assert "initiator-secret-1" not in repr(d)


def test_chap_mutual(tgtd):
    t = tgtd.new_target("mutual", {1: "4M"})
    t.require_chap("mutual-initiator", "initiator-secret-2")
    t.set_mutual_chap("mutual-target", "target-secret-22")
    good = dict(chap=("mutual-initiator", "initiator-secret-2"))
    with LibiscsiDevice(t.url(1), mutual_chap=("mutual-target", "target-secret-22"), **good) as d:
        d.execute(tur())
    with pytest.raises(DeviceLoginError, match="CHAP_R"):  # the target proved the wrong secret
        LibiscsiDevice(t.url(1), mutual_chap=("mutual-target", "not-the-secret-1"), **good)
    with pytest.raises(ValueError, match="mutual CHAP needs"):
        LibiscsiDevice(t.url(1), mutual_chap=("mutual-target", "target-secret-22"))
    t.delete()


def test_wrong_target_name_is_a_login_error(tgtd):
    url = f"iscsi://{tgtd.host}:{tgtd.port}/iqn.2026-11.org.serverfree.test:no-such-target/1"
    with pytest.raises(DeviceLoginError, match="Target not found"):
        LibiscsiDevice(url)


def test_unreachable_portal_is_a_connection_error(tgtd):
    import socket

    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeviceConnectionError, match=f"cannot reach portal 127.0.0.1:{port}"):
        LibiscsiDevice(f"iscsi://127.0.0.1:{port}/iqn.x:y/1", timeout=3)


def test_removed_lun_gives_logical_unit_not_supported(tgtd):
    t = tgtd.new_target("removal", {1: "4M", 2: "4M"})
    d = LibiscsiDevice(t.url(2))
    try:
        d.execute(tur())
        t.remove_lun(2)
        with pytest.raises(DeviceCheckCondition, match="LOGICAL UNIT NOT SUPPORTED") as info:
            d.execute(Read16(sbc.READ_16, BLOCK, 0, 1))
        assert (info.value.sense_key, info.value.asc, info.value.ascq) == (0x05, 0x25, 0x00)
    finally:
        d.close()
        t.delete()


def test_offline_lun_is_not_ready(tgtd):
    t = tgtd.new_target("offline", {1: "4M"})
    d = LibiscsiDevice(t.url(1))
    try:
        t.set_online(1, False)
        with pytest.raises(DeviceCheckCondition) as info:
            d.execute(tur())
        assert info.value.sense_key == 0x02  # NOT READY
        t.set_online(1, True)
        d.execute(tur())
    finally:
        d.close()
        t.delete()


def test_dropped_connection_is_a_connection_error(tgtd):
    t = tgtd.new_target("dropped", {1: "4M"})
    d = LibiscsiDevice(t.url(1))
    d.execute(tur())
    t.delete(force=True)  # tgtd closes the session's connection
    with pytest.raises(DeviceConnectionError, match="connection lost"):
        d.execute(tur())
    with pytest.raises(DeviceConnectionError, match="session lost earlier"):
        d.execute(tur())
    assert not d.connected
    d.close()


def test_silent_target_is_a_timeout(tgtd, target):
    d = LibiscsiDevice(target.url(1), timeout=1)
    d.execute(tur())
    os.kill(tgtd.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(DeviceTimeout, match="no answer within 1 s"):
            d.execute(tur())
    finally:
        os.kill(tgtd.proc.pid, signal.SIGCONT)
    d.close()


def test_closed_device_refuses(dev):
    dev.close()
    dev.close()  # idempotent
    with pytest.raises(DeviceConnectionError, match="closed"):
        dev.execute(tur())


def test_killed_target_daemon_is_a_connection_error(tmp_path):
    from tests.fixtures.tgtd import Tgtd

    daemon = Tgtd(tmp_path).start()
    try:
        d = LibiscsiDevice(daemon.new_target("doomed", {1: "1M"}).url(1), timeout=5)
        d.execute(tur())
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        with pytest.raises(DeviceConnectionError, match="connection lost"):
            d.execute(tur())
        d.close()
    finally:
        daemon.stop()


def test_run_raw_bytes_returns_sense_instead_of_raising(dev):
    cdb = bytes([0x88, 0]) + NBLOCKS.to_bytes(8, "big") + (1).to_bytes(4, "big") + bytes(2)
    result = dev.run(cdb, b"", BLOCK)
    assert result.status == 0x02 and result.sense[12:14] == b"\x21\x00"
    good = dev.run(cdb[:2] + (0).to_bytes(8, "big") + cdb[10:], b"", BLOCK)
    assert good.ok and len(good.data) == BLOCK


def test_write_passes_are_corked_and_nothing_is_left_corked(dev):
    """Each write pass of libiscsi runs with TCP_CORK set and ends with it cleared (no PDU held back)."""
    import select
    import socket

    sock = socket.socket(fileno=os.dup(dev._lib.iscsi_get_fd(dev._ctx)))  # our own fd on the same socket
    seen: list[tuple[bool, int]] = []

    class Lib:
        def __getattr__(self, name):
            return getattr(real, name)

        def iscsi_service(self, ctx, revents):
            seen.append((bool(revents & select.POLLOUT), sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)))
            return real.iscsi_service(ctx, revents)

    real, dev._lib = dev._lib, Lib()
    try:
        data = os.urandom(1 << 20)
        SCSI(dev, BLOCK).write16(0, len(data) // BLOCK, data)
        assert SCSI(dev, BLOCK).read16(0, len(data) // BLOCK).datain == data
    finally:
        dev._lib = real
        corked_after = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
        sock.close()
    assert any(out for out, _ in seen), seen
    assert all(cork == (1 if out else 0) for out, cork in seen), seen
    assert corked_after == 0
