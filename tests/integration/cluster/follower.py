"""Clients and producers that run across a Redis outage, checking every event.

A ``Follower`` reconnects and resumes until stopped; a ``Producer`` publishes a trade and an
order-book event per round; ``Followed`` puts them on two nodes of the test's own Redis.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from streamgate.client.http import HttpClient, HttpResult

from .harness import (
    WAIT,
    Cluster,
    Feed,
    Levels,
    book_event,
    publish,
    random_delta,
    trade,
    trade_id,
    until,
)
from support.cluster import Node, OwnRedis


@dataclass
class Watch:
    """Where a client is in one topic, and whether it was told its stream broke."""

    epoch: str | None = None
    offset: int = 0
    seq: int | None = None  # an order book's seq
    told: bool = False


class Follower:
    """A /ws/public client that reconnects and resumes until stopped, checking every event.

    The rule: an event continues its topic (same epoch, offset + 1; for order-book deltas
    also seq + 1), or the client was told first: a resume answered ``recovered: false``
    (then any trade may follow), or the event is a fresh ``orderbook_snapshot``.
    """

    def __init__(self, node: Node, topics: list[str]) -> None:
        self.node = node
        self.topics = topics
        self.watch = {t: Watch() for t in topics}
        self.events: list[dict[str, Any]] = []
        self.closes: list[tuple[int | None, str]] = []
        self.recovered: list[dict[str, bool]] = []
        self.violations: list[str] = []
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stop.is_set():
            feed = await Feed.open(self.node.ws("/ws/public"))
            resume = {
                t: {"offset": w.offset, "epoch": w.epoch}
                for t, w in self.watch.items()
                if w.epoch is not None
            }
            extra = {"resume": resume} if resume else {}
            reply = await feed.request({"op": "subscribe", "args": self.topics, **extra})
            if reply["op"] == "error":
                assert reply["message"] == "UNAVAILABLE", reply
                await feed.close()
                await asyncio.sleep(0.1)
                continue
            assert reply["op"] == "subscribed", reply
            recovered: dict[str, bool] = reply.get("recovered", {})
            assert set(recovered) == set(resume), reply
            self.recovered.append(recovered)
            for topic, ok in recovered.items():
                self.watch[topic].told |= not ok
            assert feed.messages[0] == reply, "the ack comes before any event"
            seen = 1
            while True:
                done = feed.closed.is_set()
                for msg in feed.messages[seen:]:
                    if msg.get("op") == "event":
                        self._check(msg)
                seen = len(feed.messages)
                if done:
                    break
                if self.stop.is_set():
                    await feed.close()
                    return
                await asyncio.sleep(0.01)
            self.closes.append((feed.close_code, feed.close_reason))

    def _check(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        w = self.watch[event["topic"]]
        data = event["data"]
        continuous = w.epoch == event["epoch"] and event["offset"] == w.offset + 1
        kind = data.get("type")
        if kind == "orderbook_snapshot":
            ok = True
        elif kind == "orderbook_delta":
            ok = continuous and w.seq is not None and data["seq"] == w.seq + 1
        else:
            ok = continuous or w.told or w.epoch is None
        if not ok:
            where = f"after {w.epoch}/{w.offset} seq {w.seq} (told: {w.told})"
            self.violations.append(f"{event['topic']} {event['epoch']}/{event['offset']} {where}")
        if kind is not None:
            w.seq = data["seq"]
        w.epoch, w.offset, w.told = event["epoch"], event["offset"], False

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["topic"] == topic]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT)


@dataclass
class Producer:
    """Publishes a trade and an order-book event per round through one node, until stopped.

    A refused delta (503, or 409 after Redis came back without the book) is followed by
    a snapshot of the producer's own book, so the book in Redis is always the model.
    """

    node: Node
    market: str
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    model: tuple[Levels, Levels] = field(default_factory=lambda: ({1000: 5}, {900: 5}))
    seq: int = 0
    rounds: int = 0
    accepted: list[str] = field(default_factory=list)  # trade ids answered 200
    statuses: list[int] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        client = HttpClient(self.node.url, timeout=WAIT)
        resnapshot = True
        try:
            while not self.stop.is_set():
                self.rounds += 1
                tid = f"t{self.rounds}"
                if self._ok(await publish(client, [trade(self.market, tid, self.rounds)])):
                    self.accepted.append(tid)
                if resnapshot:
                    event = book_event(self.market, "snapshot", self.seq + 1, *self.model)
                else:
                    change = random_delta(self.rng, self.model)
                    event = book_event(self.market, "delta", self.seq + 1, *change)
                if self._ok(await publish(client, [event])):
                    self.seq += 1
                    resnapshot = False
                else:
                    resnapshot = True
                await asyncio.sleep(0.01)
        finally:
            await client.close()

    def _ok(self, result: HttpResult) -> bool:
        self.statuses.append(result.status)
        if result.status == 200:
            return True
        code = result.json()["error"]["code"]
        assert (result.status, code) in ((503, "UNAVAILABLE"), (409, "NO_BOOK")), result.body
        return False


@dataclass
class Followed:
    """Nodes a and b on the test's own Redis; a client on a follows a market b publishes."""

    a: Node
    b: Node
    trades: str
    book: str
    follower: Follower
    producer: Producer
    producing: asyncio.Task[None]

    @classmethod
    async def start(cls, cluster: Cluster, own_redis: OwnRedis, market: str) -> Followed:
        cluster.redis_url = own_redis.url
        a, b = await cluster.start("a", "b")
        trades, book = f"trade/{market}", f"orderbook/{market}"
        follower = Follower(a, [trades, book])
        await until(lambda: bool(follower.recovered), "the first subscribe")
        producer = Producer(b, market)
        producing = asyncio.create_task(producer.run())
        await until(
            lambda: len(follower.of(trades)) >= 20 and len(follower.of(book)) >= 20, "events"
        )
        return cls(a, b, trades, book, follower, producer, producing)

    async def finish(self) -> None:
        """Stop publishing; wait until a's client has the last trade and delta; stop it."""
        producer, follower = self.producer, self.follower
        producer.stop.set()
        await asyncio.wait_for(self.producing, WAIT)
        last_trade, last_seq = producer.accepted[-1], producer.seq

        def caught_up() -> bool:
            if follower.task.done():
                follower.task.result()  # the follower failed: say why
            t, o = follower.of(self.trades), follower.of(self.book)
            return (
                bool(t and o) and trade_id(t[-1]) == last_trade and o[-1]["data"]["seq"] == last_seq
            )

        def state() -> str:
            t, o = follower.of(self.trades), follower.of(self.book)
            return (
                f"the last trade and delta on a: want trade {last_trade} and seq {last_seq}, "
                f"have trade {trade_id(t[-1]) if t else None} and seq "
                f"{o[-1]['data']['seq'] if o else None} ({o[-1]['data']['type'] if o else ''}); "
                f"closes {follower.closes}, recovered {follower.recovered}, "
                f"producer statuses {producer.statuses[-6:]}"
            )

        await until(caught_up, state)
        await follower.finish()
