"""Presence of push sockets across the cluster: per-member limits and who is online.

A ``group`` (e.g. ``"push:acme:"``) holds ``members`` (e.g. ``"push:acme:alice"``); both
are opaque strings. :meth:`Presence.acquire` counts one more socket of a member on this
node unless ``limit`` sockets of it are already open on live nodes, and
:meth:`Presence.members` lists the members of a group with a socket open anywhere.

The backends sit beside this module (Centrifuge's ``presence.go`` next to
``presence_memory.go`` and ``presence_redis.go``): :mod:`streamgate.brokers.presence_memory`
for one process, :mod:`streamgate.brokers.presence_redis` for every node on one Redis.
Only the Redis one imports redis.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Presence"]


class Presence(Protocol):
    """Counts the open sockets of each member, per group, against a limit."""

    async def start(self) -> None:
        """Connect and start the heartbeat (Redis); a no-op in memory."""

    async def close(self) -> None:
        """Stop, forgetting every socket this node counted."""

    async def acquire(self, group: str, member: str, limit: int) -> bool:
        """Count one more socket of ``member`` (in ``group``) on this node unless ``limit``
        sockets of that member are already open across all live nodes; True when counted."""

    async def release(self, group: str, member: str) -> None:
        """Undo one acquire of this node (a no-op when this node holds none)."""

    async def members(self, group: str) -> list[str]:
        """Members of ``group`` with at least one socket open on a live node."""
