"""Presence within one process (the ``memory`` backend of :class:`Presence`)."""

from __future__ import annotations

from streamgate.brokers.presence import Presence

__all__ = ["MemoryPresence"]


class MemoryPresence:
    """Presence within one process: plain counters."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Forget every count."""
        self._counts.clear()

    async def acquire(self, group: str, member: str, limit: int) -> bool:
        """Count one more socket of ``member`` unless it has ``limit`` already."""
        held = self._counts.get(group, {}).get(member, 0)
        if held >= limit:
            return False
        self._counts.setdefault(group, {})[member] = held + 1
        return True

    async def release(self, group: str, member: str) -> None:
        """Undo one acquire; a no-op when none is held."""
        counts = self._counts.get(group)
        if not counts or member not in counts:
            return
        counts[member] -= 1
        if counts[member] <= 0:
            del counts[member]
            if not counts:
                del self._counts[group]

    async def members(self, group: str) -> list[str]:
        """Members of ``group`` holding at least one socket, sorted."""
        return sorted(self._counts.get(group, {}))


def _conforms(presence: MemoryPresence) -> Presence:
    """Checked by mypy: the memory backend satisfies the seam."""
    return presence
