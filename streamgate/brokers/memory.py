"""The embedded broker: one process, offsets and history in memory.

History is lost with the process, so every channel gets a fresh epoch per process:
a client resuming across a restart is told ``recovered: false`` instead of being
handed offsets that mean something else now.

Memory follows use (Centrifugo's memory broker: a stream without publications expires;
a channel with neither subscribers nor history holds nothing). A channel gets a
stream on its first publish, never on a subscribe, a position or a history read: a
channel without one is at offset 0 of the idle epoch (:mod:`streamgate.brokers.history`).
Once all of a stream's publications have expired (``history_ttl`` after the last
publish) and no subscriber of this node is on it, the sweep drops it; a later publish
starts a new stream in a new epoch, so a resume against the dropped one answers
``recovered: false``. An order-book channel keeps its stream while it has a book (the
producer's next delta builds on the book).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from streamgate.brokers.base import Broker, BrokerHandler, Outgoing
from streamgate.brokers.books import Books
from streamgate.brokers.history import StreamHistory, idle_epoch, new_epoch
from streamgate.core.books import check_chain
from streamgate.core.channels import is_book_channel, market_of
from streamgate.core.publication import Publication, StreamPosition
from streamgate.observability.stats import BrokerStats

__all__ = ["MemoryBroker"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryBroker:
    """Numbers publications per channel and keeps a bounded history of each.

    Args:
        history_size: publications kept per channel.
        history_ttl: seconds a publication stays replayable.
    """

    def __init__(
        self,
        *,
        history_size: int,
        history_ttl: float,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._size = history_size
        self._ttl = history_ttl
        self._clock_ms = clock_ms
        self._streams: dict[str, StreamHistory] = {}
        self._watched: set[str] = set()  # channels the hub of this node has subscribers on
        self._base = new_epoch()  # this process's idle epochs
        # A stream is dropped only once its publications expired: ``history_ttl`` after
        # its last publish, so never within one window of its creation.
        self._window_ms = max(1, int(history_ttl * 1000))
        self.books = Books()
        self.stats = BrokerStats()  # nothing to reconnect to: stays at zero
        self._handler: BrokerHandler | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._handler = None

    @property
    def ready(self) -> bool:
        return self._handler is not None

    def _idle(self, now_ms: int) -> StreamPosition:
        """The position of a channel without a stream."""
        return StreamPosition(0, idle_epoch(self._base, now_ms, self._window_ms))

    def _stream(self, channel: str, now_ms: int) -> StreamHistory:
        stream = self._streams.get(channel)
        if stream is None:
            idle = self._idle(now_ms).epoch
            stream = self._streams[channel] = StreamHistory(self._size, self._ttl, idle=idle)
        return stream

    async def publish(self, items: Sequence[Outgoing]) -> list[Publication]:
        return self.publish_now(items)

    def publish_now(self, items: Sequence[Outgoing]) -> list[Publication]:
        """Publish synchronously: check books, number, keep, deliver; no suspension point.

        Raises:
            BookRefused: a delta does not follow its book; nothing was published.
        """
        books = self.books
        check_chain(((item.channel, item.data) for item in items), books.seq)
        now = self._clock_ms()
        out: list[Publication] = []
        by_channel: dict[str, list[Publication]] = {}
        for item in items:
            stream = self._stream(item.channel, now)
            pub = Publication(item.channel, stream.next_offset(), stream.epoch, item.data, now)
            if is_book_channel(item.channel):
                book = books.apply(pub, market_of(item.channel))
                if book is not None:  # the checksum of the book after it (protocol-notes)
                    data = {**item.data, "checksum": book.checksum()}
                    pub = Publication(pub.channel, pub.offset, pub.epoch, data, now)
            stream.append(pub)
            out.append(pub)
            group = by_channel.get(item.channel)
            if group is None:
                by_channel[item.channel] = [pub]
            else:
                group.append(pub)
        handler = self._handler
        if handler is not None:
            for channel, pubs in by_channel.items():
                handler.deliver(channel, pubs)
        return out

    async def history(
        self, channel: str, since: StreamPosition
    ) -> tuple[list[Publication], StreamPosition] | None:
        now = self._clock_ms()
        stream = self._streams.get(channel)
        if stream is None:
            idle = self._idle(now)
            return ([], idle) if since == idle else None
        pubs = stream.since(since, now)
        if pubs is None:
            return None
        return pubs, stream.position

    async def latest(self, channel: str, limit: int) -> list[Publication]:
        stream = self._streams.get(channel)
        return [] if stream is None else stream.latest(limit, self._clock_ms())

    async def position(self, channel: str) -> StreamPosition:
        stream = self._streams.get(channel)
        return self._idle(self._clock_ms()) if stream is None else stream.position

    async def book(self, channel: str) -> Publication | None:
        book = self.books.get(channel)
        return None if book is None else book.snapshot_publication(self._clock_ms())

    async def book_seqs(self, channels: Sequence[str]) -> dict[str, int]:
        return {c: seq for c in channels if (seq := self.books.seq(c)) is not None}

    async def subscribe(self, channel: str) -> None:
        """Keep ``channel``'s stream while this node has subscribers on it.

        Every publication of this process is delivered here anyway; nothing is created.
        """
        self._watched.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        """The hub's last subscriber of ``channel`` left: see :meth:`subscribe`."""
        self._watched.discard(channel)

    @property
    def channel_count(self) -> int:
        """Channels holding any state here: a stream, or subscribers."""
        return len(self._streams.keys() | self._watched)

    def sweep(self) -> int:
        """Expire old publications; drop the streams nothing holds any more.

        A stream goes when none of its publications is left, no subscriber is on it
        and it has no order book. Returns how many were dropped.
        """
        now = self._clock_ms()
        watched, books = self._watched, self.books
        gone = []
        for channel, stream in self._streams.items():
            stream.expire(now)
            if not len(stream) and channel not in watched and books.get(channel) is None:
                gone.append(channel)
        for channel in gone:
            del self._streams[channel]
        return len(gone)

    async def _sweep(self) -> None:
        """Run :meth:`sweep` a few times per TTL."""
        interval = max(1.0, self._ttl / 4)
        while True:
            await asyncio.sleep(interval)
            self.sweep()


def _conforms(broker: MemoryBroker) -> Broker:
    """Checked by mypy: the memory broker satisfies the seam."""
    return broker
