"""WebSocket transport: the handshake and frames by ``websockets`` (sans-I/O), writes here.

:class:`WsConnection` is the hub's :class:`~streamgate.hub.Subscriber` for one socket:
``enqueue`` only appends to a bytes-bounded :class:`~streamgate.hub.WriteQueue`; a
per-loop :class:`Flusher` writes each connection's queue as one buffer once per loop
turn, so frames that arrive faster than the loop turns share one system call. A queue
that passes its limit closes that connection with 4009 Slow consumer and nothing else.

Inbound frames are parsed by ``websockets.server.ServerProtocol`` (it answers client
pings and close frames itself); whole text or binary messages go to the connection's
:class:`MessageHandler`, the protocol adapter. The pongs it queues go through the same
bounded queue as events, so a peer that pings and never reads is cut with 4009 like any
slow consumer (issue 11); once cut, the peer is no longer read, and nothing it sends
while its socket closes is answered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from streamgate.hub.hub import Encoder
from streamgate.hub.queue import WriteQueue
from streamgate.observability.ring import Ring
from streamgate.observability.stats import FlushStats
from streamgate.protocol import close
from streamgate.server.admission import ConnectionLimits
from streamgate.server.messages import HttpRequest

__all__ = [
    "Flusher",
    "MessageHandler",
    "SlowConsumerCut",
    "WsConnection",
    "WsRegistry",
    "frame_text",
    "handshake",
]

log = logging.getLogger("streamgate.ws")

TRANSPORT_HIGH_WATER = 65_536
HEARTBEAT_SLICES = 20  # the registry's sweep checks this many slices, one per tick


def frame_text(payload: bytes) -> bytes:
    """Return ``payload`` as one unmasked server text frame (RFC 6455 section 5.2)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


_PING = Frame(Opcode.PING, b"").serialize(mask=False)


def _no_encoder(pub: object) -> bytes:
    raise RuntimeError("connection has no encoder")


class MessageHandler(Protocol):
    """A protocol adapter bound to one connection."""

    def text(self, data: bytes) -> None: ...

    def binary(self, data: bytes) -> None: ...

    def closed(self) -> None:
        """The connection is gone (or going): release its subscriptions."""


