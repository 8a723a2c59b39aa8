"""The fault suite's parts: gateway processes, a Redis of its own, resuming clients, producers.

Every process here is started by the test and stopped by PID (terminate, then kill);
every wait is bounded by ``WAIT``; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from streamgate.client.http import HttpClient

from support import UNIT

WAIT = 20.0 * UNIT  # seconds any bounded wait may take before the test fails
PRODUCER_KEY = "fault-producer-key"
AUTH = {"authorization": f"Bearer {PRODUCER_KEY}"}
LISTENING = re.compile(rb"streamgate listening on http://127\.0\.0\.1:(\d+)")


async def until(
    check: Callable[[], bool], what: str | Callable[[], str], within: float = WAIT
) -> None:
    """Poll ``check`` until it holds, for at most ``within`` seconds.

    ``what`` names the condition; a callable is asked only when it failed.
    """
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"not within {within:.0f} s: {said}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- processes -----------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    out: Path

    def tail(self) -> str:
        return self.out.read_bytes().decode(errors="replace")[-2000:]


def _spawn(name: str, argv: list[str], out: Path, env: dict[str, str] | None) -> Proc:
    with out.open("ab") as stdout:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT, env=env
        )
    return Proc(name, popen, out)


def _stop(proc: Proc) -> None:
    """Terminate, then kill after a timeout; always reap."""
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
    proc.popen.wait(timeout=5)


@dataclass
class Node:
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/public"


@dataclass
class Procs:
    """Every process one test started; ``stop_all`` stops gateways first, Redis last."""

    tmp: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = _spawn(name, argv, self.tmp / f"{name}.out", env)
        self.started.append(proc)
        return proc

    async def gateways(self, names: list[str], **env: str) -> list[Node]:
        """Start one ``streamgate serve`` per name, all at once; return them listening."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
        base.update(
            STREAMGATE_DATA_DIR=str(self.tmp / "data"),
            STREAMGATE_PRODUCER_KEY=PRODUCER_KEY,
            STREAMGATE_OPS_PER_SECOND="100000",
            STREAMGATE_OPS_BURST="100000",
            **env,
        )
        argv = [sys.executable, "-m", "streamgate", "serve", "--host", "127.0.0.1", "--port", "0"]
        procs = [self.spawn(name, argv, base) for name in names]
        return [Node(p, await listening_port(p)) for p in procs]

    async def stop_all(self) -> None:
        for proc in sorted(self.started, key=lambda p: p.name.startswith("redis")):
            await asyncio.to_thread(_stop, proc)


async def listening_port(proc: Proc) -> int:
    deadline = time.monotonic() + WAIT
    while (found := LISTENING.search(proc.out.read_bytes())) is None:
        assert proc.popen.poll() is None, f"{proc.name} exited early:\n{proc.tail()}"
        assert time.monotonic() < deadline, f"{proc.name} did not listen:\n{proc.tail()}"
        await asyncio.sleep(0.05)
    return int(found.group(1))


async def answering(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, RedisError):
        return False
    finally:
        await client.aclose()


@dataclass
class OwnRedis:
    """A redis-server of the test's own (no persistence: a restart comes back empty)."""

    procs: Procs
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.starts += 1
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.proc = self.procs.spawn(f"redis-{self.starts}", argv)
        deadline = time.monotonic() + WAIT
        while not await answering(self.url):
            assert self.proc.popen.poll() is None, f"redis-server exited:\n{self.proc.tail()}"
            assert time.monotonic() < deadline, "redis-server did not answer"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(_stop, self.proc)


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
                ws = await connect(node.ws, ping_interval=None, open_timeout=2 * UNIT)
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
