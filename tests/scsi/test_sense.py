"""Sense data: hand-written vectors from the reference (6.1-6.5), round trips, bad input."""
import pytest
from hypothesis import given, settings, strategies as st

from scsi.asc import asc_label, asc_name
from scsi.sense import (FieldPointer, RawSks, SegmentPointer, Sense, SenseError, SenseKey, copy_aborted,
                        illegal_request, sense_for)

# Reference 6.5: LIO's copy failure and an unsupported segment type at list offset 48.
LIO_COPY_FAILURE = bytes.fromhex("70 00 0A 00 00 00 00 0A 00 00 00 00 0D 02 00 00 00 00".replace(" ", ""))
BAD_SEGMENT_TYPE = bytes.fromhex("70 00 05 00 00 00 00 0A 00 00 00 00 26 09 00 80 00 30".replace(" ", ""))


def test_lio_copy_failure_vector():
    s = Sense.decode(LIO_COPY_FAILURE + bytes(78))  # LIO pads to a 96-byte buffer
    assert s.key == SenseKey.COPY_ABORTED and s.asc_ascq == (0x0D, 0x02)
    assert s.sks is None and s.segment is None and s.information is None
    assert s.encode() == LIO_COPY_FAILURE
    assert str(s) == "COPY ABORTED: COPY TARGET DEVICE NOT REACHABLE (0Dh/02h)"


def test_field_pointer_vector_both_ways():
    s = Sense.decode(BAD_SEGMENT_TYPE)
    assert s.sks == FieldPointer(in_cdb=False, byte=48, bit=None)
    built = illegal_request(0x26, 0x09, field=48)
    assert built.encode() == BAD_SEGMENT_TYPE
    assert "parameter list byte 48" in str(s)


def test_copy_aborted_segment_pointer_bytes():
    s = copy_aborted(0x0D, 0x02, segment=3, field=84, bit=7)
    # byte 2 key Ah; bytes 8-11 command-specific with segment 3 in bytes 10-11;
    # byte 15: SKSV | SD | BPV | bit 7 = 80h|20h|08h|07h = AFh; bytes 16-17 = 0054h.
    assert s.encode() == bytes.fromhex("70000a000000000a000000030d0200af0054")
    assert str(s) == "COPY ABORTED: COPY TARGET DEVICE NOT REACHABLE (0Dh/02h), segment 3, field byte 84 bit 7"
    assert Sense.decode(s.encode()) == s


def test_cdb_field_pointer_and_information():
    s = illegal_request(0x24, 0x00, field=1, bit=4, in_cdb=True)
    raw = s.encode()
    assert raw[15] == 0x80 | 0x40 | 0x08 | 0x04 and raw[16:18] == b"\x00\x01"
    assert str(Sense.decode(raw)).endswith("CDB byte 1 bit 4")
    t = sense_for(SenseKey.MEDIUM_ERROR, 0x11, 0x00, information=0x1234)
    assert t.encode()[0] == 0xF0 and t.encode()[3:7] == b"\x00\x00\x12\x34"


def test_descriptor_format_vector():
    # 72h header, key 5, 26h/00h, additional length 8 + 12: SKS descriptor (02h, len 06h) then info (00h, 0Ah).
    raw = bytes.fromhex("7205260000000014" "0206000080001200" "000a80000000000000000099")
    s = Sense.decode(raw)
    assert s.descriptor_format and s.key == SenseKey.ILLEGAL_REQUEST
    assert s.sks == FieldPointer(byte=0x12) and s.information == 0x99
    again = Sense.decode(s.encode())
    assert again == s
    assert s.encode("fixed")[0] == 0xF0


def test_descriptor_unknown_kept_raw_and_deferred():
    raw = bytes.fromhex("730a0d0100000006" "0c04aabbccdd")
    s = Sense.decode(raw)
    assert s.deferred and s.descriptors[0].type == 0x0C and s.descriptors[0].body == "aabbccdd"
    assert s.encode() == raw


def test_forwarded_device_sense():
    dev = sense_for(SenseKey.MEDIUM_ERROR, 0x11, 0x00).encode()
    s = copy_aborted(0x0D, 0x01, segment=1, destination=(0x02, dev))
    raw = s.encode()
    assert raw[9] == 18 and raw[18] == 0x02 and raw[19:37] == dev
    fwd = Sense.decode(raw).forwarded()
    assert fwd["destination"][0] == 2 and fwd["destination"][1].asc_ascq == (0x11, 0)


def test_raw_sks_for_other_keys():
    s = sense_for(SenseKey.NOT_READY, 0x04, 0x04, sks=RawSks(hex="801000"))
    assert Sense.decode(s.encode()).sks == RawSks(hex="801000")


@pytest.mark.parametrize("data, fragment", [
    (b"", "no sense bytes"),
    (b"\x70\x00\x05", "at least 8 bytes"),
    (b"\x7f" + bytes(17), "unknown response code 7Fh"),
    (bytes.fromhex("720500000000000a0206000080"), "runs past the end"),
])
def test_bad_sense_is_a_clear_error(data, fragment):
    with pytest.raises(SenseError, match=fragment):
        Sense.decode(data)


def test_asc_names():
    assert asc_name(0x26, 0x07) == "UNSUPPORTED TARGET DESCRIPTOR TYPE CODE"
    assert asc_label(0x1A, 0x00) == "PARAMETER LIST LENGTH ERROR (1Ah/00h)"
    assert "NOT READY" in asc_name(0x04, 0x55)
    assert asc_name(0x80, 0x01) == "VENDOR SPECIFIC"
    assert asc_name(0x7E, 0x7E) == "UNKNOWN ADDITIONAL SENSE CODE"


pointers = st.one_of(
    st.none(),
    st.builds(FieldPointer, in_cdb=st.booleans(), byte=st.integers(0, 0xFFFF), bit=st.none() | st.integers(0, 7)),
    st.builds(SegmentPointer, sd=st.booleans(), byte=st.integers(0, 0xFFFF), bit=st.none() | st.integers(0, 7)),
)


@settings(deadline=None)
@given(key=st.sampled_from([SenseKey.ILLEGAL_REQUEST, SenseKey.COPY_ABORTED]), asc=st.integers(0, 255),
       ascq=st.integers(0, 255), info=st.none() | st.integers(0, 2**32 - 1), cs=st.integers(0, 2**32 - 1),
       sks=pointers, fmt=st.sampled_from(["fixed", "descriptor"]))
def test_round_trip_property(key, asc, ascq, info, cs, sks, fmt):
    if isinstance(sks, FieldPointer) and key != SenseKey.ILLEGAL_REQUEST:
        sks = SegmentPointer(byte=sks.byte, bit=sks.bit)
    if isinstance(sks, SegmentPointer) and key != SenseKey.COPY_ABORTED:
        sks = FieldPointer(byte=sks.byte, bit=sks.bit)
    s = Sense(response_code=0x70 if fmt == "fixed" else 0x72, key=key, asc=asc, ascq=ascq, information=info,
              command_specific=cs, sks=sks)
    assert Sense.decode(s.encode()) == s


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_garbage_never_crashes(data):
    try:
        s = Sense.decode(data)
    except SenseError:
        return
    str(s)
    s.encode()
