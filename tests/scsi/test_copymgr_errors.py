"""The error matrix: each ASC/ASCQ with its sense-key-specific pointer, in validation order."""
from __future__ import annotations

import pytest

from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.cdb import receive_copy_results_cdb
from scsi.copymgr.client import Client, cscd_for_lun, sense_of
from scsi.luns import LunError, MemoryBlockLun, TapeLun
from scsi.result import Nexus
from scsi.sense import FieldPointer, SegmentPointer, SenseKey
from scsi.xcopy import (BlockToBlock, FcPortNameCscd, Header, IdentificationCscd, InlineToStream,
                        ParameterList, StreamToStream)

IR, CA = SenseKey.ILLEGAL_REQUEST, SenseKey.COPY_ABORTED
LIMITS = CopyLimits(chunk_bytes=4096, io_depth=3, io_workers=4)


class FailingLun(MemoryBlockLun):
    """Writes at or past ``bad_lba`` fail with MEDIUM ERROR; counts bytes really written."""

    def __init__(self, *a, bad_lba: int, **kw):
        super().__init__(*a, **kw)
        self.bad_lba = bad_lba
        self.written = 0

    def write(self, lba, data):
        if lba <= self.bad_lba < lba + len(data) // self.block_size:
            raise LunError("write error", key=0x3, asc=0x0C, ascq=0x00, information=self.bad_lba)
        super().write(lba, data)
        self.written += len(data)


@pytest.fixture
def env():
    a = MemoryBlockLun("a", num_blocks=1024)
    b = MemoryBlockLun("b", num_blocks=1024)
    m = CopyManager({"a": a, "b": b}, limits=LIMITS)
    yield m, a, b
    m.close()


def plist(cscds, segments, **hdr):
    return ParameterList(header=Header(list_id=hdr.pop("list_id", 1), **hdr), cscds=tuple(cscds),
                         segments=tuple(segments))


def b2b(src=0, dst=1, n=8, **kw):
    return BlockToBlock(src=src, dst=dst, block_count=n, src_lba=kw.pop("src_lba", 0),
                        dst_lba=kw.pop("dst_lba", 0), **kw)


def expect(r, key, asc, ascq, *, byte=None, bit=None, in_cdb=False):
    s = sense_of(r)
    assert (s.key, s.asc, s.ascq) == (key, asc, ascq), str(s)
    if byte is not None:
        assert isinstance(s.sks, FieldPointer), str(s)
        assert (s.sks.byte, s.sks.bit, s.sks.in_cdb) == (byte, bit, in_cdb), str(s)
    return s


def test_zero_length_is_good(env):
    m, *_ = env
    assert Client(m).xcopy(b"", length=0).ok


def test_short_list_is_parameter_list_length_error(env):
    m, *_ = env
    expect(Client(m).xcopy(bytes(8)), IR, 0x1A, 0x00)


def test_truncated_list_libiscsi_paramhdr(env):
    m, a, b = env
    raw = plist([cscd_for_lun(a)], [b2b(0, 0)]).encode()  # T=32, S=28 -> 76 bytes
    for n in (47, 75):
        expect(Client(m).xcopy(raw[:n]), IR, 0x1A, 0x00)


