"""The hub: channels -> subscribers, fan-out, catch-up on subscribe.

The hub knows channels, publications and bytes; it knows no wire protocol. Each
subscriber brings an ``encoder`` (publication -> the bytes its transport writes);
:meth:`Hub.deliver` calls each distinct encoder once per batch and hands the same
bytes object to every subscriber that uses it (encode once, as Centrifugo's
``broadcastPublication``). ``deliver`` never awaits and never blocks: a subscriber's
``enqueue`` must only buffer (and cut itself off when its buffer is full).

Subscribing is two-phase so that nothing falls between the catch-up (history or
book snapshot) and live delivery:

1. :meth:`Hub.subscribe` registers the subscriber as *pending* (live publications are
   buffered for it), then fetches the catch-up from the broker or the book;
2. :meth:`Hub.go_live` enqueues the catch-up, then the buffered publications newer
   than it, and makes the subscriber live. Call it with no ``await`` between the
   acknowledgement frame and it, so the ack precedes the events.

A catch-up can be ahead of this node: with Redis, the book or history is read on a
command connection while the pub/sub message of the last batch may still be on its way
to the node. A subscriber whose catch-up reaches past what the node has delivered on
the channel is kept *ahead*: each delivery hands it only the publications after its
catch-up, until a delivery reaches it (issue 11). Ordinary live subscribers cost
nothing more: :meth:`Hub.deliver` looks at the ahead ones only when there are some.

When the broker reports a channel whose continuity it could not prove
(:meth:`Hub.lost`, after a Redis outage), nobody is left with a silent gap: order-book
subscribers get a fresh snapshot (their book is whole again), every other subscriber
is told through :meth:`Subscriber.interrupted` and resumes (``recovered: false``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streamgate.core.channels import channel_kind, is_book_channel
from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import BrokerUnavailable
from streamgate.observability.histogram import Histogram
from streamgate.observability.stats import FlushStats

__all__ = ["Catchup", "ChannelFigures", "Encoder", "Hub", "HubStats", "Subscriber"]

log = logging.getLogger("streamgate.hub")

Encoder = Callable[[Publication], bytes]


class Subscriber(Protocol):
    """What the hub sees of a connection."""

    encoder: Encoder

    def enqueue(self, data: bytes) -> None:
        """Buffer ``data`` for writing; never block, never raise."""

    def interrupted(self, channel: str) -> None:
        """Publications of ``channel`` may be missing for this subscriber: tell its client."""


class HistorySource(Protocol):
    """The part of a broker the hub uses when a subscriber joins."""

    async def history(
        self, channel: str, since: StreamPosition
    ) -> tuple[list[Publication], StreamPosition] | None: ...

    async def position(self, channel: str) -> StreamPosition: ...

    async def latest(self, channel: str, limit: int) -> list[Publication]: ...

    async def book(self, channel: str) -> Publication | None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...


@dataclass(slots=True)
class Catchup:
    """What a new subscriber gets before live publications.

    ``recovered`` answers a resume request (None when none was made).
    """

    channel: str
    subscriber: Subscriber
    pubs: list[Publication]
    position: StreamPosition | None  # what ``pubs`` reach; None: no catch-up
    recovered: bool | None
    start: StreamPosition | None = None  # the stream's position when it joined


@dataclass(slots=True)
class _Channel:
    live: set[Subscriber] = field(default_factory=set)
    pending: dict[Subscriber, list[Publication]] = field(default_factory=dict)
    # Subscribers whose catch-up reaches past ``heard``: the position each already has.
    ahead: dict[Subscriber, StreamPosition] = field(default_factory=dict)
    # Every live subscriber has been handed everything up to here.
    last: StreamPosition | None = None
    # The last publication the broker delivered here (None: none since the channel came).
    heard: StreamPosition | None = None
    events: int = 0  # publications delivered here since the channel came (admin view)
    since: float = field(default_factory=time.monotonic)

    def empty(self) -> bool:
        return not self.live and not self.pending and not self.ahead


@dataclass(slots=True)
class HubStats:
    published: int = 0  # publications delivered to the hub by the broker
    delivered: int = 0  # publication copies handed to subscribers
    # Seconds one deliver() spent handing a batch to its live subscribers (once per batch).
    fanout: Histogram = field(default_factory=Histogram)
    subscribes: Counter[str] = field(default_factory=Counter)  # by channel_kind
    resumes: Counter[bool] = field(default_factory=Counter)  # by ``recovered``
    flush: FlushStats = field(default_factory=FlushStats)  # oldest_ms set by the fan-out


@dataclass(frozen=True, slots=True)
class ChannelFigures:
    """One channel as the admin view shows it."""

    channel: str
    subscribers: int
    events: int  # publications delivered on this node since ``age`` seconds
    age: float


class Hub:
    """Channels and their subscribers on this node; the broker's event handler."""

    def __init__(self, source: HistorySource) -> None:
        self._source = source
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = HubStats()

    # -- broker -> hub ---------------------------------------------------------------

    def deliver(self, channel: str, pubs: Sequence[Publication]) -> None:
        """Fan ``pubs`` (one channel, offset order) out to that channel's subscribers.

        Called by the broker for every publication, local or remote.
        """
        self.stats.published += len(pubs)
        state = self._channels.get(channel)
        if state is None:
            return
        for buffered in state.pending.values():
            buffered.extend(pubs)
        state.last = state.heard = pubs[-1].position
        state.events += len(pubs)
        live = state.live
        encoded: dict[Encoder, bytes] = {}
        if live:
            stats = self.stats
            started = time.perf_counter()
            stats.delivered += len(live) * len(pubs)
            if not stats.flush.oldest_ms:
                stats.flush.oldest_ms = pubs[0].ts_ms
            for sub in live:
                encoder = sub.encoder
                data = encoded.get(encoder)
                if data is None:
                    data = encoded[encoder] = _encode_all(encoder, pubs)
                sub.enqueue(data)
            stats.fanout.observe(time.perf_counter() - started)
        if state.ahead:
            self._deliver_ahead(state, pubs, encoded)

    def _deliver_ahead(
        self, state: _Channel, pubs: Sequence[Publication], encoded: dict[Encoder, bytes]
    ) -> None:
        """Hand each ahead subscriber what is newer than its catch-up; live once reached."""
        last = pubs[-1]
        for sub, position in list(state.ahead.items()):
            skip = 0
            while skip < len(pubs) and not _after(pubs[skip].position, position):
                skip += 1
            if skip < len(pubs):
                self.stats.delivered += len(pubs) - skip
                encoder = sub.encoder
                if skip == 0:
                    data = encoded.get(encoder)
                    if data is None:
                        data = encoded[encoder] = _encode_all(encoder, pubs)
                else:
                    data = _encode_all(encoder, pubs[skip:])
                sub.enqueue(data)
            if last.epoch != position.epoch or last.offset >= position.offset:
                del state.ahead[sub]
                state.live.add(sub)

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(
        self,
        channel: str,
        sub: Subscriber,
        since: StreamPosition | None = None,
        *,
        latest: bool = False,
    ) -> Catchup:
        """Register ``sub`` as pending on ``channel`` and fetch its catch-up.

        With ``since``, the catch-up is every publication after it, when the broker can
        replay them; otherwise (or without ``since``) an order-book channel's catch-up
        is a snapshot of the current book, and any other channel's is empty. With
        ``latest`` and no ``since``, it is the channel's latest publication history
        still holds, when there is one (the latest value; PROTOCOL.md section 3):
        continuous with live delivery as a snapshot is.
        """
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        state.live.discard(sub)
        state.ahead.pop(sub, None)
        state.pending[sub] = []
        self.stats.subscribes[channel_kind(channel)] += 1
        try:
            # Every subscriber waits until the node receives the channel (at once when it
            # already does): one that came while the first's subscription was still
            # being confirmed must not go live on a stream the node does not hear yet.
            await self._source.subscribe(channel)
            recovered: bool | None = None
            pubs: list[Publication] = []
            position: StreamPosition | None = None
            if since is not None:
                replay = await self._source.history(channel, since)
                recovered = replay is not None
                self.stats.resumes[recovered] += 1
                if replay is not None:
                    pubs, position = replay
            if not recovered and is_book_channel(channel):
                snap = await self._source.book(channel)
                if snap is not None:
                    pubs, position = [snap], snap.position
            elif latest and since is None:
                pubs = await self._source.latest(channel, 1)
                if pubs:
                    position = pubs[-1].position
            if position is not None:
                start = position
            elif state.last is not None:
                start = state.last  # delivered here up to it; later ones are buffered for sub
            else:
                start = await self._source.position(channel)
        except BaseException:
            self._drop(channel, sub)
            raise
        return Catchup(channel, sub, pubs, position, recovered, start)

    def go_live(self, catchup: Catchup) -> bool:
        """Enqueue the catch-up and what arrived meanwhile; then deliver live.

        Returns False when the subscriber left while its catch-up was fetched.
        """
        state = self._channels.get(catchup.channel)
        sub = catchup.subscriber
        if state is None or sub not in state.pending:
            return False
        buffered = state.pending.pop(sub)
        position = catchup.position
        if position is not None:
            buffered = [
                p for p in buffered if p.epoch != position.epoch or p.offset > position.offset
            ]
        backlog = catchup.pubs + buffered
        if backlog:
            sub.enqueue(_encode_all(sub.encoder, backlog))
        reached = buffered[-1].position if buffered else catchup.start
        heard = state.heard
        if position is not None and (heard is None or _after(position, heard)):
            # The broker's copies of publications up to ``position`` may still be on
            # their way to this node: they must not reach ``sub`` a second time.
            state.ahead[sub] = position
            if state.last is None:
                state.last = position
            return True
        if state.last is None or (reached is not None and _after(reached, state.last)):
            state.last = reached
        state.live.add(sub)
        return True

    def lost(self, channel: str, position: StreamPosition) -> None:
        """The broker could not prove ``channel``'s continuity up to ``position``.

        Order-book subscribers are subscribed again for a fresh snapshot; any other
        subscriber is interrupted. Subscribers still fetching their catch-up are left
        alone: it is fetched after the loss.
        """
        state = self._channels.get(channel)
        if state is None:
            return
        state.last = state.heard = position
        subs = [*state.live, *state.ahead]
        if not subs:
            return
        if not is_book_channel(channel):
            for sub in subs:
                sub.interrupted(channel)
            return
        state.live.clear()
        state.ahead.clear()
        for sub in subs:
            state.pending[sub] = []
        task = asyncio.ensure_future(self._resnapshot(channel, subs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resnapshot(self, channel: str, subs: list[Subscriber]) -> None:
        try:
            snap = await self._source.book(channel)
        except BrokerUnavailable:
            snap = None
            log.warning("! no fresh snapshot of %s: the broker is unavailable", channel)
        for sub in subs:
            if snap is None:
                self._drop(channel, sub)
                sub.interrupted(channel)
            else:
                self.go_live(Catchup(channel, sub, [snap], snap.position, None, snap.position))

    def delivered_position(
        self, channel: str, sub: Subscriber | None = None
    ) -> StreamPosition | None:
        """Return the position up to which every live subscriber of ``channel`` has all.

        With ``sub``, the position that subscriber has everything up to (its catch-up
        when that is still ahead of the node). A subscriber that leaves a channel and
        later comes back with this position as ``since`` misses nothing that history
        still holds.
        """
        state = self._channels.get(channel)
        if state is None:
            return None
        if sub is not None and (ahead := state.ahead.get(sub)) is not None:
            return ahead
        return state.last

    def unsubscribe(self, channel: str, sub: Subscriber) -> None:
        """Remove ``sub`` from ``channel``; a no-op when it was not there."""
        self._drop(channel, sub)

    async def position(self, channel: str) -> StreamPosition:
        """Return the channel's current position: every publication up to it was delivered."""
        return await self._source.position(channel)

    def channels_with_prefix(self, prefix: str) -> list[str]:
        """Return the channels with subscribers on this node whose name starts with ``prefix``."""
        return [c for c in self._channels if c.startswith(prefix)]

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return 0 if state is None else len(state.live) + len(state.pending) + len(state.ahead)

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def subscriptions_by_kind(self) -> Counter[str]:
        """Subscribers on this node per :func:`~streamgate.core.channels.channel_kind`."""
        counts: Counter[str] = Counter()
        for channel, state in self._channels.items():
            counts[channel_kind(channel)] += len(state.live) + len(state.pending) + len(state.ahead)
        return counts

    def channel_figures(self) -> list[ChannelFigures]:
        """Every channel of this node with its subscribers and events (the admin view)."""
        now = time.monotonic()
        return [
            ChannelFigures(
                channel,
                len(state.live) + len(state.pending) + len(state.ahead),
                state.events,
                now - state.since,
            )
            for channel, state in self._channels.items()
        ]

    def _drop(self, channel: str, sub: Subscriber) -> None:
        state = self._channels.get(channel)
        if state is None:
            return
        state.live.discard(sub)
        state.pending.pop(sub, None)
        state.ahead.pop(sub, None)
        if state.empty():
            del self._channels[channel]
            task = asyncio.ensure_future(self._release(channel))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _release(self, channel: str) -> None:
        # A subscribe that came back before this task ran already holds the interest.
        if channel not in self._channels:
            await self._source.unsubscribe(channel)


def _after(a: StreamPosition, b: StreamPosition) -> bool:
    """True when ``a`` is later than ``b`` (a new epoch is later than any old offset)."""
    return a.epoch != b.epoch or a.offset > b.offset


def _encode_all(encoder: Encoder, pubs: Sequence[Publication]) -> bytes:
    if len(pubs) == 1:
        return encoder(pubs[0])
    return b"".join([encoder(p) for p in pubs])
