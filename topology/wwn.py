"""World wide names and NAA designators, parsed here so topology/ stays free of scsi/.

A WWPN is 8 bytes; storage engineers write it as ``21:00:00:e0:8b:05:05:04``,
``210000e08b050504``, ``0x210000e08b050504`` or with dashes. A LUN's NAA designator (VPD page 83h) is
8 bytes (NAA 2, 3, 5) or 16 bytes (NAA 6). Both are normalised so that the same
name written two ways compares equal, and malformed ones fail with a message
saying what is wrong.
"""
from __future__ import annotations

import re
from functools import lru_cache

_SEPARATORS = re.compile(r"[:\-\s.]")
_HEX = re.compile(r"^[0-9a-fA-F]*$")

#: NAA values a port name may carry (IEEE 1, IEEE extended 2, local 3, registered 5, 6).
_WWPN_NAA = {"1", "2", "3", "5", "6"}


def _hex_digits(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"malformed {what} {text!r}: expected a string of hex digits")
    text = text.strip()
    if text[:2] in ("0x", "0X"):  # the way some tools print a WWN as a number
        text = text[2:]
    digits = _SEPARATORS.sub("", text)
    if not _HEX.match(digits):
        bad = next(ch for ch in digits if ch not in "0123456789abcdefABCDEF")
        raise ValueError(f"malformed {what} {text!r}: {bad!r} is not a hex digit")
    return digits.lower()


def parse_wwpn(text: str) -> str:
    """Return ``text`` as ``xx:xx:xx:xx:xx:xx:xx:xx`` (lower case) or raise ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"malformed WWPN {text!r}: expected a string such as 21:00:00:e0:8b:05:05:04")
    return _parse_wwpn(text)


@lru_cache(maxsize=65536)  # large fabrics repeat the same WWPNs in links, zones and masking
def _parse_wwpn(text: str) -> str:
    digits = _hex_digits(text, "WWPN")
    if ":" in text and any(len(part) != 2 for part in text.strip().split(":")):
        raise ValueError(f"malformed WWPN {text!r}: each colon-separated byte needs two hex digits")
    if len(digits) != 16:
        raise ValueError(f"malformed WWPN {text!r}: {len(digits)} hex digits, a WWPN has 16 (8 bytes)")
    if digits[0] not in _WWPN_NAA:
        raise ValueError(f"malformed WWPN {text!r}: NAA nibble {digits[0]} is not one of 1, 2, 3, 5, 6")
    return ":".join(digits[i : i + 2] for i in range(0, 16, 2))


def parse_naa(text: str) -> str:
    """Return an NAA designator as plain lower-case hex (``600a0b80...``) or raise ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"malformed NAA designator {text!r}: expected a string of hex digits")
    return _parse_naa(text)


@lru_cache(maxsize=65536)
def _parse_naa(text: str) -> str:
    if isinstance(text, str) and text.lower().startswith("naa."):
        text = text[4:]
    digits = _hex_digits(text, "NAA designator")
    naa = digits[:1]
    expected = {"2": 16, "3": 16, "5": 16, "6": 32}.get(naa)
    if expected is None:
        raise ValueError(f"malformed NAA designator {text!r}: NAA field {naa or '(empty)'} is not 2, 3, 5 or 6")
    if len(digits) != expected:
        raise ValueError(
            f"malformed NAA designator {text!r}: NAA {naa} needs {expected} hex digits, got {len(digits)}"
        )
    return digits


def looks_like_wwpn(text: str) -> bool:
    """True when ``text`` is written like a WWN (so a reference means a port, not a name)."""
    digits = _SEPARATORS.sub("", text.strip())
    return (":" in text or len(digits) == 16) and bool(_HEX.match(digits)) and len(digits) >= 12
