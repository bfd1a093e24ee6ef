"""Coalesced reads of a fragmented volume: one READ for a run of nearby pieces, the same bytes as per-piece reads,
bounded read amplification, errors at the right piece; and a real-driver backup counting its READ(16)s."""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.coalesce import MAX_GAP, CoalescedReads, span_limit, volume_reader
from orchestrator.drivers.real import RealDriver
from orchestrator.job import (BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec, restore_job,
                              run_job)
from orchestrator.job.digest import chunk_digests
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import LanFreeWrite, PathKind, Piece
from scsi.devices import InProcessDevice
from scsi.luns.base import LunError
from scsi.luns.file import FileBlockLun
from scsi.luns.memory import MemoryBlockLun
from scsi.result import Nexus, ScsiResult
from scsi.target.blockdev import BlockLunDevice

KIB, MIB = 1024, 1 << 20
DATA = random.Random(7).randbytes(8 * MIB)


class Device:
    """A byte device recording every read; ``bad`` offsets fail with sense data, as a medium error does."""

    def __init__(self, bad: int | None = None):
        self.calls: list[tuple[int, int]] = []
        self.bad = bad

    def read(self, offset: int, length: int) -> bytes:
        self.calls.append((offset, length))
        if self.bad is not None and offset <= self.bad < offset + length:
            err = OSError(f"MEDIUM ERROR at byte {self.bad}")
            err.sense = b"\x70\x00\x03"  # type: ignore[attr-defined]
            raise err
        return DATA[offset:offset + length]


def runs(start: int, count: int, length: int, stride: int) -> list[Piece]:
    return [Piece(i * length, start + i * stride, length) for i in range(count)]


def read_all(pieces, dev=None, **kw):
    dev = dev or Device()
    reads = CoalescedReads(dev.read, ((p.volume_offset, p.length) for p in pieces), **kw)
    got = [bytes(reads.read(p.volume_offset, p.length)) for p in pieces]
    return got, dev.calls


def test_nearby_pieces_share_one_read_and_get_their_own_bytes():
    pieces = runs(0, 2048, 512, KIB)  # 2 MiB of 512-byte runs a KiB apart
    got, calls = read_all(pieces, max_span=MIB)
    assert got == [DATA[p.volume_offset:p.volume_offset + p.length] for p in pieces]
    assert len(calls) == 2 and all(n <= MIB for _, n in calls), calls
    assert calls[0] == (0, MIB - 512)  # a span ends at its last piece, not at the limit


def test_gaps_beyond_the_limit_and_far_pieces_are_read_alone_without_amplification():
    pieces = [Piece(0, 0, 4 * KIB), Piece(4 * KIB, 4 * KIB + MAX_GAP, 4 * KIB),  # gap == MAX_GAP: joined
              Piece(8 * KIB, 8 * KIB + 2 * MAX_GAP + 1, 4 * KIB),              # gap MAX_GAP+1: alone
              Piece(12 * KIB, 6 * MIB, 512)]                                     # far away: alone
    got, calls = read_all(pieces)
    assert got == [DATA[p.volume_offset:p.volume_offset + p.length] for p in pieces]
    assert calls == [(0, 8 * KIB + MAX_GAP), (8 * KIB + 2 * MAX_GAP + 1, 4 * KIB), (6 * MIB, 512)]


def test_span_limit_and_pieces_longer_than_it():
    pieces = runs(0, 48, 64 * KIB, 64 * KIB) + [Piece(0, 4 * MIB, 3 * MIB)]  # 3 MiB adjacent, then one long piece
    got, calls = read_all(pieces, max_span=MIB)
    assert got == [DATA[p.volume_offset:p.volume_offset + p.length] for p in pieces]
    assert calls == [(0, MIB), (MIB, MIB), (2 * MIB, MIB), (4 * MIB, 3 * MIB)]
    assert span_limit(512) == MIB - 1024  # one READ(16) of at most 1 MiB once widened to whole blocks


