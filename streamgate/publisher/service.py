"""The publishing service: a ``POST /api/v1/publish`` body in, publications out.

:meth:`Publisher.publish` does, in this order (PROTOCOL.md section 4):

1. parse the batch whole (:func:`~streamgate.protocol.producer.parse_batch`);
2. split off the events whose idempotency key was seen (duplicates);
3. pre-check order-book continuity against the broker's books, so a batch with a
   delta that does not follow is refused whole (409) before any key is claimed;
4. claim the idempotency keys (two nodes racing on one key: one publishes);
5. expand each tenant-wide ``system.notice`` into one publication per connected sub-user;
6. publish through the broker, which checks the books again, atomically with the
   publish (in Redis, inside the publish script), so two producers racing on one book
   through two nodes cannot both extend it;
7. note the markets published to, then write the push events to the webhook outbox.

A publish that fails at 5 or 6 releases the keys it claimed and has written nothing to
the outbox, so the producer's retry makes the one outbox message. If the outbox write
fails after the publish, :class:`~streamgate.errors.OutboxUnavailable` is raised and the
keys stay claimed: the retry's keyed events are duplicates, which are written to the
outbox again (their message ids are derived from tenant and key, so this adds nothing
already there) and not published again.

Order-book continuity is checked twice, by design: the pre-check here (the one call of
:func:`~streamgate.core.books.check_chain` on the publish path, through
:func:`~streamgate.protocol.producer.check_book_sequences`) answers a producer's mistake
before anything is claimed; the broker's check inside ``Broker.publish`` is the atomic
one that decides a race between nodes. Its refusal is answered the same way (409).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from streamgate.brokers.base import Broker, IdempotencyStore, Outgoing
from streamgate.core.channels import is_book_channel, is_push_channel, is_push_tenant_wide
from streamgate.errors import BookRefused, BrokerUnavailable, NodeDraining, OutboxUnavailable
from streamgate.protocol.producer import (
    ProducerEvent,
    book_refusal,
    check_book_sequences,
    parse_batch,
)
from streamgate.publisher.markets import MarketDirectory
from streamgate.webhooks.outbox import PushEvent

__all__ = ["PublishResult", "Publisher", "PushOutbox"]

log = logging.getLogger("streamgate.publisher")


class PushOutbox(Protocol):
    """Where published push events go before the publish is acknowledged (webhooks)."""

    async def enqueue_push(self, events: Sequence[PushEvent]) -> int:
        """Write ``events`` durably; safe to repeat for keyed events."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish did: events published and events answered as duplicates."""

    accepted: int
    duplicates: int


