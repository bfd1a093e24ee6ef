"""RECEIVE COPY RESULTS: live COPY STATUS, list id rules, OPERATING PARAMETERS, VPD 8Fh, FC map."""
from __future__ import annotations

import threading
import time

import pytest

from scsi.copymgr import CopyLimits, CopyManager, FcMapEntry
from scsi.copymgr.client import Client, cscd_for_lun, sense_of
from scsi.luns import MemoryBlockLun, TapeLun
from scsi.result import Nexus, Status
from scsi.sense import SenseKey
from scsi.xcopy import BlockToBlock, FcPortIdCscd, FcPortNameCscd, Header, ParameterList, lu_identifier_for

LIMITS = CopyLimits(chunk_bytes=4096, io_depth=2, io_workers=4, max_concurrent_copies=2,
                    total_concurrent_copies=2)


class GatedLun(MemoryBlockLun):
    """Writes at or past ``gate_lba`` wait until ``gate`` is set."""

    def __init__(self, *a, gate_lba: int, **kw):
        super().__init__(*a, **kw)
        self.gate_lba = gate_lba
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def write(self, lba, data):
        if lba >= self.gate_lba:
            self.waiting.set()
            if not self.gate.wait(30):
                raise RuntimeError("gate never opened")
        super().write(lba, data)


def b2b(n, src_lba, dst_lba):
    return BlockToBlock(src=0, dst=1, block_count=n, src_lba=src_lba, dst_lba=dst_lba)


def wait_for(cond, what):
    deadline = time.monotonic() + 30  # a guard against hanging, not a speed check
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def gated():
    src = MemoryBlockLun("s", num_blocks=4096)
    src.write(0, bytes(range(256)) * 2 * 4096)
    dst = GatedLun("d", num_blocks=4096, gate_lba=1000)
    m = CopyManager({"s": src, "d": dst}, limits=LIMITS)
    yield m, src, dst
    dst.gate.set()
    m.close()


def start(m, pl, nexus=None):
    c = Client(m) if nexus is None else Client(m, nexus)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", c.xcopy(pl)))
    t.start()
    return t, box


def test_copy_status_while_running_and_after(gated):
    m, src, dst = gated
    pl = ParameterList(header=Header(list_id=7), cscds=(cscd_for_lun(src), cscd_for_lun(dst)),
                       segments=(b2b(64, 0, 0), b2b(64, 0, 1000)))
    t, box = start(m, pl)
    dst.waiting.wait(30)
    c = Client(m)
    # segments overlap in the pipeline: the first counts once its last write has landed
    wait_for(lambda: c.copy_status(7).segments_processed == 1, "the first segment to complete")
    st = c.copy_status(7)
    assert st.status == 0 and st.segments_processed == 1 and st.bytes_transferred >= 64 * 512
    # the same list id may not start again while it runs on this I_T nexus ...
    r = c.xcopy(pl)
    s = sense_of(r)
    assert (s.key, s.asc, s.ascq) == (SenseKey.ILLEGAL_REQUEST, 0x00, 0x16)
    # ... but another nexus may use it, and a different list id is fine
    other = Client(m, Nexus("iqn.other", "t"))
    small = ParameterList(header=Header(list_id=7), cscds=pl.cscds, segments=(b2b(8, 0, 200),))
    assert other.xcopy(small).ok
    assert other.copy_status(7).status == 1
    # a third concurrent copy exceeds TOTAL CONCURRENT COPIES... (2 allowed: one running + this one)
    t2, box2 = start(m, ParameterList(header=Header(list_id=8), cscds=pl.cscds, segments=(b2b(8, 0, 1100),)))
    wait_for(lambda: m.records.running_count() == 2, "two running copies")
    busy = c.xcopy(ParameterList(header=Header(list_id=9), cscds=pl.cscds, segments=(b2b(8, 0, 300),)))
    assert busy.status == Status.BUSY
    dst.gate.set()
    t.join(30)
    t2.join(30)
    assert box["r"].ok and box2["r"].ok
    st = c.copy_status(7)
    assert (st.status, st.segments_processed, st.bytes_transferred) == (1, 2, 128 * 512)
    assert dst.read(1000, 64) == src.read(0, 64)
    assert m.counters["completed"] == 3 and m.counters["bytes"] == (128 + 16) * 512


def test_list_id_usage_11b_keeps_nothing(gated):
    m, src, dst = gated
    dst.gate.set()
    c = Client(m)
    pl = ParameterList(header=Header(list_id=0, list_id_usage=3), cscds=(cscd_for_lun(src), cscd_for_lun(dst)),
                       segments=(b2b(4, 0, 0),))
    assert c.xcopy(pl).ok
    assert sense_of(c.rcr(0x00, 0)).asc == 0x24


