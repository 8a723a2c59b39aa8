"""A fixed-size ring of recent records (slow-consumer cuts, ...): memory stays bounded."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["Ring"]

T = TypeVar("T")


class Ring(Generic[T]):
    """The last ``size`` records added; ``total`` counts every one ever added."""

    __slots__ = ("_items", "total")

    def __init__(self, size: int) -> None:
        self._items: deque[T] = deque(maxlen=size)
        self.total = 0

    def add(self, item: T) -> None:
        self._items.append(item)
        self.total += 1

    def recent(self) -> list[T]:
        """Newest first."""
        return list(reversed(self._items))

    def __len__(self) -> int:
        return len(self._items)
