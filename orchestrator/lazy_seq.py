"""A sequence produced again on every pass: long results (pieces, digests) that are never held as tuples.

It imports nothing of ours, so the operations' own types (orchestrator.ops) can build on it too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


class LazySeq(Sequence[T]):
    """A sequence whose items are produced again on every pass by ``items()``; behaves as a tuple."""

    __slots__ = ("_items", "_len")

    def __init__(self, items: Callable[[], Iterable[T]], length: int | None = None):
        self._items = items
        self._len = length

    def __iter__(self) -> Iterator[T]:
        return iter(self._items())

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self)
        return self._len

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        if isinstance(i, slice):
            return tuple(self)[i]
        if i < 0:
            i += len(self)
        for item in islice(iter(self), i, None) if i >= 0 else ():
            return item
        raise IndexError("sequence index out of range")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: Iterable[T]) -> tuple[T, ...]:
        return tuple(self) + tuple(other)

    def __radd__(self, other: Iterable[T]) -> tuple[T, ...]:
        return tuple(other) + tuple(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items)"
