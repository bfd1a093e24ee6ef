"""Planning extents into parameter lists and batches within a mover's limits."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from orchestrator.ops import MoverLimits, Piece, pieces_from_extents, slice_pieces
from orchestrator.plan.disk import (MIB, CscdRef, PlanError, batch_size_bytes, check_mover, image_position,
                               plan_batches)

SRC = CscdRef("disk", "60014051111111111111111111111111", 512)
DST = CscdRef("pool", "60014052222222222222222222222222", 512)
LIO = MoverLimits(max_target_count=2, max_segment_count=1, max_descriptor_list_length=1024,
                  max_segment_length=268435456, data_segment_granularity=9)
ROOMY = MoverLimits(max_target_count=4, max_segment_count=64, max_descriptor_list_length=4096,
                    max_segment_length=0, data_segment_granularity=9)


def test_batch_size_range_follows_tsm():
    assert batch_size_bytes() == 80 * MIB
    assert batch_size_bytes(10) == 10 * MIB and batch_size_bytes(1000) == 1000 * MIB
    for bad in (9, 1001, 0, "80", True):
        with pytest.raises(PlanError, match="batch size"):
            batch_size_bytes(bad)


def test_segments_cover_pieces_exactly_with_right_lbas():
    pieces = pieces_from_extents([(4096, 8192), (1 << 20, 3 * MIB)])
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=1 << 20,
                           dst_base=512 * 1000, limits=ROOMY, batch_bytes=10 * MIB)
    segs = [s for b in batches for pl in b.lists for s in pl.segments]
    assert segs[0].src_lba == ((1 << 20) + 4096) // 512
    assert segs[0].dst_lba == 1000
    assert segs[0].blocks == 16
    # the second extent starts right after the first in the image
    assert segs[1].src_lba == ((1 << 20) + (1 << 20)) // 512
    assert segs[1].dst_lba == 1000 + 16
    assert sum(s.length for s in segs) == 8192 + 3 * MIB
    # 02h NUMBER OF BLOCKS is 16 bits
    assert all(s.blocks <= 0xFFFF for s in segs)


def test_lio_like_mover_gets_one_segment_per_list():
    pieces = pieces_from_extents([(0, 64 * MIB)])
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=0, dst_base=0,
                           limits=LIO, batch_bytes=80 * MIB)
    assert len(batches) == 1
    assert all(len(pl.segments) == 1 for pl in batches[0].lists)
    # 65535 blocks of 512 bytes at most per segment
    assert max(pl.nbytes for pl in batches[0].lists) == 0xFFFF * 512


def test_batches_respect_batch_size_and_descriptor_list_length():
    pieces = pieces_from_extents([(i * 2 * MIB, MIB) for i in range(100)])
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=0, dst_base=0,
                           limits=ROOMY, batch_bytes=10 * MIB)
    assert len(batches) == 10
    assert all(b.nbytes <= 10 * MIB for b in batches)
    per_list = check_mover(ROOMY)
    assert per_list == min(64, (4096 - 64) // 28)
    for b in batches:
        for pl in b.lists:
            assert len(pl.segments) <= per_list
            assert 2 * 32 + 28 * len(pl.segments) <= ROOMY.max_descriptor_list_length
    assert [b.index for b in batches] == list(range(10))


def test_restore_direction_swaps_addresses():
    pieces = pieces_from_extents([(8192, 4096)])
    (b,) = plan_batches(pieces, direction="restore", src=DST, dst=SRC, src_base=512 * 10,
                        dst_base=0, limits=ROOMY)
    seg = b.lists[0].segments[0]
    assert (seg.src_lba, seg.dst_lba, seg.blocks) == (10, 16, 8)


def test_unaligned_extent_is_a_clear_error():
    with pytest.raises(PlanError, match="image offset 0: length 1000 is not a multiple"):
        plan_batches(pieces_from_extents([(0, 1000)]), direction="backup", src=SRC, dst=DST,
                     src_base=0, dst_base=0, limits=ROOMY)


def test_granularity_coarser_than_block():
    limits = MoverLimits(max_segment_count=8, max_descriptor_list_length=1024,
                         data_segment_granularity=12, max_segment_length=0)
    with pytest.raises(PlanError, match="copy unit 4096"):
        plan_batches(pieces_from_extents([(0, 2048)]), direction="backup", src=SRC, dst=DST,
                     src_base=0, dst_base=0, limits=limits)


def test_mover_without_block_copy_or_room_is_rejected():
    with pytest.raises(PlanError, match=r"DM9 does not implement block->block segments \(02h\)"):
        check_mover(MoverLimits(implemented_codes=(0x00, 0xE0)), "DM9")
    with pytest.raises(PlanError, match="target descriptor"):
        check_mover(MoverLimits(max_target_count=1))
    with pytest.raises(PlanError, match="no room"):
        check_mover(MoverLimits(max_descriptor_list_length=80))
    with pytest.raises(PlanError, match="block sizes differ"):
        plan_batches([], direction="backup", src=SRC, dst=CscdRef("p", "6", 4096), src_base=0,
                     dst_base=0, limits=ROOMY)


def test_image_position_from_progress():
    pieces = pieces_from_extents([(0, 30 * MIB)])
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=0, dst_base=0,
                           limits=LIO, batch_bytes=10 * MIB)
    assert image_position(batches, 0) == 0
    assert image_position(batches, 1) == 10 * MIB
    assert image_position(batches, 3) == 30 * MIB
    # LIO-like mover: one segment per list; 0 segments done means list boundary only
    first = batches[1].lists[0]
    assert image_position(batches, 1, lists_done=1) == first.image_end
    assert image_position(batches, 1, lists_done=0, segments_done=1) == first.image_end


def test_list_ids_cycle_within_one_byte():
    pieces = pieces_from_extents([(i * MIB, 512) for i in range(300)])
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=0, dst_base=0,
                           limits=LIO, batch_bytes=10 * MIB)
    ids = [pl.list_id for b in batches for pl in b.lists]
    assert len(ids) == 300 and min(ids) == 1 and max(ids) == 255
    assert ids[255] == 1


def test_pieces_from_extents_rejects_overlap_and_slices():
    with pytest.raises(ValueError, match="extent 1 at offset 100 overlaps"):
        pieces_from_extents([(0, 512), (100, 512)])
    with pytest.raises(ValueError, match="not a positive range"):
        pieces_from_extents([(0, 0)])
    pieces = pieces_from_extents([(0, 1000), (5000, 1000)])
    assert slice_pieces(pieces, 500, 1500) == (Piece(500, 500, 500), Piece(1000, 5000, 500))
    assert slice_pieces(pieces, 0, None, max_piece=400)[:3] == (
        Piece(0, 0, 400), Piece(400, 400, 400), Piece(800, 800, 200))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 64), st.integers(1, 40000)), min_size=1, max_size=30),
       st.integers(10, 12), st.integers(1, 16))
def test_plan_property_no_byte_lost_or_doubled(gaps_lengths, batch_mb, seg_count):
    extents, pos = [], 0
    for gap, blocks in gaps_lengths:
        pos += gap * 512
        extents.append((pos, blocks * 512))
        pos += blocks * 512
    pieces = pieces_from_extents(extents)
    limits = MoverLimits(max_segment_count=seg_count, max_descriptor_list_length=4096,
                         max_segment_length=0)
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=0, dst_base=0,
                           limits=limits, batch_bytes=batch_mb * MIB)
    covered = []
    for b in batches:
        assert b.nbytes <= batch_mb * MIB
        for pl in b.lists:
            for s in pl.segments:
                assert s.length == s.blocks * 512
                covered.append((s.src_lba * 512, s.dst_lba * 512, s.length))
    # every source byte maps to its image position exactly once
    expect = [(p.volume_offset, p.image_offset) for p in pieces]
    total = sum(c[2] for c in covered)
    assert total == sum(p.length for p in pieces)
    img = 0
    for src, dst, n in covered:
        assert dst == img
        # source offset of this image position
        p = next(p for p in pieces if p.image_offset <= img < p.image_end)
        assert src == p.volume_offset + (img - p.image_offset)
        img += n
    assert expect  # pieces were produced


def test_encoded_list_is_byte_exact_to_the_reference_example():
    """Reference 1.5 (qemu/LIO shape), written out by hand, with LIST ID USAGE 00b so results are kept."""
    from orchestrator.ops import CopySegment
    from orchestrator.plan.disk import encode_block_list

    a = CscdRef("A", "6001405aaaaaaaaaaaaaaaaaaaaaaaaa", 512)
    b = CscdRef("B", "6001405bbbbbbbbbbbbbbbbbbbbbbbbb", 512)
    data = encode_block_list((CopySegment(0, 4096, 128, 0, 128 * 512),), a, b, 1)
    expect = bytes.fromhex(
        "01 00 0040 00000000 0000001C 00000000"                      # header: id 1, T=64, S=28, I=0
        "E4000000 01030010 6001405aaaaaaaaaaaaaaaaaaaaaaaaa 00000000 00000200"  # CSCD 0
        "E4000000 01030010 6001405bbbbbbbbbbbbbbbbbbbbbbbbb 00000000 00000200"  # CSCD 1
        "02000018 00000001 00000080 0000000000000000 0000000000001000")         # 02h segment
    assert data == expect and len(data) == 108
    from scsi.xcopy import ParameterList
    pl = ParameterList.decode(data)
    assert pl.segments[0].dst_lba == 4096 and pl.cscds[1].designator == b.designator


def test_planned_lists_carry_encoded_bytes_when_asked():
    from orchestrator.plan.disk import default_encoder
    from scsi.xcopy import ParameterList

    pieces = pieces_from_extents([(0, 3 * MIB)])
    batches = plan_batches(pieces, direction="backup", src=SRC, dst=DST, src_base=0, dst_base=1 << 20,
                           limits=ROOMY, encoder=default_encoder())
    pl = batches[0].lists[0]
    assert pl.payload() == pl.data
    decoded = ParameterList.decode(pl.data)
    assert [s.block_count for s in decoded.segments] == [s.blocks for s in pl.segments]
    assert decoded.segments[0].dst_lba == 2048 and decoded.header.list_id == pl.list_id
