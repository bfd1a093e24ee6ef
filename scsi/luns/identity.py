"""LU identity: a stable NAA 6h designator derived from a serial number.

Built the way Linux LIO builds its LU designators (company id, then the hex
digits of the serial packed one nibble at a time), so a LUN keeps the same
designator across restarts and initiators can name it in an E4h descriptor.
"""
from __future__ import annotations

import hashlib

DEFAULT_COMPANY_ID = 0x001405


def naa6_from_serial(serial: str, company_id: int = DEFAULT_COMPANY_ID) -> bytes:
    """16-byte NAA 6h designator: company id, then the serial's hex digits.

    A serial with fewer than 25 hex digits is extended with the hex digits of
    its SHA-1, so distinct serials such as "disk1"/"disk2" stay distinct.
    """
    if not 0 <= company_id < 1 << 24:
        raise ValueError(f"company id {company_id:#x} does not fit in 24 bits")
    digits = [c for c in serial.lower() if c in "0123456789abcdef"]
    if len(digits) < 25:
        digits += list(hashlib.sha1(serial.encode("utf-8")).hexdigest())
    nibbles = [0x6, (company_id >> 20) & 0xF, (company_id >> 16) & 0xF, (company_id >> 12) & 0xF,
               (company_id >> 8) & 0xF, (company_id >> 4) & 0xF, company_id & 0xF]
    nibbles += [int(c, 16) for c in digits[:32 - len(nibbles)]]
    return bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, 32, 2))


def serial_for_path(path: str) -> str:
    """A default unit serial for a file-backed LUN: stable for the same path."""
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:24]
