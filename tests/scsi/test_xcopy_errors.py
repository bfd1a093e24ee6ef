"""Bad parameter lists: each error names field, byte (bit) and the ASC/ASCQ of reference 1.4."""
import importlib.util
from pathlib import Path

import pytest

from scsi.sense import FieldPointer, Sense, SenseKey
from scsi.xcopy import DecodeLimits, ParameterList, ParameterListError

def _vectors():
    """The hand-written vectors live in test_xcopy_vectors.py; load it by path (no package needed)."""
    spec = importlib.util.spec_from_file_location("xcopy_vectors", Path(__file__).with_name("test_xcopy_vectors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QEMU_LIO = _vectors().QEMU_LIO


def patched(data: bytes, at: int, new: bytes) -> bytes:
    out = bytearray(data)
    out[at:at + len(new)] = new
    return bytes(out)


def with_t(t: int, body_len: int) -> bytes:
    """QEMU_LIO with a different CSCD list length, cut so the total agrees."""
    return patched(QEMU_LIO, 2, t.to_bytes(2, "big"))[:16 + body_len]


CASES = [
    # (description, bytes, limits, (asc, ascq), offset, bit, field)
    ("shorter than header", QEMU_LIO[:10], None, (0x1A, 0), 10, None, "length"),
    ("libiscsi ParamHdr 47", patched(QEMU_LIO, 0, bytes.fromhex("01100020000000000000001c"))[:47], None,
     (0x1A, 0), 47, None, "length"),
    ("truncated by one", QEMU_LIO[:-1], None, (0x1A, 0), 107, None, "length"),
    ("trailing byte", QEMU_LIO + b"\0", None, (0x1A, 0), 108, None, "length"),
    ("over max descriptor list length", QEMU_LIO, DecodeLimits(max_descriptor_list_length=64),
     (0x1A, 0), 2, None, "cscd_list_length"),
    ("T not a multiple of 32", with_t(33, 33 + 28), None, (0x26, 0x07), 2, None, "cscd_list_length"),
    ("too many CSCDs", QEMU_LIO, DecodeLimits(max_cscds=1), (0x26, 0x06), 2, None, "cscd_list_length"),
    ("unknown CSCD type", patched(QEMU_LIO, 48, b"\xe5"), None, (0x26, 0x07), 48, None, "type_code"),
    ("CSCD type not supported here", QEMU_LIO, DecodeLimits(cscd_types=frozenset({0xE0})),
     (0x26, 0x07), 16, None, "type_code"),
    ("too many segments", QEMU_LIO, DecodeLimits(max_segments=0), (0x26, 0x08), 8, None, "segment_list_length"),
    ("unknown segment type", patched(QEMU_LIO, 80, b"\x05"), None, (0x26, 0x09), 80, None, "type_code"),
    ("wrong segment length", patched(QEMU_LIO, 82, b"\x00\x17"), None, (0x26, 0), 82, None, "descriptor_length"),
    ("designator length 21", patched(QEMU_LIO, 23, b"\x15"), None, (0x26, 0), 23, None, "designator_length"),
    ("designator padding", patched(QEMU_LIO, 41, b"\x01"), None, (0x26, 0), 41, None, "designator"),
    ("reserved header bit", patched(QEMU_LIO, 1, b"\x90"), None, (0x26, 0), 1, 7, "reserved@1.6"),
    ("reserved E4h nibble", patched(QEMU_LIO, 20, b"\x51"), None, (0x26, 0), 20, 7, "reserved@4.4"),
    ("reserved segment byte", patched(QEMU_LIO, 88, b"\x01"), None, (0x26, 0), 88, None, "reserved@8"),
    ("DC on reserved bit 2", patched(QEMU_LIO, 81, b"\x04"), None, (0x26, 0), 81, 7, "reserved@1.2"),
    ("destination index out of range", patched(QEMU_LIO, 86, b"\x00\x02"), None, (0x26, 0), 86, None, "dst"),
    ("source index out of range", patched(QEMU_LIO, 84, b"\x08\x00"), None, (0x26, 0), 84, None, "src"),
    ("block length on a processor PDT", patched(QEMU_LIO, 17, b"\x03"), None, (0x26, 0), 45, None, "reserved@1"),
]


@pytest.mark.parametrize("desc, data, limits, asc, offset, bit, field", CASES, ids=[c[0] for c in CASES])
def test_error_names_code_offset_bit_field(desc, data, limits, asc, offset, bit, field):
    with pytest.raises(ParameterListError) as exc:
        ParameterList.decode(data, limits)
    err = exc.value
    assert (err.asc, err.ascq) == asc
    assert err.offset == offset and err.bit == bit and err.field == field, str(err)
    assert f"byte {offset}" in str(err)


def test_segment_and_cscd_numbers_are_reported():
    with pytest.raises(ParameterListError) as exc:
        ParameterList.decode(patched(QEMU_LIO, 86, b"\x00\x02"))
    assert exc.value.segment == 0 and "names CSCD 2" in str(exc.value)
    with pytest.raises(ParameterListError) as exc:
        ParameterList.decode(patched(QEMU_LIO, 48, b"\xe5"))
    assert exc.value.cscd == 1 and "E5h" in str(exc.value)


def test_index_check_can_be_left_to_the_copy_manager():
    pl = ParameterList.decode(patched(QEMU_LIO, 86, b"\x00\x05"), DecodeLimits(check_indexes=False))
    assert pl.segments[0].dst == 5


def test_special_cscd_ids_when_the_copy_manager_knows_them():
    data = patched(QEMU_LIO, 86, b"\xff\xff")
    assert ParameterList.decode(data, DecodeLimits(special_indexes=frozenset({0xFFFF}))).segments[0].dst == 0xFFFF
    with pytest.raises(ParameterListError, match="names CSCD 65535"):
        ParameterList.decode(data)


def test_trailing_bytes_allowed_when_asked():
    assert ParameterList.decode(QEMU_LIO + bytes(4), DecodeLimits(allow_trailing=True)).encode() == QEMU_LIO


def test_to_sense_carries_the_field_pointer():
    with pytest.raises(ParameterListError) as exc:
        ParameterList.decode(patched(QEMU_LIO, 1, b"\x90"))
    raw = exc.value.to_sense().encode()
    assert raw[2] == 0x05 and raw[12:14] == b"\x26\x00"
    assert raw[15:18] == bytes([0x80 | 0x08 | 7, 0, 1])  # SKSV, C/D=0, BPV, bit 7; byte 1
    assert Sense.decode(raw).sks == FieldPointer(in_cdb=False, byte=1, bit=7)
    with pytest.raises(ParameterListError) as exc:
        ParameterList.decode(QEMU_LIO[:-1])
    s = exc.value.to_sense()
    assert s.key == SenseKey.ILLEGAL_REQUEST and s.asc_ascq == (0x1A, 0) and s.sks is None
    assert "1Ah/00h" in exc.value.describe()


def test_inline_limit():
    data = patched(QEMU_LIO, 12, b"\x00\x00\x00\x04") + b"abcd"
    assert ParameterList.decode(data).inline_data == b"abcd".hex()
    with pytest.raises(ParameterListError, match="inline") as exc:
        ParameterList.decode(data, DecodeLimits(max_inline_length=0))
    assert exc.value.offset == 12


def test_length_errors_outrank_reserved_bits():
    with pytest.raises(ParameterListError) as exc:
        ParameterList.decode(patched(QEMU_LIO, 1, b"\x90")[:-1])
    assert exc.value.asc_ascq == (0x1A, 0x00)