def test_descriptor_list_length_checked_before_counts(env):
    m, a, b = env
    cscds = [cscd_for_lun(a)] * (LIMITS.max_cscds + 1)
    segs = [b2b(0, 0)] * ((LIMITS.max_descriptor_list_length - 33 * 32) // 28 + 2)
    expect(Client(m).xcopy(plist(cscds, segs)), IR, 0x1A, 0x00)


def test_too_many_cscds_and_segments(env):
    m, a, b = env
    expect(Client(m).xcopy(plist([cscd_for_lun(a)] * 33, [b2b(0, 0)])), IR, 0x26, 0x06)
    expect(Client(m).xcopy(plist([cscd_for_lun(a)], [b2b(0, 0)] * 257)), IR, 0x26, 0x08)


def test_e0h_unsupported_without_fc_map_libiscsi_descrtype(env):
    m, a, _ = env
    e0 = FcPortNameCscd(n_port_name="00" * 8)
    expect(Client(m).xcopy(plist([e0], [b2b(0, 0)])), IR, 0x26, 0x07, byte=16)


def test_stream_segment_unsupported_on_block_only_mover(env):
    m, a, _ = env
    seg = StreamToStream(src=0, dst=0, src_transfer_length=512, dst_transfer_length=512, byte_count=512)
    expect(Client(m).xcopy(plist([cscd_for_lun(a)], [seg])), IR, 0x26, 0x09, byte=48)


def test_malformed_fields_point_at_their_byte(env):
    m, a, _ = env
    raw = bytearray(plist([cscd_for_lun(a)], [b2b(0, 0)]).encode())
    bad = bytearray(raw)
    bad[23] = 21  # E4h DESIGNATOR LENGTH > 20
    expect(Client(m).xcopy(bytes(bad)), IR, 0x26, 0x00, byte=23)
    bad = bytearray(raw)
    bad[51] = 0x14  # 02h DESCRIPTOR LENGTH must be 18h
    expect(Client(m).xcopy(bytes(bad)), IR, 0x26, 0x00, byte=50)
    bad = bytearray(raw)
    bad[1] = 0b01 << 3  # LIST ID USAGE 01b is reserved
    expect(Client(m).xcopy(bytes(bad)), IR, 0x26, 0x00, byte=1, bit=4)
    bad = bytearray(raw)
    bad[0], bad[1] = 5, 0b11 << 3  # usage 11b needs list id 0
    expect(Client(m).xcopy(bytes(bad)), IR, 0x26, 0x00, byte=0)


def test_inline_data_on_block_only_mover(env):
    m, a, _ = env
    pl = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(a),), segments=(b2b(0, 0),),
                       inline_data="00112233")
    expect(Client(m).xcopy(pl), IR, 0x26, 0x00, byte=12)


def test_cdb_errors(env):
    m, *_ = env
    cdb = bytearray(16)
    cdb[0], cdb[1] = 0x83, 0x01
    r = m.execute(Nexus("i"), bytes(cdb), b"", 0)
    expect(r, IR, 0x24, 0x00, byte=1, bit=4, in_cdb=True)
    expect(Client(m).rcr(0x00, list_id=77), IR, 0x24, 0x00, byte=2, in_cdb=True)
    expect(Client(m).rcr(0x02), IR, 0x24, 0x00, byte=1, bit=4, in_cdb=True)
    bad = bytearray(receive_copy_results_cdb(3))
    bad[5] = 1
    # the pointer names the reserved field (bytes 3-9) that holds the bad byte
    expect(m.execute(Nexus("i"), bytes(bad), b"", 100), IR, 0x24, 0x00, byte=3, in_cdb=True)


def test_unknown_designator_is_not_reachable(env):
    m, a, _ = env
    ghost = IdentificationCscd(designator="60014050" + "ab" * 12, block_length=512)
    s = expect(Client(m).xcopy(plist([cscd_for_lun(a), ghost], [b2b(0, 1)])), CA, 0x0D, 0x02)
    assert s.sks == SegmentPointer(sd=False, byte=48)


def test_index_past_the_cscd_list_libiscsi_validsegdescr(env):
    m, a, _ = env
    s = expect(Client(m).xcopy(plist([cscd_for_lun(a)], [b2b(0, 1)])), CA, 0x0D, 0x02)
    assert s.segment == 0 and s.sks == SegmentPointer(sd=True, byte=6)


