"""SIGTERM under load: every publish answered 200 is delivered, sockets close 1012, exit 0.

One gateway process (memory broker); producers publish as fast as it answers, clients
follow every topic. The process gets SIGTERM mid-stream. A publish in flight is either
answered 200, and then every client has its events before its socket closes, or refused
(503, or its connection closed): nothing in between. Every client's socket closes with
1012, and the process exits 0 within its drain timeout and a margin.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import orjson
import pytest
from fault_support import (
    AUTH,
    Producer,
    Resumer,
    cancel,
    gateways,
    lost_and_duplicated,
    trade,
)

from support import UNIT
from support.cluster import WAIT, Procs, until

pytestmark = pytest.mark.faults

CLIENTS = 8
TOPICS = [f"trade/0xd{i}" for i in range(2)]
BATCH = 2
PRODUCERS = 8  # publishes in flight when the signal comes
DRAIN = 3.0  # the gateway's drain_timeout


async def test_sigterm_under_load_delivers_what_it_accepted(procs: Procs) -> None:
    running: list[asyncio.Task[None]] = []
    try:
        [gw] = await gateways(procs, ["gw"], STREAMGATE_DRAIN_TIMEOUT=str(DRAIN))
        clients = [Resumer([gw], TOPICS) for _ in range(CLIENTS)]
        running += [r.task for r in clients]
        await until(lambda: all(r.sockets == 1 for r in clients), "every client subscribed")
        producers = [Producer(gw.url, TOPICS[i % 2], BATCH, f"p{i}") for i in range(PRODUCERS)]
        running += [asyncio.create_task(p.run()) for p in producers]
        await until(
            lambda: all(len(r.ids[t]) >= 50 for r in clients for t in TOPICS),
            "50 events per topic on every client",
        )
        gw.proc.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = await asyncio.to_thread(gw.proc.popen.wait, DRAIN + 5 * UNIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit within {DRAIN + 5 * UNIT:.0f} s") from None
        drained_in = time.monotonic() - signalled
        await until(lambda: all(r.closes for r in clients), "every client saw its close")
        for p in producers:
            p.stop.set()
        await asyncio.wait_for(asyncio.gather(*running[len(clients) :]), WAIT)
        for r in clients:
            await r.finish()

        lost = dup = 0
        lacking: set[str] = set()
        for r in clients:
            for p in producers:
                mine = [i for i in r.ids[p.topic] if i.startswith(f"{p.topic}#{p.name}")]
                got_lost, got_dup = lost_and_duplicated(mine, p.accepted)
                lost += got_lost
                dup += got_dup
                lacking |= set(p.accepted) - set(mine)
        accepted = sum(len(p.accepted) for p in producers)
        refused = sum(len(p.refused) for p in producers)
        first_closes = sorted({r.closes[0] for r in clients})
        print(
            f"\nSIGTERM drain: {accepted} events answered 200, {refused} refused, "
            f"{CLIENTS} clients; exit {code} after {drained_in:.2f} s; first closes "
            f"{first_closes}; lost {lost} ({sorted(lacking)}), duplicated {dup}; statuses "
            f"{[p.statuses for p in producers]}"
        )
        assert code == 0
        assert first_closes == [(1012, "Service restart")]
        assert (lost, dup) == (0, 0)
    finally:
        await cancel(running)
        await procs.stop_all()


async def test_a_publish_in_flight_at_sigterm_is_delivered_or_refused(procs: Procs) -> None:
    """The same, made certain: a publish whose body arrives after the signal."""
    running: list[asyncio.Task[None]] = []
    writer: asyncio.StreamWriter | None = None
    try:
        [gw] = await gateways(procs, ["gw"], STREAMGATE_DRAIN_TIMEOUT=str(DRAIN))
        topic = TOPICS[0]
        client = Resumer([gw], [topic])
        running.append(client.task)
        await until(lambda: client.sockets == 1, "the client subscribed")
        body = orjson.dumps({"events": [trade(topic, "in-flight", 1)]})
        head = (
            f"POST /api/v1/publish HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"authorization: {AUTH['authorization']}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(head + body[:10])  # the request has begun: its body is on the way
        await writer.drain()
        await asyncio.sleep(0.2)
        gw.proc.popen.send_signal(signal.SIGTERM)
        await until(lambda: bool(client.closes), "the client's close")
        writer.write(body[10:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), WAIT)
        status = int(answer.split(b" ", 2)[1]) if answer else None
        code = await asyncio.to_thread(gw.proc.popen.wait, DRAIN + 5 * UNIT)
        delivered = client.ids[topic]
        print(
            f"\nSIGTERM with a publish in flight: answered {status}, delivered {delivered}, "
            f"client closes {client.closes}, exit {code}"
        )
        assert status != 200 or delivered == ["in-flight"], "answered 200, delivered to nobody"
        assert code == 0
    finally:
        if writer is not None:
            writer.close()
        await cancel(running)
        await procs.stop_all()
