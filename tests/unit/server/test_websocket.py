"""WsConnection over ``socket.socketpair()``: pongs, the outbound limit, reading and closing.

The gateway's side is a real uvloop transport; the peer is websockets' sans-I/O client
on the other end of the pair, reading only when a test says so.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from streamgate.server.websocket import Flusher, WsConnection, WsRegistry, frame_text

from support import UNIT


@dataclass
class Peer:
    sock: socket.socket
    ws: ClientProtocol

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def ping(self, payload: bytes, count: int = 1) -> None:
        frame = Frame(Opcode.PING, payload).serialize(mask=True, extensions=[])
        await self.send(frame * count)

    async def raw(self, within: float) -> bytes:
        """Every byte that arrives within ``within`` time units, unparsed."""
        loop = asyncio.get_running_loop()
        data = b""
        deadline = loop.time() + within * UNIT
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), left)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return data

    async def frames(self, within: float = 1.0) -> list[Frame]:
        """Read for ``within`` time units or until EOF; answer what the protocol says."""
        loop = asyncio.get_running_loop()
        got: list[Frame] = []
        deadline = loop.time() + within * UNIT
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), left)
            except TimeoutError:
                break
            if not chunk:
                self.ws.receive_eof()
            else:
                self.ws.receive_data(chunk)
            got.extend(e for e in self.ws.events_received() if isinstance(e, Frame))
            for out in self.ws.data_to_send():
                if out:
                    try:
                        await self.send(out)
                    except (BrokenPipeError, ConnectionResetError):
                        return got  # the gateway's side has gone: nothing to answer
            if not chunk:
                break
        return got


@asynccontextmanager
async def pair(
    *, queue_limit: int = 1 << 20, close_timeout: float = 60.0, sndbuf: int | None = None
) -> AsyncIterator[tuple[WsConnection, Peer]]:
    ours, theirs = socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    registry = WsRegistry(interval=3600, timeout=3600, close_timeout=close_timeout)
    conn = WsConnection(
        transport,
        kind="public",
        registry=registry,
        flusher=Flusher(loop),
        queue_limit=queue_limit,
        max_message=1 << 20,
    )
    transport.set_protocol(conn)
    peer = Peer(theirs, ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN))
    try:
        yield conn, peer
    finally:
        transport.abort()
        theirs.close()


def closes(frames: list[Frame]) -> list[int]:
    return [Close.parse(f.data).code for f in frames if f.opcode is Opcode.CLOSE]


async def until_closed(conn: WsConnection, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * UNIT
    while conn in conn.registry.conns:
        assert loop.time() < deadline, "the socket did not close"
        await asyncio.sleep(0.01)


async def test_a_ping_is_answered_with_its_pong() -> None:
    async with pair() as (_, peer):
        await peer.ping(b"hi")
        frames = await peer.frames(0.2)
        assert [(f.opcode, f.data) for f in frames] == [(Opcode.PONG, b"hi")]


async def test_pongs_count_against_the_outbound_limit() -> None:
    async with pair(queue_limit=4096) as (conn, peer):
        await peer.ping(b"p" * 125, count=100)  # 12.7 KB of pongs in one read
        frames = await peer.frames(0.5)
        assert closes(frames) == [4009]
        pongs = [f for f in frames if f.opcode is Opcode.PONG]
        assert len(pongs) * 127 <= 4096  # at most what fitted (a cut discards the queue)
        assert conn.registry.slow_consumers == 1


async def test_a_cut_peer_is_not_read_until_its_socket_drains() -> None:
    async with pair(queue_limit=65_536, sndbuf=4096) as (conn, peer):
        event = frame_text(b"x" * 16_000)
        for _ in range(1000):  # bounded: the transport backs up, then the queue fills
            conn.enqueue(event)
            await asyncio.sleep(0)
            if conn.closing:
                break
        assert conn.registry.slow_consumers == 1
        assert not conn.transport.is_reading()
        # The peer catches up: it is read again, and its answer to 4009 ends the socket
        # long before the 60 s close timeout.
        frames = await peer.frames(1.0)
        assert closes(frames) == [4009]
        await until_closed(conn)


async def test_pings_after_our_close_frame_get_no_pong() -> None:
    async with pair() as (conn, peer):
        conn.close(1001, "going away")
        await peer.ping(b"late", count=3)
        close = Frame(Opcode.CLOSE, Close(1001, "going away").serialize())
        assert await peer.raw(0.3) == close.serialize(mask=False)  # and nothing after it
        await peer.send(close.serialize(mask=True, extensions=[]))
        await until_closed(conn)


class Recorder:
    """A MessageHandler that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.ended = 0

    def text(self, data: bytes) -> None:
        self.got.append(("text", data))

    def binary(self, data: bytes) -> None:
        self.got.append(("binary", data))

    def closed(self) -> None:
        self.ended += 1


async def test_fragmented_messages_reach_the_handler_whole_and_typed() -> None:
    async with pair() as (conn, peer):
        handler = conn.handler = Recorder()
        parts = [
            Frame(Opcode.TEXT, b"hel", fin=False),
            Frame(Opcode.PING, b"between"),  # a control frame may come between fragments
            Frame(Opcode.CONT, b"lo", fin=False),
            Frame(Opcode.CONT, b"!", fin=True),
            Frame(Opcode.BINARY, b"\x00\x01"),
        ]
        await peer.send(b"".join(f.serialize(mask=True, extensions=[]) for f in parts))
        frames = await peer.frames(0.3)
        assert [(f.opcode, f.data) for f in frames] == [(Opcode.PONG, b"between")]
        assert handler.got == [("text", b"hello!"), ("binary", b"\x00\x01")]


