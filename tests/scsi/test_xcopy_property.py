"""Hypothesis: decode(encode(x)) == x, encode(decode(b)) == b, and bad bytes only raise ParameterListError."""
from hypothesis import HealthCheck, given, settings, strategies as st

from scsi.xcopy import (BlockOffsetToBlockOffset, BlockToBlock, BlockToStream, FcPortIdCscd, FcPortIdNameCscd,
                        FcPortNameCscd, Header, IdentificationCscd, InlineToStream, ParameterList,
                        ParameterListError, StreamToBlock, StreamToDiscard, StreamToStream, VerifyCscd,
                        WriteFilemarks)

u16, u24, u32, u64 = (st.integers(0, 2**n - 1) for n in (16, 24, 32, 64))
hex8 = st.binary(min_size=8, max_size=8).map(bytes.hex)


@st.composite
def device_fields(draw):
    pdt = draw(st.sampled_from([0x00, 0x01, 0x03, 0x05, 0x08, 0x0E]))
    out = {"pdt": pdt, "lu_id_type": draw(st.integers(0, 3)), "nul": draw(st.booleans()), "ripi": draw(u16)}
    if pdt in (0x00, 0x05, 0x0E, 0x01, 0x03):
        out["pad"] = draw(st.booleans())
    if pdt != 0x03 and pdt != 0x08:
        out["block_length"] = draw(u24)
    if pdt == 0x01:
        out["fixed"] = draw(st.booleans())
    return out


@st.composite
def cscds(draw):
    dev = draw(device_fields())
    kind = draw(st.sampled_from(["e0", "e1", "e2", "e4"]))
    if kind == "e0":
        return FcPortNameCscd(lu_identifier=draw(hex8), n_port_name=draw(hex8), **dev)
    if kind == "e1":
        return FcPortIdCscd(lu_identifier=draw(hex8), n_port_id=draw(u24), **dev)
    if kind == "e2":
        return FcPortIdNameCscd(lu_identifier=draw(hex8), n_port_name=draw(hex8), n_port_id=draw(u24), **dev)
    return IdentificationCscd(code_set=draw(st.integers(0, 15)), association=draw(st.integers(0, 3)),
                              designator_type=draw(st.integers(0, 15)),
                              designator=draw(st.binary(max_size=20)).hex(), **dev)


def segments(n_cscds: int):
    idx = st.integers(0, n_cscds - 1)
    cat = st.booleans()
    return st.one_of(
        st.builds(BlockToStream, type_code=st.sampled_from([0x00, 0x0B]), cat=cat, src=idx, dst=idx,
                  stream_transfer_length=u24, block_count=u16, lba=u64),
        st.builds(StreamToBlock, type_code=st.sampled_from([0x01, 0x0C]), cat=cat, src=idx, dst=idx,
                  stream_transfer_length=u24, block_count=u16, lba=u64),
        st.builds(BlockToBlock, type_code=st.sampled_from([0x02, 0x0D]), cat=cat, dc=st.booleans(), src=idx,
                  dst=idx, block_count=u16, src_lba=u64, dst_lba=u64),
        st.builds(StreamToStream, type_code=st.sampled_from([0x03, 0x0E]), cat=cat, src=idx, dst=idx,
                  src_transfer_length=u24, dst_transfer_length=u24, byte_count=u32),
        st.builds(InlineToStream, cat=cat, dst=idx, stream_transfer_length=u24, inline_offset=u32,
                  byte_count=u32),
        st.builds(StreamToDiscard, type_code=st.sampled_from([0x06, 0x0F]), cat=cat, src=idx,
                  stream_transfer_length=u24, byte_count=u32),
        st.builds(VerifyCscd, cat=cat, src=idx, tur=st.booleans()),
        st.builds(BlockOffsetToBlockOffset, cat=cat, src=idx, dst=idx, byte_count=u32, src_lba=u64,
                  dst_lba=u64, src_byte_offset=u16, dst_byte_offset=u16),
        st.builds(WriteFilemarks, cat=cat, dst=idx, wsmk=st.booleans(), immed=st.booleans(),
                  filemark_count=u24),
    )


@st.composite
def parameter_lists(draw):
    header = Header(list_id=draw(st.integers(0, 255)), str_=draw(st.booleans()),
                    list_id_usage=draw(st.integers(0, 3)), priority=draw(st.integers(0, 7)))
    targets = draw(st.lists(cscds(), min_size=0, max_size=4))
    segs = draw(st.lists(segments(len(targets)), max_size=5)) if targets else []
    return ParameterList(header=header, cscds=targets, segments=segs, inline_data=draw(st.binary(max_size=16)).hex())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parameter_lists())
def test_decode_encode_round_trip(pl):
    data = pl.encode()
    assert ParameterList.decode(data) == pl
    assert ParameterList.model_validate_json(pl.model_dump_json(by_alias=True)) == pl


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parameter_lists(), st.data())
def test_mutated_bytes_either_round_trip_exactly_or_raise(pl, data):
    raw = bytearray(pl.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        decoded = ParameterList.decode(bytes(raw))
    except ParameterListError as err:
        assert err.offset is not None and 0 <= err.offset <= len(raw)
        assert (err.asc, err.ascq) in {(0x1A, 0), (0x26, 0), (0x26, 6), (0x26, 7), (0x26, 8), (0x26, 9)}
        return
    assert decoded.encode() == bytes(raw)


@settings(max_examples=100, deadline=None)
@given(parameter_lists(), st.data())
def test_truncated_lists_raise_parameter_list_length_error(pl, data):
    raw = pl.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        ParameterList.decode(raw[:cut])
    except ParameterListError as err:
        assert (err.asc, err.ascq) == (0x1A, 0)
    else:
        raise AssertionError(f"truncating {len(raw)} bytes to {cut} was accepted")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_else(raw):
    try:
        pl = ParameterList.decode(raw)
    except ParameterListError:
        return
    assert pl.encode() == raw