def test_device_type_mismatches(env, tmp_path):
    m, a, b = env
    wrong_pdt = cscd_for_lun(a).model_copy(update={"pdt": 1, "block_length": 0})
    s = expect(Client(m).xcopy(plist([wrong_pdt, cscd_for_lun(b)], [b2b()])), CA, 0x0D, 0x03)
    assert s.sks == SegmentPointer(sd=False, byte=17, bit=4)
    tape = TapeLun("t", tmp_path / "t.tape", create=True)
    m2 = CopyManager({"a": a, "t": tape}, limits=LIMITS)
    s = expect(Client(m2).xcopy(plist([cscd_for_lun(a), cscd_for_lun(tape)], [b2b()])), CA, 0x0D, 0x03)
    assert s.segment == 0 and s.sks == SegmentPointer(sd=True, byte=6)
    zero = StreamToStream(src=0, dst=0, src_transfer_length=0, dst_transfer_length=1, byte_count=1)
    expect(Client(m2).xcopy(plist([cscd_for_lun(tape)], [zero])), IR, 0x26, 0x00, byte=57)
    over = InlineToStream(dst=0, stream_transfer_length=16, inline_offset=2, byte_count=4)
    pl = ParameterList(header=Header(list_id=2), cscds=(cscd_for_lun(tape),), segments=(over,),
                       inline_data="00112233")
    s = expect(Client(m2).xcopy(pl), CA, 0x26, 0x0B)
    assert s.segment == 0
    m2.close()
    tape.close()


def test_null_device_is_not_reachable(env):
    m, a, b = env
    nul = cscd_for_lun(b).model_copy(update={"nul": True})
    expect(Client(m).xcopy(plist([cscd_for_lun(a), nul], [b2b()])), CA, 0x0D, 0x02)


def test_destination_past_its_end_libiscsi_validsegdescr(env):
    m, a, b = env
    r = Client(m).xcopy(plist([cscd_for_lun(a), cscd_for_lun(b)], [b2b(n=16, dst_lba=1020)]))
    s = expect(r, CA, 0x0D, 0x02)
    status, fwd = s.forwarded()["destination"]
    assert status == 0x02 and (fwd.key, fwd.asc, fwd.ascq) == (IR, 0x21, 0x00)


def test_device_failure_mid_copy_reports_segment_and_exact_progress():
    src = MemoryBlockLun("s", num_blocks=1024)
    dst = FailingLun("d", num_blocks=1024, bad_lba=100)
    src.write(0, bytes(range(256)) * 2 * 1024)
    m = CopyManager({"s": src, "d": dst}, limits=LIMITS)
    c = Client(m)
    segs = [b2b(n=50, src_lba=0, dst_lba=0), b2b(n=200, src_lba=0, dst_lba=60)]
    r = c.xcopy(plist([cscd_for_lun(src), cscd_for_lun(dst)], segs, list_id=9))
    s = expect(r, CA, 0x0D, 0x01)
    assert s.segment == 1
    status, fwd = s.forwarded()["destination"]
    assert (fwd.key, fwd.asc, fwd.information) == (SenseKey.MEDIUM_ERROR, 0x0C, 100)
    st = c.copy_status(9)
    assert st.status == 2 and st.segments_processed == 1
    assert st.bytes_transferred == dst.written
    assert 50 * 512 <= dst.written < 250 * 512
    details = c.failed_segment_details(9)
    assert details.command_status == 0x02 and bytes.fromhex(details.sense_data) == r.sense
    assert c.failed_segment_details(9).sense_data == ""  # handed out once
    m.close()


def test_limits_and_fc_map_are_validated():
    from pydantic import ValidationError

    from scsi.copymgr import FcMapEntry
    with pytest.raises(ValidationError, match="max_descriptor_list_length 1024 is below"):
        CopyLimits(max_cscds=64, max_descriptor_list_length=1024)
    with pytest.raises(ValidationError, match="not 8 bytes of hex"):
        FcMapEntry(lun="a", wwpn="21:00:zz")
    with pytest.raises(ValidationError, match="needs a wwpn or a port_id"):
        FcMapEntry(lun="a")
    with pytest.raises(ValueError, match="FC map names unknown LUN"):
        CopyManager({"a": MemoryBlockLun("a", num_blocks=8)}, fc_map=[FcMapEntry(lun="zz", port_id=1)])