class Flusher:
    """Writes every connection that queued something: at once while the loop keeps up,
    held for at most ``write_delay`` while it is saturated (issue 14).

    Each pass writes every dirty connection's queue as one buffer. A pass that took
    ``busy_after`` seconds or more means the loop is saturated (each write is a system
    call; at 10,000 sockets a pass takes tens of milliseconds): a frame queued within
    ``write_delay`` after such a pass waits ``write_delay`` for the next pass, so the
    frames queued meanwhile (more publications fanned out while the loop was free to
    read them, local or from Redis) leave in one write per socket instead of one each.
    Under light load passes are short, or the next frame comes later than that, and
    nothing waits: the latency cost is at most ``write_delay``, paid only when the loop
    is saturated (uWebSockets' corking and Centrifugo's ``client.write_delay``, where
    the first message waits for the others, are the same idea).
    A ``write_delay`` of 0 writes on the next loop turn always.

    Once per pass (never per connection) it feeds ``stats``: one connection's queued
    bytes, and the lag of the oldest publication the fan-out queued since the last pass.
    """

    __slots__ = (
        "_busy_after",
        "_busy_until",
        "_delay",
        "_dirty",
        "_loop",
        "_scheduled",
        "stats",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stats: FlushStats | None = None,
        *,
        write_delay: float = 0.0,
        busy_after: float = 0.01,
    ) -> None:
        self._loop = loop
        self._dirty: list[WsConnection] = []
        self._scheduled = False
        self.stats = stats if stats is not None else FlushStats()
        self._delay = write_delay
        self._busy_after = busy_after
        self._busy_until = 0.0  # loop time until which the last pass counts as saturated

    def mark(self, conn: WsConnection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            now = loop.time()
            if now < self._busy_until:
                loop.call_at(now + self._delay, self._run)  # saturated: the first frame waits
            else:
                loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        stats = self.stats
        stats.passes += 1
        if dirty:
            stats.queued.observe(dirty[stats.passes % len(dirty)].queue.size)
        started = time.perf_counter()
        for conn in dirty:
            conn.flush()
        took = time.perf_counter() - started
        if self._delay > 0 and took >= self._busy_after:
            self._busy_until = self._loop.time() + self._delay
        if stats.oldest_ms:
            stats.lag.observe(max(0.0, time.time() - stats.oldest_ms / 1000))
            stats.oldest_ms = 0


@dataclass(frozen=True, slots=True)
class SlowConsumerCut:
    """One connection cut with 4009 (kept in :attr:`WsRegistry.cuts`)."""

    at: float  # wall time
    endpoint: str
    queued_bytes: int
    client: str


class WsRegistry:
    """Every open WebSocket connection of this node; sends pings and drops dead peers.

    Each connection is pinged every ``interval`` seconds; one whose pong has not come
    back ``timeout`` seconds after its ping is closed with 1011. A closed connection
    gives its client's slot back to ``limits`` (taken when it was accepted as HTTP).
    """

    def __init__(
        self,
        *,
        interval: float,
        timeout: float,
        close_timeout: float = 5.0,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.conns: set[WsConnection] = set()
        self.limits = limits
        self.interval = interval
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.opened = 0
        self.slow_consumers = 0
        # Figures for the scrape (server/metrics.py), all bounded: by endpoint kind and
        # close code; written_* hold the connections already closed (open ones add theirs).
        self.opened_by: Counter[str] = Counter()
        self.closed_by: Counter[tuple[str, int]] = Counter()
        self.written_bytes: Counter[str] = Counter()
        self.written_messages: Counter[str] = Counter()
        self.cuts: Ring[SlowConsumerCut] = Ring(50)
        self.cut_by: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _heartbeat(self) -> None:
        """Check every connection once a ``sweep``, a twentieth of them per tick.

        Checking all at once every few seconds pinged every socket due since the last
        check in one burst, and their pongs came back in one: at 100,000 sockets a
        node stalled for hundreds of milliseconds each time (benchmarks/idle_node.py:
        GET /healthz p99 205 ms). A slice per tick spreads the pings, the pongs and the
        sweep itself evenly (issue 14).
        """
        sweep = max(0.05, min(1.0, min(self.interval, self.timeout) / 4))
        tick = sweep / HEARTBEAT_SLICES
        pending: list[WsConnection] = []
        at = per_tick = 0
        while True:
            await asyncio.sleep(tick)
            if at >= len(pending):
                pending, at = list(self.conns), 0
                per_tick = -(-len(pending) // HEARTBEAT_SLICES)  # ceil
            now = time.monotonic()
            for conn in pending[at : at + per_tick]:
                conn.heartbeat(now, self.interval, self.timeout)
            at += per_tick


class WsConnection(asyncio.Protocol):
    """One upgraded socket: outbound queue, inbound frames, liveness, close."""

    __slots__ = (
        "_close_timer",
        "_fragments",
        "_fragments_text",
        "_paused",
        "client",
        "closing",
        "encoder",
        "flusher",
        "handler",
        "kind",
        "next_ping",
        "pong_deadline",
        "queue",
        "registry",
        "sent_bytes",
        "sent_messages",
        "transport",
        "ws",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        kind: str,
        registry: WsRegistry,
        flusher: Flusher,
        queue_limit: int,
        max_message: int,
        client: str = "",
    ) -> None:
        self.transport = transport
        self.client = client
        self.kind = kind
        self.registry = registry
        self.flusher = flusher
        self.queue = WriteQueue(queue_limit)
        self.ws = ServerProtocol(state=State.OPEN, max_size=max_message)
        self.encoder: Encoder = _no_encoder
        self.handler: MessageHandler | None = None
        self.closing = False
        self._paused = False
        self._fragments: bytearray | None = None
        self._fragments_text = True
        self._close_timer: asyncio.TimerHandle | None = None
        # The first ping comes after a random half to whole interval: sockets opened in
        # one burst (a reconnect storm, a load test) are not all pinged in one pass.
        self.next_ping = time.monotonic() + registry.interval * (0.5 + random.random() / 2)
        self.pong_deadline = 0.0
        self.sent_bytes = 0
        # Messages queued and not dropped unwritten (one reply, or one channel's batch).
        self.sent_messages = 0
        transport.set_write_buffer_limits(high=TRANSPORT_HIGH_WATER)
        registry.conns.add(self)
        registry.opened += 1
        registry.opened_by[kind] += 1

    # -- outbound ---------------------------------------------------------------------

    def enqueue(self, data: bytes) -> None:
        """Queue whole frames for writing; cut the connection when its queue is full."""
        if self.closing:
            return
        queue = self.queue
        was_empty = not queue
        if not queue.put(data):
            self._cut(queue.size)
            self.close(*close.SLOW_CONSUMER, discard=True)
            # It does not read: nor do we, unless its socket drains (resume_writing),
            # so that it cannot make us buffer more; close_timeout ends it otherwise.
            self.transport.pause_reading()
            return
        self.sent_messages += 1
        if was_empty and not self._paused:
            self.flusher.mark(self)

    def _cut(self, queued: int) -> None:
        registry = self.registry
        registry.slow_consumers += 1
        registry.cut_by[self.kind] += 1
        registry.cuts.add(SlowConsumerCut(time.time(), self.kind, queued, self.client))
        log.warning(
            "! slow consumer cut (4009): %s socket from %s, %d bytes queued",
            self.kind,
            self.client or "?",
            queued,
        )

    def send(self, payload: bytes) -> None:
        """Queue one JSON text message (a reply), in order with the events."""
        self.enqueue(frame_text(payload))

    def flush(self) -> None:
        if self._paused or self.closing:
            return
        data = self.queue.drain()
        if data:
            self.transport.write(data)
            self.sent_bytes += len(data)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self.closing:
            self.transport.resume_reading()  # for the peer's answer to our close frame
        elif self.queue:
            self.flusher.mark(self)

    # -- inbound ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        if ws.state is State.OPEN:
            # Only pongs come out while open: they count against the queue's limit.
            for pong in ws.data_to_send():
                self.enqueue(pong)
        elif self.closing:
            # Our close frame is out: what comes now is pongs (dropped) and the EOF.
            for chunk in ws.data_to_send():
                if not chunk and not self.transport.is_closing():
                    self.transport.close()
        else:
            self._write_protocol_output()  # the peer's close, answered; or a failure
        # Only a finished close handshake ends the socket here; a close we started waits
        # for the peer's answer under the close timer (close_expected() is a cue for a
        # timer, not for closing now: websockets' sans-I/O contract).
        if ws.state is State.CLOSED:
            self._shutdown()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._write_protocol_output()
        self._shutdown()
        return None

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            self.pong_deadline = 0.0
            return
        if opcode is Opcode.PING or opcode is Opcode.CLOSE or self.closing:
            return  # answered by the protocol object
        if opcode is Opcode.CONT:
            if self._fragments is None:
                return
            self._fragments += frame.data
            if not frame.fin:
                return
            data, self._fragments = bytes(self._fragments), None
            text = self._fragments_text
        else:
            if not frame.fin:
                self._fragments = bytearray(frame.data)
                self._fragments_text = opcode is Opcode.TEXT
                return
            data, text = bytes(frame.data), opcode is Opcode.TEXT
        handler = self.handler
        if handler is not None:
            if text:
                handler.text(data)
            else:
                handler.binary(data)

    # -- liveness and close -------------------------------------------------------------

    def heartbeat(self, now: float, interval: float, timeout: float) -> None:
        if self.closing:
            return
        if self.pong_deadline and now > self.pong_deadline:
            # A dead peer will not answer the close handshake: do not wait for it.
            self.close(*close.PING_TIMEOUT, discard=True, timeout=0.0)
        elif not self.pong_deadline and now >= self.next_ping:
            self.transport.write(_PING)
            self.pong_deadline = now + timeout
            self.next_ping = now + interval

    def interrupted(self, channel: str) -> None:
        """A stream of this socket lost continuity (a broker outage; see ``Hub.lost``).

        The socket is closed with 1012 after what is queued: the client reconnects
        and resumes, and the answer's ``recovered: false`` tells it what it missed.
        """
        self.close(*close.STREAM_INTERRUPTED)

    def close(
        self, code: int, reason: str, *, discard: bool = False, timeout: float | None = None
    ) -> None:
        """Send a close frame (after what is queued, unless ``discard``) and end the socket.

        The peer has ``timeout`` seconds to answer the close frame before the socket is
        aborted; with 0, the socket is closed as soon as the frame is written.

        The subscriptions are released on the next loop turn, never inside a fan-out.
        """
        if self.closing:
            return
        if discard:
            self._discard()
        else:
            self._paused = False
            self.flush()
        self.closing = True
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
        self._write_protocol_output()
        loop = asyncio.get_running_loop()
        loop.call_soon(self._release)
        if timeout is None:
            timeout = self.registry.close_timeout
        if timeout <= 0:
            self.transport.close()
        else:
            self._close_timer = loop.call_later(timeout, self.transport.abort)

    def _write_protocol_output(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif not self.transport.is_closing():
                self.transport.close()

    def _shutdown(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self._release)
        if not self.transport.is_closing():
            self.transport.close()

    def _release(self) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.closed()
        self._discard()

    def _discard(self) -> None:
        """Drop what is queued (never written: not counted as sent)."""
        self.sent_messages -= len(self.queue)
        self.queue.clear()

    def _close_code(self) -> int:
        """The close code of whichever side closed first; 1006 when no close frame came."""
        ws = self.ws
        if ws.close_rcvd is not None and (ws.close_sent is None or ws.close_rcvd_then_sent):
            return ws.close_rcvd.code
        if ws.close_sent is not None:
            return ws.close_sent.code
        return 1006

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.ws.parser.close()  # break the parser's reference cycle: refcounting frees it
        registry = self.registry
        registry.conns.discard(self)
        code = self._close_code()
        registry.closed_by[self.kind, code] += 1
        log.debug("= %s socket from %s closed: %d", self.kind, self.client or "?", code)
        if registry.limits is not None:
            registry.limits.release(self.client)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._release()
        # Folded into the registry's totals once nothing queued is left to drop.
        registry.written_bytes[self.kind] += self.sent_bytes
        registry.written_messages[self.kind] += self.sent_messages
        self.sent_bytes = self.sent_messages = 0


def handshake(
    request: HttpRequest,
    *,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: Callable[[Sequence[str]], str | None] | None = None,
) -> tuple[Response, bytes]:
    """Validate an upgrade request (RFC 6455 section 4.2) and build the answer.

    Returns the response and its bytes; a status other than 101 means refused.
    """
    selector = None
    if select_subprotocol is not None:
        chooser = select_subprotocol

        def selector(_: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            chosen = chooser(offered)
            return None if chosen is None else Subprotocol(chosen)

    protocol = ServerProtocol(
        subprotocols=[Subprotocol(s) for s in subprotocols or ()] or None,
        select_subprotocol=selector,
    )
    response = protocol.accept(Request(request.target, Headers(request.headers)))
    protocol.send_response(response)
    data = b"".join(protocol.data_to_send())
    protocol.parser.close()  # its frame refers to the protocol: free it now, not at GC time
    return response, data
