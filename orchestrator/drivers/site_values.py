"""Values a site file spells by hand: sizes with k/m/g/t, and a pydantic error as the file's one line."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_value(v: Any) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip().lower()
    if s and s[-1] in _UNITS and s[:-1].isdigit():
        return int(s[:-1]) * _UNITS[s[-1]]
    if s.isdigit():
        return int(s)
    raise ValueError(f"{v!r} is not a size (bytes, or a number with k/m/g/t)")



def validated(build: Callable[[], Any], p: Path, where: Callable[[tuple], str] | None = None) -> Any:
    """``build()``; a pydantic error becomes the site file's one line "FILE: field.path: message"."""
    try:
        return build()
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = tuple(e["loc"])
        field = where(loc) if where else ".".join(str(x) for x in loc) or "(top level)"
        raise ValueError(f"{p}: {field}: {str(e['msg']).removeprefix('Value error, ')}") from None
