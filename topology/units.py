"""Byte sizes written the way people write them (``100GiB``, ``1.5 TB``, ``4096``)."""
from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)
_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(value: int | float | str) -> int:
    """Return a size in bytes; ``KiB`` is 1024, ``KB`` is 1000, a bare number is bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: expected bytes or a number with a unit such as 10GiB")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"invalid size {value!r}: expected bytes or a number with a unit such as 10GiB")
    number, prefix, binary = m.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _POWER[prefix.lower()])
