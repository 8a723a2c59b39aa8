"""Bounded memory for ``POST /api/v1/authorize``: a per-client rate limit and used nonces.

Both structures forget what can no longer matter as time passes, and both have a hard
cap so that a flood of distinct clients or keys cannot grow them without bound. Times
come from the caller (seconds of one clock). Not thread-safe: one event loop owns them.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict

__all__ = ["NonceRegistry", "WindowLimiter"]


class _Window:
    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0


class WindowLimiter:
    """At most ``limit`` requests per client in a fixed window of ``window`` seconds.

    A client's window opens at its first request and lasts ``window`` seconds; the
    requests past ``limit`` in it are refused (and not counted) until it closes. So a
    client gets ``limit`` requests per window, and at most ``2 * limit - 1`` within any
    ``window`` seconds that straddle two of its windows. Windows are kept in order of
    opening; closed ones are dropped on every call, and past ``max_clients`` open windows
    the oldest is dropped (that client starts afresh).
    """

    def __init__(self, limit: int, window: float, *, max_clients: int = 100_000) -> None:
        if limit <= 0 or window <= 0 or max_clients <= 0:
            raise ValueError("limit, window and max_clients must be positive")
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        """The number of clients with an open window."""
        return len(self._windows)

    def hit(self, client: str, now: float) -> int | None:
        """Count a request from ``client``; return None if allowed, else seconds to wait (>= 1)."""
        self._expire(now)
        state = self._windows.get(client)
        if state is None:
            state = self._windows[client] = _Window(now)
            while len(self._windows) > self.max_clients:
                self._windows.popitem(last=False)
        if state.count >= self.limit:
            return max(1, math.ceil(state.start + self.window - now))
        state.count += 1
        return None

    def _expire(self, now: float) -> None:
        windows = self._windows
        while windows:
            first = next(iter(windows.values()))
            if first.start + self.window > now:
                break
            windows.popitem(last=False)


class NonceRegistry:
    """Keys (digests of used (public key, nonce) pairs), each remembered until its expiry.

    Holds at most ``capacity`` keys; :meth:`full` tells the caller to refuse new ones
    rather than forget live ones (forgetting would let a replay through).
    """

    def __init__(self, capacity: int = 250_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, key: object) -> bool:
        return key in self._expiry

    def expire(self, now: float) -> None:
        """Forget every key whose expiry is before ``now``."""
        heap = self._heap
        while heap and heap[0][0] < now:
            _, key = heapq.heappop(heap)
            del self._expiry[key]

    def full(self) -> bool:
        return len(self._expiry) >= self.capacity

    def next_expiry(self) -> float | None:
        """When the oldest key will be forgotten, or None if there is none."""
        return self._heap[0][0] if self._heap else None

    def add(self, key: bytes, expires_at: float) -> None:
        """Remember ``key`` until ``expires_at``. The caller checked it is new and not full."""
        if key in self._expiry:
            raise ValueError("key already remembered")
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
