"""Errors a storage engineer can act on: which file, where inside it, which value."""
from __future__ import annotations

from typing import Any


class TopologyError(ValueError):
    """A topology (or macro) that cannot be used, located precisely.

    ``location`` is a path inside the document such as
    ``arrays[0](ARR1).luns[2].naa``; ``problems`` holds every problem found
    when more than one was detected in the same pass.
    """

    def __init__(self, message: str, *, file: str | None = None, location: str = "",
                 value: Any = None, problems: list[str] | None = None) -> None:
        self.file = file
        self.location = location
        self.value = value
        self.reason = message
        self.problems = problems or []
        where = ": ".join(p for p in (file, location) if p)
        text = f"{where}: {message}" if where else message
        if value is not None and str(value) not in message:
            text += f" (value {value!r})"
        if len(self.problems) > 1:
            text += f" (and {len(self.problems) - 1} more problem(s))"
        super().__init__(text)


def format_location(loc: tuple, data: Any) -> str:
    """Turn a pydantic/our location tuple into ``hosts[1](CLIENT2).hba_ports[0].wwpn``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            try:
                node = node[part]
            except (IndexError, KeyError, TypeError):
                node = None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f"({node['name']})"
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def pydantic_message(err: dict) -> str:
    """A pydantic error's text without the "Value error, " prefix pydantic adds to our own ValueErrors."""
    return str(err.get("msg", "")).removeprefix("Value error, ")


def validation_line(err: dict, data: Any = None) -> str:
    """One pydantic error as ``field.path: message`` (no URL), the one form topology files and macros use."""
    where = format_location(tuple(err.get("loc", ())), data)
    return f"{where}: {pydantic_message(err)}" if where else pydantic_message(err)
