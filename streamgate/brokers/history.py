"""Per-channel history: a bounded ring of recent publications with an epoch.

The memory broker keeps one :class:`StreamHistory` per channel that was published to.
Its bounds are a count and an age; whatever falls out can no longer be replayed, and a
resume from before it answers "not recovered" (PROTOCOL.md section 3).

A channel without a stream (never published to, or dropped after its history expired)
holds no state at all. Its position is offset 0 in an *idle epoch*
(:func:`idle_epoch`): the same for every such channel within one window of time, so
it costs nothing to hand out. A stream created later remembers the idle epoch of its
creation window (:attr:`StreamHistory.idle`), and a resume from offset 0 of that idle
epoch replays it from its first publication. This is safe because a stream is dropped
no sooner than one window after its creation, so a later stream of the same channel
is created in a later window, under another idle epoch: a position handed out before
the first stream can never be taken for one given out before the second.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque

from streamgate.core.publication import Publication, StreamPosition

__all__ = ["StreamHistory", "idle_epoch", "new_epoch"]


def new_epoch() -> str:
    """Return a fresh epoch: random, so it never repeats across restarts."""
    return secrets.token_hex(6)


def idle_epoch(base: str, now_ms: int, window_ms: int) -> str:
    """Return the epoch of channels without a stream at ``now_ms``.

    Args:
        base: random per broker state (a process, or a Redis dataset): a restart
            changes every idle epoch.
        window_ms: how long one idle epoch lasts; at most the time a stream lives
            after its creation before it can be dropped.
    """
    window = now_ms // max(1, window_ms)
    return hashlib.blake2b(f"{base}:{window}".encode(), digest_size=6).hexdigest()


class StreamHistory:
    """Offsets, epoch and the last ``size`` publications of one channel.

    Args:
        size: how many publications to keep at most.
        ttl: how long, in seconds, a publication stays replayable.
        idle: the idle epoch of the channel when this stream was created: a resume
            from offset 0 of it started before the first publication.
    """

    __slots__ = ("_items", "_ttl", "epoch", "idle", "top")

    def __init__(
        self, size: int, ttl: float, epoch: str | None = None, idle: str | None = None
    ) -> None:
        self._items: deque[Publication] = deque(maxlen=size)
        self._ttl = ttl
        self.epoch = epoch or new_epoch()
        self.idle = idle
        self.top = 0  # offset of the last publication; 0 before the first

    def next_offset(self) -> int:
        self.top += 1
        return self.top

    def append(self, pub: Publication) -> None:
        self._items.append(pub)

    def expire(self, now_ms: int) -> None:
        """Drop publications older than the age bound."""
        cutoff = now_ms - int(self._ttl * 1000)
        items = self._items
        while items and items[0].ts_ms < cutoff:
            items.popleft()

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(self.top, self.epoch)

    def since(self, position: StreamPosition, now_ms: int) -> list[Publication] | None:
        """Return every publication after ``position``, oldest first.

        Offset 0 of :attr:`idle` counts as offset 0 of this stream. Returns None when
        that cannot be done without a gap: another epoch, an offset from the future,
        or an offset whose successors have been dropped.
        """
        if position.epoch != self.epoch and not (
            position.offset == 0 and position.epoch == self.idle
        ):
            return None
        if position.offset > self.top:
            return None
        if position.offset == self.top:
            return []
        self.expire(now_ms)
        items = self._items
        if not items or items[0].offset > position.offset + 1:
            return None
        start = position.offset + 1 - items[0].offset
        return [items[i] for i in range(start, len(items))]

    def latest(self, limit: int, now_ms: int) -> list[Publication]:
        """Return the last ``limit`` publications still held, oldest first."""
        self.expire(now_ms)
        items = self._items
        first = max(0, len(items) - max(0, limit))
        return [items[i] for i in range(first, len(items))]

    def __len__(self) -> int:
        return len(self._items)
