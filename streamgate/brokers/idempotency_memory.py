"""Idempotency keys of one process (the ``memory`` backend of ``IdempotencyStore``)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from streamgate.brokers.base import IdempotencyStore

__all__ = ["MemoryIdempotency"]


class MemoryIdempotency:
    """Idempotency keys of this process, each remembered for ``window`` seconds.

    At most ``max_keys`` are kept; past that the oldest are forgotten early.
    """

    def __init__(
        self, *, window: float, max_keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._max = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first

    def _expire(self) -> None:
        now = self._clock()
        keys = self._keys
        while keys:
            expiry = next(iter(keys.values()))
            if expiry > now and len(keys) <= self._max:
                break
            keys.popitem(last=False)

    async def seen(self, keys: Sequence[str]) -> set[str]:
        self._expire()
        return {k for k in keys if k in self._keys}

    async def claim(self, keys: Sequence[str]) -> set[str]:
        self._expire()
        taken = {k for k in keys if k in self._keys}
        expiry = self._clock() + self._window
        for key in keys:
            if key not in taken:
                self._keys[key] = expiry
        return taken

    async def release(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    async def close(self) -> None:
        """Forget every key (they lived in this process only)."""
        self._keys.clear()

    def __len__(self) -> int:
        return len(self._keys)


def _conforms(store: MemoryIdempotency) -> IdempotencyStore:
    """Checked by mypy: the memory backend satisfies the seam."""
    return store