def test_amplification_is_bounded_by_the_gap_per_piece():
    rnd = random.Random(1)
    pieces, at = [], 0
    for i in range(3000):
        at += rnd.choice([0, 512, 4 * KIB, 60 * KIB, 200 * KIB])
        n = rnd.choice([512, 1024, 8 * KIB])
        if at + n > len(DATA):
            break
        pieces.append(Piece(0, at, n))
        at += n
    got, calls = read_all(pieces)
    assert got == [DATA[p.volume_offset:p.volume_offset + p.length] for p in pieces]
    wanted = sum(p.length for p in pieces)
    assert sum(n for _, n in calls) <= wanted + MAX_GAP * len(pieces)
    assert len(calls) < len(pieces) // 3


def test_unsorted_and_repeated_requests_still_get_the_right_bytes():
    pieces = runs(0, 400, 512, KIB)
    random.Random(2).shuffle(pieces)
    got, calls = read_all(pieces)
    assert got == [DATA[p.volume_offset:p.volume_offset + p.length] for p in pieces]
    dev = Device()
    reads = CoalescedReads(dev.read, ((p.volume_offset, p.length) for p in runs(0, 8, 512, KIB)))
    for p in runs(0, 8, 512, KIB) + runs(0, 8, 512, KIB)[::-1]:  # forward, then backward out of step
        assert bytes(reads.read(p.volume_offset, p.length)) == DATA[p.volume_offset:p.volume_offset + 512]


def test_parts_of_pieces_as_chunk_digests_asks_are_the_same_digests():
    pieces = [Piece(0, 0, 3 * MIB + 512), *runs(3 * MIB + 512, 500, 512, KIB)]
    dev = Device()
    ours = chunk_digests(pieces, volume_reader(dev, 0, pieces), MIB)
    assert ours == chunk_digests(pieces, lambda p: DATA[p.volume_offset:p.volume_offset + p.length], MIB)
    assert len(dev.calls) < 10, dev.calls


def test_the_stream_of_pieces_is_read_ahead_only_as_far_as_one_span():
    taken = []

    def stream():
        for p in runs(0, 4096, 512, KIB):
            taken.append(p)
            yield (p.volume_offset, p.length)
    reads = CoalescedReads(Device().read, stream(), max_span=64 * KIB)
    reads.read(0, 512)
    assert len(taken) <= 64 + 1  # the span's pieces and the one that did not fit


def test_a_medium_error_is_raised_at_the_piece_that_holds_the_bad_block():
    pieces = runs(0, 100, 512, KIB)
    bad = 37 * KIB + 100
    dev = Device(bad=bad)
    reads = CoalescedReads(dev.read, ((p.volume_offset, p.length) for p in pieces))
    for p in pieces[:37]:
        assert bytes(reads.read(p.volume_offset, p.length)) == DATA[p.volume_offset:p.volume_offset + 512]
    with pytest.raises(OSError, match=f"at byte {bad}"):
        reads.read(pieces[37].volume_offset, 512)
    assert bytes(reads.read(pieces[38].volume_offset, 512)) == DATA[38 * KIB:38 * KIB + 512]


def test_a_lost_connection_is_raised_at_once_at_the_piece_asked_for():
    calls = []

    def gone(offset, length):
        calls.append(offset)
        raise ConnectionError("the session dropped")
    reads = CoalescedReads(gone, ((p.volume_offset, p.length) for p in runs(0, 10, 512, KIB)))
    with pytest.raises(ConnectionError):
        reads.read(0, 512)
    assert calls == [0]  # no retry piece by piece


# --------------------------------------------------------------------------- the real driver, counting READ(16)

VOL = 2 * MIB
FRAGMENTED = [(o, 512) for o in range(0, VOL, KIB)]  # 2048 extents: 512-byte runs a KiB apart


class Counted:
    """A LUN as the client sees it, counting the READ(16) and WRITE(16) commands it receives."""

    def __init__(self, inner: BlockLunDevice):
        self.inner, self.reads, self.writes = inner, 0, 0

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        self.reads += cdb[0] == 0x88
        self.writes += cdb[0] == 0x8A
        return self.inner.execute(nexus, cdb, data_out, data_in_len)


