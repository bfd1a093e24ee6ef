"""VPD 83h parsing, choosing the LU designator, E4h CSCDs from a device, WWN strings."""
import pytest
from pyscsi.pyscsi.scsi import SCSI
from pyscsi.pyscsi.scsi_enum_command import spc

from scsi.designators import (Designator, DesignatorError, choose_lu_designator, cscd_for_device, cscd_from_vpd83,
                              format_wwn, parse_vpd83, parse_wwn)

NAA = "6001405a112233445566778899aabbcc"
# A LIO-like page, written by hand (reference 5.2): T10 vendor id, NAA 6h LU designator,
# relative target port (iSCSI, PIV, association 01b) and an EUI-64 LU designator.
T10 = b"LIO-ORG disk0:abc".hex()
VPD83 = bytes.fromhex(
    "00 83 003d"
    f"02 01 00 11 {T10}"
    f"01 03 00 10 {NAA}"
    "51 94 00 04 00000001"
    "01 02 00 08 0011223344556677"
    .replace(" ", ""))


def test_parse_page():
    ds = parse_vpd83(VPD83)
    assert [(d.association, d.designator_type) for d in ds] == [(0, 1), (0, 3), (1, 4), (0, 2)]
    assert ds[1].designator == NAA and ds[1].naa == 6 and ds[1].type_name == "NAA"
    assert ds[2].piv and ds[2].protocol_id == 5
    assert b"".join(d.encode() for d in ds) == VPD83[4:]


def test_choose_prefers_naa_then_eui64_then_t10():
    ds = parse_vpd83(VPD83)
    assert choose_lu_designator(ds).designator == NAA
    assert choose_lu_designator([ds[0], ds[2], ds[3]]).designator_type == 2
    assert choose_lu_designator([ds[0], ds[2]]).designator_type == 1
    with pytest.raises(LookupError, match="no logical-unit designator"):
        choose_lu_designator([ds[2]])
    too_long = Designator(designator_type=3, designator="6" + "0" * 43)
    assert choose_lu_designator([too_long, ds[3]]).designator_type == 2


def test_e4_cscd_from_page_is_the_reference_shape():
    c = cscd_from_vpd83(VPD83, block_length=512)
    # Reference 1.5 bytes 16-47 for CSCD 0.
    assert c.encode() == bytes.fromhex(f"e4000000 01030010 {NAA} 00000000 00000200".replace(" ", ""))


@pytest.mark.parametrize("page, fragment", [
    (b"\x00\x83", "shorter than its 4-byte header"),
    (bytes.fromhex("00800004") + bytes(4), "page code is 80h"),
    (bytes.fromhex("0083 0010 01030010") + bytes(4), "runs past the"),
    (bytes.fromhex("0083 0006 01030010 6001"), "designator of 16 bytes runs past"),
    (bytes.fromhex("0083 0002 0103"), "header needs 4 bytes"),
])
def test_bad_pages(page, fragment):
    with pytest.raises(DesignatorError, match=fragment):
        parse_vpd83(page)


class Vpd83Device:
    """A pyscsi device answering standard INQUIRY and VPD 83h, truncating to the allocation length."""

    def __init__(self, page: bytes, pdt: int = 0):
        self.page, self.pdt, self.calls = page, pdt, []
        self.opcodes = spc
        self.devicetype = None

    def execute(self, cmd):
        cdb = bytes(cmd.cdb)
        self.calls.append(cdb)
        if cdb[0] == 0x9E:
            assert cdb[1] & 0x1F == 0x10
            data = bytes.fromhex("00000000000fffff" "00001000") + bytes(20)  # 4096-byte blocks
            cmd.datain[:32] = data[:int.from_bytes(cdb[10:14], "big")]
            return
        assert cdb[0] == 0x12
        alloc = int.from_bytes(cdb[3:5], "big")
        if cdb[1] & 1:
            assert cdb[2] == 0x83
            data = self.page
        else:
            data = bytes([self.pdt, 0, 6, 2, 91, 0, 0, 2]) + b"SERVFREE" + b"virtual disk    " + b"0001"
            data = data.ljust(96, b"\0")
        out = data[:alloc]
        cmd.datain[:len(out)] = out

    def close(self):
        pass


def test_cscd_for_device_through_pyscsi():
    dev = Vpd83Device(VPD83, pdt=0)
    c = cscd_for_device(SCSI(dev))
    assert c.designator == NAA and c.pdt == 0 and c.block_length == 4096  # from READ CAPACITY(16)
    assert any(cdb[1] & 1 and cdb[2] == 0x83 for cdb in dev.calls) and dev.calls[-1][0] == 0x9E
    assert cscd_for_device(SCSI(dev), block_length=512).block_length == 512


def test_long_page_is_read_again_with_a_larger_allocation():
    many = b"".join(bytes.fromhex("02010010") + bytes([0x41 + i]) * 16 for i in range(15))
    page = bytes.fromhex("0183") + (len(many) + 20).to_bytes(2, "big") + many + bytes.fromhex(f"01030010{NAA}")
    dev = Vpd83Device(page, pdt=1)
    c = cscd_for_device(SCSI(dev))
    assert c.designator == NAA and c.pdt == 1
    assert [int.from_bytes(cdb[3:5], "big") for cdb in dev.calls if cdb[1] & 1] == [255, len(page)]


@pytest.mark.parametrize("text", ["21:00:00:e0:8b:05:05:04", "210000E08B050504", "0x210000e08b050504",
                                  " 21-00-00-e0-8b-05-05-04 "])
def test_wwn_notations(text):
    assert parse_wwn(text) == bytes.fromhex("210000e08b050504")
    assert format_wwn(parse_wwn(text)) == "21:00:00:e0:8b:05:05:04"


def test_naa6_iqn_style():
    assert parse_wwn("naa.6001405a112233445566778899aabbcc").hex() == NAA


@pytest.mark.parametrize("text, fragment", [
    ("21:00:00:e0:8b:05:05:0g", "'g' at character 23 is not a hex digit"),
    ("2100z0e08b050504", "'z' at character 5"),
    ("21:00:00:e0:8b:05:05:4", "group '4' at character 22 must be two hex digits"),
    ("210000e08b0505", "has 14 hex digits"),
    ("0x", "has no hex digits"),
    ("000000e08b050504", "NAA format 0h"),
    ("naa.5001405a112233445566778899aabbcc", "must be NAA 6h"),
])
def test_wwn_errors_say_what_and_where(text, fragment):
    with pytest.raises(DesignatorError, match=fragment.replace("(", r"\(")):
        parse_wwn(text)
