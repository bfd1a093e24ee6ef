"""No memory growth over many commands through LibiscsiDevice (tasks freed, no Python residue).

~50k commands mixing no-data, data-in, data-out and CHECK CONDITION paths, and
a batch through execute_many; RSS may not grow by more than a small bound
after warm-up.  A leaked scsi_task alone (>= 176 bytes plus malloc overhead)
would grow RSS by ~9 MiB over this run; a leaked Python Pending by far more.
The million-command figure is benchmarks/bench_libiscsi_leak.py.
"""
from __future__ import annotations

import gc

import pytest

from scsi.devices import DeviceCheckCondition, RawCommand
from scsi.devices.iscsi import LibiscsiDevice

BLOCK = 512
NBLOCKS = (4 << 20) // BLOCK
BOUND_KIB = 4096


def rw16(op: int, lba: int) -> bytes:
    return bytes([op, 0]) + lba.to_bytes(8, "big") + (1).to_bytes(4, "big") + bytes(2)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def run_mix(dev: LibiscsiDevice, rounds: int) -> int:
    tur = RawCommand(bytes(6))
    read = RawCommand(rw16(0x88, 0), datain_len=BLOCK)
    write = RawCommand(rw16(0x8A, 7), dataout=b"\xa5" * BLOCK)
    past_end = RawCommand(rw16(0x88, NBLOCKS))
    past_end.datain = bytearray(BLOCK)
    n = 0
    for i in range(rounds):
        dev.execute(tur)
        dev.execute(tur)
        dev.execute(tur)
        read.cdb[2:10] = (i % NBLOCKS).to_bytes(8, "big")
        dev.execute(read)
        dev.execute(write)
        try:
            dev.execute(past_end)
        except DeviceCheckCondition:
            pass
        else:
            raise AssertionError("READ past the end succeeded")
        n += 6
    return n


@pytest.fixture(scope="module")
def lun_url(tgtd):
    t = tgtd.new_target("leak", {1: 4 << 20})
    return t.url(1)


def test_rss_stays_flat_over_50k_commands(lun_url):
    with LibiscsiDevice(lun_url) as dev:
        run_mix(dev, 500)  # warm up allocators and caches
        gc.collect()
        before = rss_kib()
        n = run_mix(dev, 7500)
        outcomes = dev.execute_many((RawCommand(rw16(0x88, i % NBLOCKS), datain_len=BLOCK) for i in range(5000)),
                                    max_outstanding=16)
        assert all(o.ok for o in outcomes)
        del outcomes
        gc.collect()
        growth = rss_kib() - before
        assert not dev._inflight, "tasks left in flight"
    assert n + 5000 >= 50_000
    assert growth < BOUND_KIB, f"RSS grew {growth} KiB over {n + 5000} commands"