class BadBlockLun(MemoryBlockLun):
    """A disk with one unreadable block (MEDIUM ERROR, UNRECOVERED READ ERROR 11h/00h)."""

    bad_lba: int | None = None

    def read(self, lba: int, count: int) -> bytes:
        if self.bad_lba is not None and lba <= self.bad_lba < lba + count:
            raise LunError(f"LUN {self.name}: unrecovered read error", key=0x3, asc=0x11, ascq=0x00)
        return super().read(lba, count)


@pytest.fixture
def fragmented(tmp_path):
    pool_file = tmp_path / "pool.img"
    pool_file.write_bytes(bytes(8 * MIB))
    disk = BadBlockLun("disk0", num_blocks=VOL // 512, serial="disk0-serial")
    disk.write(0, DATA[:VOL])
    dest = MemoryBlockLun("disk1", num_blocks=VOL // 512, serial="disk1-serial")
    pool = FileBlockLun("pool0", pool_file, serial="pool0-serial")
    luns = {"disk0": disk, "disk1": dest, "pool0": pool}
    counted = {n: Counted(BlockLunDevice(lun)) for n, lun in luns.items()}
    cat = Catalogue(tmp_path / "cat.db")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 8 * MIB)
    server = LocalPool({"VOL1": pool_file})
    drv = RealDriver(cat, movers={}, devices={n: InProcessDevice(c) for n, c in counted.items()})
    yield drv, luns, counted, server
    server.close()
    pool.close()
    cat.close()


def _plan(luns, server, start):
    return PathPlan(start=start, movers=[], lan_free=start == PathKind.LAN_FREE, lan=True, server=server.address,
                    pool_designators={"pool0": luns["pool0"].naa.hex()}, batch_mb=10, max_lan_piece=MIB)


def _dev(lun) -> DeviceSpec:
    return DeviceSpec(name=lun.name, designator=lun.naa.hex(), block_size=lun.block_size)


@pytest.mark.parametrize("start", [PathKind.LAN, PathKind.LAN_FREE])
def test_a_fragmented_volume_is_read_in_few_commands_and_restored_byte_for_byte(fragmented, start):
    drv, luns, counted, server = fragmented
    spec = BackupSpec(node="N1", filespace="F:", source=_dev(luns["disk0"]), volume_size=VOL, file_system="ntfs",
                      extents=FRAGMENTED, paths=_plan(luns, server, start))
    report = run_job(backup_job(spec), drv.execute)
    assert report.ok and report.path_used == start.value, report.summary()
    # backup and verification each read the 2 MiB volume: a few 1 MiB READs, not one a piece (4,096 before)
    assert counted["disk0"].reads <= 8, counted["disk0"].reads
    if start == PathKind.LAN_FREE:  # the pool is read back by image offset: its pieces are adjacent
        assert counted["pool0"].reads <= 8, counted["pool0"].reads
    chain = drv.catalogue.restore_chain("N1", "F:")
    rspec = RestoreSpec(node="N1", filespace="F:", chain=[object_spec(o) for o in chain],
                        destination=_dev(luns["disk1"]), destination_size=VOL, paths=_plan(luns, server, start))
    report = run_job(restore_job(rspec), drv.execute)
    assert report.ok, report.summary()
    if start == PathKind.LAN_FREE:
        assert counted["pool0"].reads <= 12, counted["pool0"].reads
    restored = luns["disk1"].read(0, VOL // 512)
    assert all(restored[o:o + n] == DATA[o:o + n] for o, n in FRAGMENTED)
    assert all(restored[o + n:o + KIB] == bytes(KIB - n) for o, n in FRAGMENTED)  # the gaps were not written


def test_a_bad_block_fails_the_transfer_at_the_piece_that_holds_it(fragmented):
    drv, luns, counted, _ = fragmented
    pieces = tuple(Piece(i * 512, o, n) for i, (o, n) in enumerate(FRAGMENTED))
    luns["disk0"].bad_lba = 700 * KIB // 512  # inside piece 700, in the middle of a coalesced span
    r = drv.execute(LanFreeWrite("disk0", "pool0", 0, pieces))
    assert r.failure is not None and r.failure.device == "disk0" and r.failure.kind == "sense", r.failure
    assert r.pieces_done == 700 and [p.volume_offset for p in r.stored][-1] == 699 * KIB
    assert counted["disk0"].reads == 1 + 701  # the failed span, then its pieces alone up to the bad one
