"""The planner's list encoder (scsi/xcopy/block_list.py) writes what the parameter-list codec decodes."""
import pytest

from scsi.xcopy import ParameterList
from scsi.xcopy import block_list as bl

A, B, T = "600a0b800000000000000000000000a5", "600a0b800000000000000000000000b1", "5005076300000001"


def test_block_list_decodes_to_the_segments_it_was_given():
    raw = bl.encode_block_list([(128, 0, 4096), (0xFFFF, 99, 7)], bl.Target(A), bl.Target(B), list_id=5)
    pl = ParameterList.decode(raw)
    assert pl.header.list_id == 5 and [c.designator for c in pl.cscds] == [A, B]
    assert [(s.block_count, s.src_lba, s.dst_lba) for s in pl.segments] == [(128, 0, 4096), (0xFFFF, 99, 7)]
    assert len(raw) == 16 + 2 * bl.CSCD_BYTES + 2 * bl.SEGMENT_02H_BYTES


def test_stream_list_with_a_closing_filemark():
    raw = bl.encode_stream_list([(8, 1000, 65536), None], bl.SEG_BLOCK_TO_STREAM, bl.Target(A),
                                bl.Target(T, pdt=1, block_length=0), list_id=1)
    pl = ParameterList.decode(raw)
    seg, mark = pl.segments
    assert (seg.type_code, seg.block_count, seg.lba, seg.stream_transfer_length) == (0x00, 8, 1000, 65536)
    assert (mark.type_code, mark.filemark_count) == (0x10, 1)


def test_a_value_too_big_for_its_field_is_refused_with_its_place():
    with pytest.raises(bl.ListTooBig, match=r"segment value 65536 does not fit 2 bytes at descriptor byte 10"):
        bl.encode_block_list([(bl.MAX_02H_BLOCKS + 1, 0, 0)], bl.Target(A), bl.Target(B), list_id=1)