def test_results_are_per_nexus_and_dropped_at_logout(gated):
    m, src, dst = gated
    dst.gate.set()
    c = Client(m)
    pl = ParameterList(header=Header(list_id=3), cscds=(cscd_for_lun(src), cscd_for_lun(dst)),
                       segments=(b2b(4, 0, 0),))
    assert c.xcopy(pl).ok and c.copy_status(3).status == 1
    assert sense_of(Client(m, Nexus("iqn.someone-else", c.nexus.target)).rcr(0x00, 3)).asc == 0x24
    m.forget_nexus(c.nexus.it)
    assert sense_of(c.rcr(0x00, 3)).asc == 0x24


def test_operating_parameters_block_only():
    m = CopyManager({"a": MemoryBlockLun("a", num_blocks=8)}, limits=CopyLimits(held_data_limit=0))
    op = Client(m).operating_parameters()
    assert op.implemented_descriptors == (0x02, 0x07, 0x0A, 0xE4)
    assert (op.max_cscd_count, op.max_segment_count, op.max_descriptor_list_length) == (32, 256, 8192)
    assert op.max_inline_data_length == 0 and op.max_stream_device_transfer_size == 0
    assert op.held_data_limit == 0 and op.snlid
    m.close()


def test_operating_parameters_with_tape_and_fc_map(tmp_path):
    tape = TapeLun("t", tmp_path / "t.tape", create=True)
    disk = MemoryBlockLun("d", num_blocks=8)
    fc = [FcMapEntry(lun="d", lun_number=3, wwpn="21:00:00:e0:8b:05:05:04"),
          FcMapEntry(lun="t", lun_number=0, port_id=0x010200)]
    m = CopyManager({"d": disk, "t": tape}, fc_map=fc)
    op = Client(m).operating_parameters()
    assert op.implemented_descriptors == (0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x0A, 0x0B, 0x0C, 0x0D,
                                          0x0E, 0x0F, 0x10, 0xE0, 0xE1, 0xE4)
    assert op.max_inline_data_length == 65536 and op.max_stream_device_transfer_size == 1 << 24
    assert op.held_data_limit == 1 << 20
    # E0h/E1h resolve through the map
    disk.write(0, b"\x5a" * 512)
    e0 = FcPortNameCscd(n_port_name="210000e08b050504", lu_identifier=lu_identifier_for(3), block_length=512)
    pl = ParameterList(header=Header(list_id=1), cscds=(e0,),
                       segments=(BlockToBlock(src=0, dst=0, block_count=1, src_lba=0, dst_lba=5),))
    assert Client(m).xcopy(pl).ok and disk.read(5, 1) == b"\x5a" * 512
    e1 = FcPortIdCscd(n_port_id=0x010200, lu_identifier=lu_identifier_for(1), pdt=1)
    pl = ParameterList(header=Header(list_id=2), cscds=(e1,),
                       segments=(BlockToBlock(src=0, dst=0, block_count=1, src_lba=0, dst_lba=5),))
    assert sense_of(Client(m).xcopy(pl)).asc == 0x0D  # LUN 1 is not behind that port
    m.close()
    tape.close()


def test_vpd_8f_page():
    m = CopyManager({"a": MemoryBlockLun("a", num_blocks=8)})
    page = m.vpd_8f()
    assert page[:2] == b"\x00\x8f" and int.from_bytes(page[2:4], "big") == len(page) - 4
    descs, pos = {}, 4
    while pos < len(page):
        kind, n = int.from_bytes(page[pos:pos + 2], "big"), int.from_bytes(page[pos + 2:pos + 4], "big")
        assert n % 4 == 0
        descs[kind] = page[pos + 4:pos + 4 + n]
        pos += 4 + n
    assert pos == len(page)
    # Supported Commands: 83h [00h], 84h [00h 01h 03h 04h]
    assert descs[0x0001][:10] == bytes([9, 0x83, 1, 0, 0x84, 4, 0, 1, 3, 4])
    assert descs[0x0004][4:8] == bytes([0, 32, 1, 0]) and descs[0x0004][8:12] == (8192).to_bytes(4, "big")
    assert descs[0x0008][:6] == bytes([5, 0x02, 0x07, 0x0A, 0x0D, 0xE4])
    assert descs[0x000C] == bytes(4)  # no CSCD IDs above 07FFh
    assert len(descs[0x8001]) == 32 and descs[0x8001][8:12] == (1 << 28).to_bytes(4, "big")
    assert 0x9101 not in descs and 0xC001 in descs
    assert m.vpd_8f(pdt=1)[0] == 0x01
    m.close()
