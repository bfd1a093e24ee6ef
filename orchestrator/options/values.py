"""Value syntaxes of dsm.opt options: sizes with k/m/g units, waits, yes/no.

Each converter takes the text a user typed and returns a Python value or raises
ValueError with a message saying what was expected; the parser adds the file and
line.  Unit rules follow the TSM 5.1 client guide (its
option reference: imagegapsize, snapshotcachesize and the like).
"""
from __future__ import annotations

import re

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

#: imagegapsize accepts 0..4294967295 in the unit given (TSM 5.1 client guide).
MAX_GAP_NUMBER = 4294967295

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)
_WAIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$", re.IGNORECASE)
_UNITS = {"": KIB, "k": KIB, "m": MIB, "g": GIB}

_TRUE = {"yes", "y", "on", "true"}
_FALSE = {"no", "n", "off", "false"}


def parse_size(text: str, *, default_unit: str = "k", max_number: int = MAX_GAP_NUMBER) -> int:
    """Bytes from ``32k``, ``5m``, ``1g`` or a bare number (kilobytes, as TSM reads it)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size: expected a number with an optional k, m or g unit (e.g. 32k, 5m)")
    number = int(m.group(1))
    if number > max_number:
        raise ValueError(f"{text!r} is out of range: the number must be 0..{max_number}")
    unit = m.group(2).lower() or default_unit
    return number * _UNITS[unit]


def parse_wait(text: str, *, max_value: float = 999) -> float:
    """Seconds from ``1``, ``500ms`` or ``2s`` (no unit = seconds; range 0..999 per the TSM 5.1 client guide)."""
    m = _WAIT.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a wait time: expected 0..{max_value:g} with an optional ms or s unit")
    value = float(m.group(1))
    if value > max_value:
        raise ValueError(f"{text!r} is out of range 0..{max_value:g}")
    return value / 1000.0 if (m.group(2) or "s").lower() == "ms" else value


def parse_bool(text: str) -> bool:
    """``yes``/``no`` (also y/n, on/off, true/false), case-insensitive."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text!r} is not yes or no")


def parse_int(text: str, low: int, high: int) -> int:
    """A whole number within ``low..high``."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range {low}..{high}")
    return value


def parse_choice(text: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, case-insensitive; returns the canonical lower-case word."""
    word = text.strip().lower()
    if word not in choices:
        raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")
    return word


def format_size(nbytes: int) -> str:
    """Compact human form (``5m``, ``32k``, ``1234`` bytes) for reports and messages."""
    for unit, scale in (("g", GIB), ("m", MIB), ("k", KIB)):
        if nbytes and nbytes % scale == 0:
            return f"{nbytes // scale}{unit}"
    return f"{nbytes}"
