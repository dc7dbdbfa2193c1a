"""A fixed-capacity buffer of the most recent items (recent fixes for `tracker status`).

``collections.deque(maxlen=...)`` already is an O(1) drop-oldest ring; this wrapper adds the
count of items pushed out, a typed API and a cheap copy for readers in other tasks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class RingBuffer(Generic[T]):
    """Keeps the last ``capacity`` items; ``dropped`` counts the ones pushed out."""

    __slots__ = ("_items", "appended", "dropped")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: deque[T] = deque(maxlen=capacity)
        self.appended = 0
        self.dropped = 0

    @property
    def capacity(self) -> int:
        maxlen = self._items.maxlen
        assert maxlen is not None
        return maxlen

    def append(self, item: T) -> None:
        """O(1); the oldest item goes when full."""
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self.appended += 1

    def latest(self) -> T | None:
        return self._items[-1] if self._items else None

    def snapshot(self) -> list[T]:
        """Oldest first; a copy, safe to keep while the buffer moves on."""
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.snapshot())
