"""Taking a streamed plan a window at a time: memory is bounded by the window, not by the image's extents."""
from __future__ import annotations

from typing import Iterator

from orchestrator.ops import Batch


def next_window(plan: Iterator[Batch], most: int) -> tuple[Batch, ...]:
    """The next batches of ``plan`` up to ``most`` segments (at least one batch; () at the end)."""
    out: list[Batch] = []
    segments = 0
    for batch in plan:
        out.append(batch)
        segments += sum(len(pl.segments) for pl in batch.lists)
        if segments >= most:
            break
    return tuple(out)
