"""A bytes-bounded outbound queue for one connection.

The hub's fan-out puts whole frames in; the connection's writer drains everything
queued as one buffer, so frames that arrive faster than the loop turns leave in one
write system call. ``put`` never blocks: past ``limit`` queued bytes it refuses, and
the owner cuts the connection (4009 Slow consumer) off the fan-out path.
"""

from __future__ import annotations

__all__ = ["WriteQueue"]


class WriteQueue:
    """Frames waiting for one socket, at most ``limit`` bytes of them.

    Holds nothing while empty and the chunk itself while it has one (the common case
    in a fan-out: the same bytes object as every other subscriber), a list beyond.
    """

    __slots__ = ("_chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self._chunks: bytes | list[bytes] | None = None
        self.limit = limit
        self.size = 0

    def put(self, data: bytes) -> bool:
        """Queue ``data``; return False, queueing nothing, when it would pass the limit."""
        size = self.size + len(data)
        if size > self.limit:
            return False
        self.size = size
        chunks = self._chunks
        if chunks is None:
            self._chunks = data
        elif isinstance(chunks, bytes):
            self._chunks = [chunks, data]
        else:
            chunks.append(data)
        return True

    def drain(self) -> bytes:
        """Take everything queued, as one buffer (the same object when only one was queued)."""
        chunks = self._chunks
        if chunks is None:
            return b""
        self._chunks = None
        self.size = 0
        return chunks if isinstance(chunks, bytes) else b"".join(chunks)

    def clear(self) -> None:
        self._chunks = None
        self.size = 0

    def __bool__(self) -> bool:
        return self._chunks is not None

    def __len__(self) -> int:
        chunks = self._chunks
        if chunks is None:
            return 0
        return 1 if isinstance(chunks, bytes) else len(chunks)
