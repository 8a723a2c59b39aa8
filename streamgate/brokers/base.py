"""The broker seam: where publications get their offsets and come back to the hub.

One data path (Centrifuge's ``Node.Publish``): the producer API only calls
:meth:`Broker.publish`; the broker numbers each publication within its channel,
appends it to the channel's history and calls :meth:`BrokerHandler.deliver` on every
node that has subscribers, this one included. Local delivery is no special case.

Order books are broker state too: ``publish`` checks and applies order-book events in
the same atomic step that numbers them, and :meth:`Broker.book` returns a book exactly
as of one offset, so a snapshot from any node is continuous with the deltas after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamgate.core.publication import Publication, StreamPosition
from streamgate.observability.stats import BrokerStats

__all__ = ["Broker", "BrokerHandler", "IdempotencyStore", "Outgoing"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A publication before the broker numbers it."""

    channel: str
    data: Any


class BrokerHandler(Protocol):
    def deliver(self, channel: str, pubs: Sequence[Publication]) -> None:
        """Take ``pubs`` of one channel, in offset order. Must not block."""

    def lost(self, channel: str, position: StreamPosition) -> None:
        """Publications of ``channel`` may be missing here; it continues after ``position``.

        Called when a broker reconnected and could not prove the channel's continuity
        (its history was lost or trimmed meanwhile). Must not block.
        """


class Broker(Protocol):
    """Numbers, keeps and distributes publications."""

    stats: BrokerStats  # reconnects, lost channels, pub/sub lag (read by the scrape)

    async def start(self, handler: BrokerHandler) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """True while publish and history can be served."""

    async def publish(self, items: Sequence[Outgoing]) -> list[Publication]:
        """Number, keep and deliver ``items``; order holds within a channel.

        Order-book items are checked first (:func:`streamgate.core.books.check_chain`)
        and applied to their books in the same atomic step.

        Raises:
            BookRefused: a delta does not follow its book; nothing was published.
            BrokerUnavailable: nothing was published.
        """

    async def history(
        self, channel: str, since: StreamPosition
    ) -> tuple[list[Publication], StreamPosition] | None:
        """Return the publications after ``since`` and the position they reach.

        None when they cannot all be replayed (other epoch, too old, from the future).
        """

    async def position(self, channel: str) -> StreamPosition:
        """Return the channel's current position (offset 0 before any publication)."""

    async def latest(self, channel: str, limit: int) -> list[Publication]:
        """Return the last ``limit`` publications history still holds, oldest first.

        Fewer (or none) when fewer are held: trimmed by size or older than the TTL.
        """

    async def book(self, channel: str) -> Publication | None:
        """Return the order book of ``channel`` as a snapshot publication, or None.

        The publication has the offset and epoch of the last event the book includes.
        """

    async def book_seqs(self, channels: Sequence[str]) -> dict[str, int]:
        """Return the current seq of those ``channels`` that have a book."""

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s publications on this node."""

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s publications on this node."""


class IdempotencyStore(Protocol):
    """Idempotency keys remembered for a window (PROTOCOL.md section 4)."""

    async def seen(self, keys: Sequence[str]) -> set[str]:
        """Return which of ``keys`` were claimed within the window."""

    async def claim(self, keys: Sequence[str]) -> set[str]:
        """Claim ``keys``; return those another publish claimed first."""

    async def release(self, keys: Sequence[str]) -> None:
        """Forget ``keys`` this process claimed for a publish that then failed."""

    async def close(self) -> None:
        """Release what the store holds (connections); called once, at shutdown."""
