import pytest

from topology.units import parse_size
from topology.wwn import parse_naa, parse_wwpn


@pytest.mark.parametrize("text", ["21:00:00:e0:8b:05:05:04", "210000E08B050504", "21-00-00-e0-8b-05-05-04"])
def test_wwpn_spellings_normalise_to_one_form(text):
    assert parse_wwpn(text) == "21:00:00:e0:8b:05:05:04"


@pytest.mark.parametrize("text, fragment", [
    ("21:00:00:e0:8b:05:05", "14 hex digits"),
    ("21:00:00:e0:8b:05:05:0g", "'g' is not a hex digit"),
    ("21:00:00:e0:8b:05:5:004", "two hex digits"),
    ("71:00:00:e0:8b:05:05:04", "NAA nibble 7"),
])
def test_malformed_wwpn_says_what_is_wrong(text, fragment):
    with pytest.raises(ValueError) as exc:
        parse_wwpn(text)
    assert fragment in str(exc.value) and text in str(exc.value)


def test_naa_designators():
    assert parse_naa("naa.600A0B800000000000000000000000A5") == "600a0b800000000000000000000000a5"
    assert parse_naa("5005076300000001") == "5005076300000001"
    with pytest.raises(ValueError, match="NAA 6 needs 32 hex digits, got 16"):
        parse_naa("6005076300000001")
    with pytest.raises(ValueError, match="NAA field 4"):
        parse_naa("4005076300000001")


def test_sizes():
    assert parse_size("10GiB") == 10 * 2**30
    assert parse_size("1.5 TB") == 1_500_000_000_000
    assert parse_size(4096) == 4096
    with pytest.raises(ValueError, match="invalid size '12 parsecs'"):
        parse_size("12 parsecs")


def test_hex_prefix_is_accepted_like_scsi_designators():
    from topology.wwn import parse_naa, parse_wwpn

    assert parse_wwpn("0x210000e08b050504") == "21:00:00:e0:8b:05:05:04"
    assert parse_naa("0x600a0b80001122330000000000000001") == "600a0b80001122330000000000000001"
