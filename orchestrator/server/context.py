"""What an administrative command runs against, how it refuses, and how answers are laid out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


class CommandError(ValueError):
    """A command the server refuses: the text is the ANR message the administrator sees."""


@dataclass
class AdminContext:
    """What a command may touch: the store, the sessions, the pools (set by the service)."""

    store: Any
    admin: str
    session: int
    sessions: Callable[[], list[dict]] = lambda: []
    cancel: Callable[[int], bool] = lambda n: False
    processes: Callable[[], list[dict]] = lambda: []
    pools: Any = None                      # orchestrator.server.pools.Pools once layer (b) is there
    extra: dict = field(default_factory=dict)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


