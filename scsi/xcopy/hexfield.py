"""Hex-string fields for JSON-able models (designators, WWPNs, inline data)."""
from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def normalise_hex(value: object) -> str:
    """Accept bytes or hex text (any case, optional ':'/' '/'-' separators, 0x prefix); return lower hex."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {type(value).__name__}")
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    text = text.replace(":", "").replace(" ", "").replace("-", "")
    for i, ch in enumerate(text):
        if ch not in "0123456789abcdef":
            raise ValueError(f"not a hex digit: {ch!r} at character {i + 1} of {value!r}")
    if len(text) % 2:
        raise ValueError(f"odd number of hex digits ({len(text)}) in {value!r}")
    return text


Hex = Annotated[str, BeforeValidator(normalise_hex)]


def fixed_hex(n: int):
    """A hex field of exactly ``n`` bytes."""

    def check(value: object) -> str:
        text = normalise_hex(value)
        if len(text) != 2 * n:
            raise ValueError(f"must be {n} bytes ({2 * n} hex digits), got {len(text) // 2}")
        return text

    return Annotated[str, BeforeValidator(check)]


def hex_to_bytes(text: str, what: str = "hex input") -> bytes:
    """Bytes from hex text as people paste it: '#' comments, whitespace, ':' separators, 0x prefixes.

    Errors name the line and column of the offending character, or the odd digit count.
    """
    digits: list[str] = []
    for lineno, line in enumerate(text.splitlines() or [""], 1):
        body = line.split("#", 1)[0]
        col = 0
        while col < len(body):
            ch = body[col]
            if ch in "0123456789abcdefABCDEF":
                if ch == "0" and body[col + 1:col + 2] in ("x", "X") and (col == 0 or not body[col - 1].isalnum()):
                    col += 2
                    continue
                digits.append(ch)
            elif not (ch.isspace() or ch in ":,-"):
                raise ValueError(f"{what}: {ch!r} is not a hex digit (line {lineno}, column {col + 1})")
            col += 1
    if len(digits) % 2:
        raise ValueError(f"{what}: odd number of hex digits ({len(digits)}); a byte needs two")
    return bytes.fromhex("".join(digits))
