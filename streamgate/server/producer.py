"""``POST /api/v1/publish``: the producer API (PROTOCOL.md section 4).

Publishes go to the broker, never to the hub. A batch is checked whole (shape,
idempotency keys, order-book continuity) before anything of it is published; the
broker checks order-book continuity again, atomically with the publish (in Redis,
inside the publish script), so two producers racing on one book through two nodes
cannot both extend it.

Order of a publish: claim the idempotency keys (two nodes racing on one key: one
publishes), publish, then write the push events to the webhook outbox, then answer 200.
A publish that fails releases its keys and has written nothing to the outbox, so the
producer's retry makes the one outbox message. If the outbox write fails after the
publish, the answer is 503 and the keys stay claimed: the retry's keyed events are
duplicates, which are written to the outbox again (their message ids are derived from
tenant and key, so this adds nothing that is already there) and not published again.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable

from streamgate.brokers.base import Broker, IdempotencyStore, Outgoing
from streamgate.core.channels import is_book_channel, is_push_channel, is_push_tenant_wide
from streamgate.errors import BookRefused, BrokerUnavailable, ProducerRefusal
from streamgate.protocol.producer import (
    ProducerEvent,
    book_refusal,
    check_book_sequences,
    parse_batch,
)
from streamgate.server.http import HttpRequest, HttpResponse, json_response
from streamgate.server.markets import MarketDirectory
from streamgate.webhooks.outbox import Outbox, PushEvent

__all__ = ["OutboxUnavailable", "Producer"]

log = logging.getLogger("streamgate.producer")


class OutboxUnavailable(Exception):
    """The webhook outbox could not take a published batch's push events (503)."""


def _unavailable(message: str) -> HttpResponse:
    error = {"code": "UNAVAILABLE", "message": message, "index": None, "field": None}
    return json_response(503, {"error": error}, headers=[("retry-after", "1")])


def _refusal(exc: ProducerRefusal) -> HttpResponse:
    error: dict[str, object] = {"code": exc.code, "message": exc.detail}
    error["index"] = exc.index
    error["field"] = exc.field
    return json_response(exc.status, {"error": error})


class Producer:
    """Validates publish batches and hands them to the broker."""

    def __init__(
        self,
        *,
        key: str,
        broker: Broker,
        idempotency: IdempotencyStore,
        markets: MarketDirectory,
        connected: Callable[[str], Awaitable[list[str]]],
        outbox: Outbox | None = None,
    ) -> None:
        self._key = key.encode()
        self._broker = broker
        self._idempotency = idempotency
        self._markets = markets
        self._connected = connected
        self._outbox = outbox
        self._draining = False
        self._in_flight = 0
        self._settled = asyncio.Event()
        self._settled.set()

    def authorized(self, request: HttpRequest) -> bool:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key)

    async def publish(self, request: HttpRequest) -> HttpResponse:
        if not self.authorized(request):
            return json_response(
                401,
                {
                    "error": {
                        "code": "UNAUTHORIZED",
                        "message": "a valid producer key is required",
                        "index": None,
                        "field": None,
                    }
                },
                headers=[("www-authenticate", "Bearer")],
            )
        if self._draining:
            return _unavailable("the node is shutting down; publish through another")
        self._in_flight += 1
        self._settled.clear()
        try:
            return await self._publish(request)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._settled.set()

    def stop(self) -> None:
        """Refuse new publishes (503): the node is draining."""
        self._draining = True

    async def settled(self) -> None:
        """Return once no publish is in flight.

        Drain awaits it (bounded) before closing the sockets, so a publish answered 200
        has been handed to its subscribers' queues first, never to sockets already closed.
        """
        await self._settled.wait()

    async def _publish(self, request: HttpRequest) -> HttpResponse:
        try:
            events = parse_batch(request.body, now_ms=time.time_ns() // 1_000_000)
            fresh, repeats = await self._fresh(events)
            books = {e.channel for e in fresh if is_book_channel(e.channel)}
            if books:
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
                if isinstance(exc, BookRefused):
                    raise book_refusal(exc, origins[exc.position]) from None
                raise
            for event in fresh:
                self._markets.note(event.channel, event.data)
            await self._to_outbox(fresh, repeats)
        except ProducerRefusal as exc:
            return _refusal(exc)
        except OutboxUnavailable as exc:
            return _unavailable(str(exc))
        except BrokerUnavailable as exc:
            return _unavailable(str(exc) or "broker unavailable")
        return json_response(200, {"accepted": len(fresh), "duplicates": len(events) - len(fresh)})

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
