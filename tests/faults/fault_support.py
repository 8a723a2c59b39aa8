"""The fault suite's traffic: resuming clients and producers, on gateways of its own.

The processes (gateways, a Redis of the suite's own) and the bounded waits come from
``tests/support/cluster.py``, which the multi-node tests share.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from streamgate.client.http import HttpClient

from support import UNIT
from support.cluster import WAIT, Node, Procs, gateway_env

PRODUCER_KEY = "fault-producer-key"
AUTH = {"authorization": f"Bearer {PRODUCER_KEY}"}


async def gateways(procs: Procs, names: list[str], **env: str) -> list[Node]:
    """Start one ``streamgate serve`` per name (no rate limit in the way); all listening."""
    base = gateway_env(
        procs.tmp / "data",
        PRODUCER_KEY,
        STREAMGATE_OPS_PER_SECOND="100000",
        STREAMGATE_OPS_BURST="100000",
        **env,
    )
    return await procs.gateways(names, base)


# -- traffic -------------------------------------------------------------------------------


def trade(topic: str, trade_id: str, seq: int) -> dict[str, Any]:
    item = {"id": trade_id, "side": "buy", "price": 100 + seq % 50, "size": 1, "seq": seq}
    return {"topic": topic, "data": {"seq": seq, "trades": [item]}}


def trade_id(event: dict[str, Any]) -> str:
    tid: str = event["data"]["trades"][0]["id"]
    return tid


@dataclass
class Producer:
    """Publishes batches of trades to one topic through one node, as fast as it answers.

    ``accepted``: ids answered 200, in order; ``refused``: ids answered otherwise or
    whose request failed (their outcome is then unknown).
    """

    url: str
    topic: str
    batch: int = 10
    name: str = "p"  # in every id: producers sharing a topic do not collide
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        client = HttpClient(self.url, timeout=WAIT)
        n = 0
        try:
            while not self.stop.is_set():
                ids = [f"{self.topic}#{self.name}{n + i}" for i in range(self.batch)]
                events = [trade(self.topic, tid, n + i) for i, tid in enumerate(ids)]
                n += self.batch
                try:
                    result = await client.post_json("/api/v1/publish", {"events": events}, AUTH)
                    status = str(result.status)
                except (OSError, TimeoutError, ValueError) as exc:
                    status = type(exc).__name__
                    await client.close()
                    client = HttpClient(self.url, timeout=WAIT)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                (self.accepted if status == "200" else self.refused).extend(ids)
                if status != "200":
                    await asyncio.sleep(0.02)
        finally:
            await client.close()


@dataclass
class Watch:
    epoch: str | None = None
    offset: int = 0
    told: bool = False  # the client was told its stream broke (recovered: false, 1012)


class Resumer:
    """A /ws/public client: on any close it reconnects (next node first) and resumes.

    It checks every event: same epoch and offset + 1, or the client was told first (a
    resume answered ``recovered: false``) — anything else is a violation.
    """

    def __init__(self, nodes: list[Node], topics: list[str]) -> None:
        self.nodes = nodes
        self.topics = topics
        self.watch = {t: Watch() for t in topics}
        self.ids: dict[str, list[str]] = {t: [] for t in topics}
        self.epochs: dict[str, list[str]] = {t: [] for t in topics}  # each event's epoch
        self.closes: list[tuple[int | None, str]] = []
        self.recovered: list[dict[str, bool]] = []
        self.violations: list[str] = []
        self.sockets = 0
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            node = self.nodes[turn % len(self.nodes)]
            turn += 1
            try:
                ws = await connect(node.ws(), ping_interval=None, open_timeout=2 * UNIT)
            except (OSError, TimeoutError, InvalidHandshake):
                await asyncio.sleep(0.05)
                continue
            try:
                await self._serve(ws)
            finally:
                await ws.close()

    async def _serve(self, ws: ClientConnection) -> None:
        resume = {
            t: {"offset": w.offset, "epoch": w.epoch}
            for t, w in self.watch.items()
            if w.epoch is not None
        }
        extra = {"resume": resume} if resume else {}
        msg = {"op": "subscribe", "args": self.topics, "req_id": "s", **extra}
        try:
            await ws.send(orjson.dumps(msg).decode())
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
            if reply["op"] == "error":
                assert reply["message"] == "UNAVAILABLE", reply
                await asyncio.sleep(0.1)
                return
            assert reply["op"] == "subscribed", reply
            self.sockets += 1
            recovered: dict[str, bool] = reply.get("recovered", {})
            self.recovered.append(recovered)
            for topic, ok in recovered.items():
                self.watch[topic].told |= not ok
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                event = orjson.loads(raw)
                if event.get("op") == "event":
                    self._check(event)
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            self.closes.append((None, "") if rcvd is None else (rcvd.code, rcvd.reason))
        except (OSError, TimeoutError):
            self.closes.append((None, "timeout"))

    def _check(self, event: dict[str, Any]) -> None:
        topic = event["topic"]
        w = self.watch[topic]
        continuous = w.epoch == event["epoch"] and event["offset"] == w.offset + 1
        if not (continuous or w.told or w.epoch is None):
            self.violations.append(f"{topic} {event['epoch']}/{event['offset']} after {w}")
        self.ids[topic].append(trade_id(event))
        self.epochs[topic].append(event["epoch"])
        w.epoch, w.offset, w.told = event["epoch"], event["offset"], False

    def has(self, topic: str, last: str) -> bool:
        ids = self.ids[topic]
        return bool(ids) and ids[-1] == last

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT)


async def cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel what a failed test left running, and wait for it."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def lost_and_duplicated(got: list[str], accepted: list[str]) -> tuple[int, int]:
    """How many accepted ids ``got`` lacks, and how many ids it holds more than once."""
    seen = set(got)
    return sum(1 for a in accepted if a not in seen), len(got) - len(seen)


def new_prefix() -> str:
    return f"sgfault-{secrets.token_hex(5)}:"