async def test_the_peers_close_is_answered_and_ends_the_socket_once() -> None:
    async with pair() as (conn, peer):
        handler = conn.handler = Recorder()
        close = Frame(Opcode.CLOSE, Close(1000, "bye").serialize())
        await peer.send(close.serialize(mask=True, extensions=[]))
        frames = await peer.frames(0.5)
        assert closes(frames) == [1000]
        await until_closed(conn)
        assert handler.ended == 1


async def test_a_silent_peer_is_pinged_then_cut_when_its_pong_is_late() -> None:
    async with pair() as (conn, peer):
        conn.heartbeat(conn.next_ping, interval=10.0, timeout=5.0)
        [ping] = await peer.frames(0.3)  # answered by the peer: the deadline is cleared
        assert ping.opcode is Opcode.PING
        await until_pong(conn)
        conn.heartbeat(conn.next_ping, interval=10.0, timeout=5.0)
        assert await peer.raw(0.3) == Frame(Opcode.PING, b"").serialize(mask=False)  # unanswered
        conn.heartbeat(conn.pong_deadline + 0.1, interval=10.0, timeout=5.0)
        frames = await peer.frames(0.5)
        assert closes(frames) == [1011]
        assert [Close.parse(f.data).reason for f in frames] == ["Ping timeout"]
        await until_closed(conn)


async def until_pong(conn: WsConnection, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * UNIT
    while conn.pong_deadline:
        assert loop.time() < deadline, "the pong was not seen"
        await asyncio.sleep(0.01)


# -- figures for the scrape (issue 15) ---------------------------------------------------


async def test_written_messages_and_bytes_are_what_the_peer_got() -> None:
    async with pair() as (conn, peer):
        events = [frame_text(b'{"n":%d}' % i) for i in range(3)]
        for event in events:
            conn.send(event[2:])  # send() frames the payload itself
        got = await peer.frames(0.3)
        assert [f.data for f in got] == [e[2:] for e in events]
        assert conn.sent_messages == 3
        assert conn.sent_bytes == sum(len(e) for e in events)
        close = Frame(Opcode.CLOSE, Close(1001, "bye").serialize())
        await peer.send(close.serialize(mask=True, extensions=[]))
        await peer.frames(0.3)
        await until_closed(conn)
        registry = conn.registry
        assert registry.written_messages["public"] == 3
        assert registry.written_bytes["public"] == sum(len(e) for e in events)
        assert registry.closed_by == {("public", 1001): 1}
        assert registry.opened_by == {"public": 1}


async def test_a_cut_counts_what_was_written_not_what_was_dropped() -> None:
    async with pair(queue_limit=65_536, sndbuf=4096) as (conn, peer):
        event = frame_text(b"x" * 16_000)
        for _ in range(1000):
            conn.enqueue(event)
            await asyncio.sleep(0)
            if conn.closing:
                break
        written = conn.sent_bytes
        assert written % len(event) == 0  # whole frames only
        assert conn.sent_messages == written // len(event)
        [cut] = conn.registry.cuts.recent()
        assert (cut.endpoint, cut.client) == ("public", "")
        assert 0 < cut.queued_bytes <= 65_536
        assert conn.registry.cut_by == {"public": 1}
        await peer.frames(1.0)
        await until_closed(conn)
        assert conn.registry.closed_by == {("public", 4009): 1}


async def test_each_flush_pass_samples_one_queue_and_the_oldest_publication() -> None:
    async with pair() as (conn, peer):
        stats = conn.flusher.stats
        stats.oldest_ms = int(time.time() * 1000) - 250  # as the hub's fan-out sets it
        conn.enqueue(frame_text(b"a" * 100))
        conn.enqueue(frame_text(b"b" * 100))
        await peer.frames(0.2)
        assert stats.passes == 1 and stats.oldest_ms == 0
        assert stats.queued.count == 1 and stats.queued.sum == 2 * len(frame_text(b"a" * 100))
        assert stats.lag.count == 1 and 0.25 <= stats.lag.sum < 5.0
        conn.enqueue(frame_text(b"c"))
        await peer.frames(0.2)
        assert stats.passes == 2 and stats.lag.count == 1  # nothing published meanwhile


async def test_pings_of_sockets_opened_at_once_are_spread_out() -> None:
    """40 sockets opened together are not pinged in one burst (issue 14: at 100,000
    sockets the burst of pings and pongs stalled the node for hundreds of ms)."""
    loop = asyncio.get_running_loop()
    registry = WsRegistry(interval=0.4, timeout=10.0)
    flusher = Flusher(loop)
    peers: list[socket.socket] = []
    transports: list[asyncio.Transport] = []
    for _ in range(40):
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        conn = WsConnection(
            transport,
            kind="public",
            registry=registry,
            flusher=flusher,
            queue_limit=1 << 20,
            max_message=1 << 20,
        )
        transport.set_protocol(conn)
        peers.append(theirs)
        transports.append(transport)
    started = loop.time()
    registry.start()
    try:

        async def first_ping(sock: socket.socket) -> float:
            data = await asyncio.wait_for(loop.sock_recv(sock, 16), 2.0)
            assert data == Frame(Opcode.PING, b"").serialize(mask=False)
            return loop.time() - started

        pinged = list(await asyncio.gather(*(first_ping(sock) for sock in peers)))
    finally:
        await registry.stop()
        for transport in transports:
            transport.abort()
        for sock in peers:
            sock.close()
    pinged.sort()
    assert pinged[-1] < 1.0, "every socket pinged within its interval and a sweep"
    # The old sweep pinged all 40 within a millisecond; a random first ping in the
    # second half of the interval, checked a twentieth per tick, spreads them.
    assert pinged[-1] - pinged[0] > 0.08, pinged
    assert max(sum(1 for t in pinged if s <= t < s + 0.01) for s in pinged) <= 10, pinged