class Publisher:
    """Validates publish batches and hands them to the broker, never to the hub.

    Args:
        broker: numbers, keeps and delivers the publications.
        idempotency: the idempotency keys of the window.
        markets: noted with every market event published.
        connected: the connected members (push channels) of a tenant's presence group
            (its push prefix); a tenant-wide notice goes to each of them.
        outbox: the webhook outbox; None publishes no webhooks.
    """

    def __init__(
        self,
        *,
        broker: Broker,
        idempotency: IdempotencyStore,
        markets: MarketDirectory,
        connected: Callable[[str], Awaitable[list[str]]],
        outbox: PushOutbox | None = None,
    ) -> None:
        self._broker = broker
        self._idempotency = idempotency
        self.markets = markets
        self._connected = connected
        self._outbox = outbox
        self._draining = False
        self._in_flight = 0
        self._settled = asyncio.Event()
        self._settled.set()

    async def publish(self, body: bytes, *, now_ms: int) -> PublishResult:
        """Publish the batch ``body`` (stamped with ``now_ms`` where the producer did not).

        Raises:
            ProducerRefusal: the batch is refused whole; nothing of it was published.
            BrokerUnavailable: the broker (or idempotency store) cannot serve now.
            OutboxUnavailable: published, but the webhook outbox cannot be written.
            NodeDraining: the node is shutting down (:meth:`stop`).
        """
        if self._draining:
            raise NodeDraining("the node is shutting down; publish through another")
        self._in_flight += 1
        self._settled.clear()
        try:
            return await self._publish(body, now_ms)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._settled.set()

    def stop(self) -> None:
        """Refuse new publishes (:class:`~streamgate.errors.NodeDraining`): the node drains."""
        self._draining = True

    async def settled(self) -> None:
        """Return once no publish is in flight.

        Drain awaits it (bounded) before closing the sockets, so a publish answered 200
        has been handed to its subscribers' queues first, never to sockets already closed.
        """
        await self._settled.wait()

    async def _publish(self, body: bytes, now_ms: int) -> PublishResult:
        events = parse_batch(body, now_ms=now_ms)
        fresh, repeats = await self._fresh(events)
        books = {e.channel for e in fresh if is_book_channel(e.channel)}
        if books:  # the pre-check (see the module docstring)
            seqs = await self._broker.book_seqs(sorted(books))
            check_book_sequences(fresh, seqs.get)
        keys = _keys(fresh)
        taken = await self._idempotency.claim(keys)
        if taken:  # a racing publish (maybe on another node) claimed them first
            repeats += [e for e in fresh if e.idempotency_key in taken]
            fresh = [e for e in fresh if e.idempotency_key not in taken]
        try:
            outgoing, origins = await self._outgoing(fresh)
            await self._broker.publish(outgoing)
        except BaseException as exc:
            # Not published: the keys this call claimed must not turn the producer's
            # retry into a "duplicate" (docs/protocol-notes.md, producer API).
            await self._unclaim([k for k in dict.fromkeys(keys) if k not in taken])
            if isinstance(exc, BookRefused):  # the broker's atomic check
                raise book_refusal(exc, origins[exc.position]) from None
            raise
        for event in fresh:
            self.markets.note(event.channel, event.data)
        await self._to_outbox(fresh, repeats)
        return PublishResult(accepted=len(fresh), duplicates=len(events) - len(fresh))

    async def _unclaim(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            await self._idempotency.release(keys)
        except BrokerUnavailable:
            log.warning("! %d idempotency keys stay claimed: the store is unavailable", len(keys))

    async def _to_outbox(self, fresh: list[ProducerEvent], repeats: list[ProducerEvent]) -> None:
        """Write the published push events to the webhook outbox: a 200 means durable.

        ``repeats`` (keyed events already claimed) are written too: a no-op when their
        first publish wrote them, the one write when it published and then failed here.

        Raises:
            OutboxUnavailable: the outbox cannot be written (the events are published).
        """
        if self._outbox is None:
            return
        push = [
            PushEvent(e.channel, e.data, e.idempotency_key)
            for e in (*fresh, *repeats)
            if is_push_channel(e.channel)
        ]
        if not push:
            return
        try:
            await self._outbox.enqueue_push(push)
        except Exception as exc:
            log.exception("! webhook outbox write failed after the publish; answering 503")
            raise OutboxUnavailable(
                "published, but the webhook outbox cannot be written: retry; events with an"
                " idempotency_key are not published again"
            ) from exc

    async def _outgoing(self, events: list[ProducerEvent]) -> tuple[list[Outgoing], list[int]]:
        """One publication per event; a tenant-wide notice becomes one per connected sub-user.

        The notice goes into each sub-user's own stream (its own offset), so resuming
        a push socket sees it like any other event of that sub-user. Also returns,
        per publication, the index of its event in the batch.
        """
        out: list[Outgoing] = []
        origins: list[int] = []
        for event in events:
            if is_push_tenant_wide(event.channel):
                channels = await self._connected(event.channel)
                out.extend(Outgoing(c, event.data) for c in channels)
                origins.extend(event.index for _ in channels)
            else:
                out.append(Outgoing(event.channel, event.data))
                origins.append(event.index)
        return out, origins

    async def _fresh(
        self, events: list[ProducerEvent]
    ) -> tuple[list[ProducerEvent], list[ProducerEvent]]:
        """Split off events whose idempotency key was seen: before (the second list) or
        earlier in the batch (dropped)."""
        keys = _keys(events)
        if not keys:
            return events, []
        seen = await self._idempotency.seen(keys)
        fresh: list[ProducerEvent] = []
        repeats: list[ProducerEvent] = []
        in_batch: set[str] = set()
        for event in events:
            key = event.idempotency_key
            if key is not None:
                if key in seen:
                    repeats.append(event)
                    continue
                if key in in_batch:
                    continue
                in_batch.add(key)
            fresh.append(event)
        return fresh, repeats


def _keys(events: list[ProducerEvent]) -> list[str]:
    return [e.idempotency_key for e in events if e.idempotency_key is not None]
