import pytest

from scsi.layout import Layout, LayoutError, bits, flag, raw, reserved, Field

DEMO = Layout("demo", 8, [
    Field("code", 0, const=0xE4),
    bits("pdt", 1, 0, 5),
    flag("nul", 1, 5),
    reserved(1, bit=6, width=2),
    Field("count", 2, size=2),
    raw("tail", 4, 4),
])


def test_round_trip():
    data = DEMO.encode(pdt=1, nul=1, count=0x1234, tail=b"ab")
    assert data == bytes([0xE4, 0x21, 0x12, 0x34]) + b"ab\0\0"
    assert DEMO.decode(data) == {"code": 0xE4, "pdt": 1, "nul": 1, "count": 0x1234, "tail": b"ab\0\0"}


def test_errors_name_field_byte_and_bit():
    with pytest.raises(LayoutError) as e:
        DEMO.decode(bytes([0xE4, 0x80, 0, 0, 0, 0, 0, 0]))
    assert (e.value.offset, e.value.bit) == (1, 7)
    with pytest.raises(LayoutError) as e:
        DEMO.unpack_from(bytes([0, 0, 0, 0, 0xE5, 0, 0, 0, 0, 0, 0, 0]), 4)
    assert e.value.field == "code" and e.value.offset == 4
    with pytest.raises(LayoutError, match="out of range"):
        DEMO.encode(pdt=32)
    with pytest.raises(LayoutError, match="needs 8 bytes"):
        DEMO.decode(b"\xe4")
