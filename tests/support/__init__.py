"""Test helpers: a gateway on 127.0.0.1:0, raw and library WebSocket clients, time unit.

The package holds every shared test helper: ``events`` (sample events), ``redis_server``
and ``postgres`` (servers started when not answering, prefixes and databases of a test's
own), ``cluster`` (gateway processes), ``webhook_receiver``, ``schemas`` (the contract
hook).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from streamgate.client.http import HttpClient, HttpResult
from streamgate.config import load_config
from streamgate.server.app import Gateway

from support import schemas

# Sample events, re-exported: tests take them from ``support`` as before.
from support.events import delta_event as delta_event
from support.events import notice as notice
from support.events import snapshot_event as snapshot_event
from support.events import trade_event as trade_event

# One time unit for waits in tests; scale it up on a slow machine.
UNIT = float(os.environ.get("STREAMGATE_TEST_TIME_UNIT", "1.0"))
PRODUCER_KEY = "test-producer-key"


@asynccontextmanager
async def running_gateway(data_dir: Path, **overrides: Any) -> AsyncIterator[Gateway]:
    """Start a gateway on 127.0.0.1 (any port) with test defaults; drain it after."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": str(data_dir),
        "producer_key": PRODUCER_KEY,
    }
    settings.update(overrides)
    gateway = Gateway(load_config(env={}, **settings))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.drain()


def base_url(gw: Gateway) -> str:
    return f"http://127.0.0.1:{gw.port}"


def ws_url(gw: Gateway | int, path: str = "/ws/public") -> str:
    """The WebSocket URL of ``path`` on a gateway, or on a port."""
    port = gw if isinstance(gw, int) else gw.port
    return f"ws://127.0.0.1:{port}{path}"


async def publish(gw: Gateway, events: list[dict[str, Any]], key: str = PRODUCER_KEY) -> HttpResult:
    client = HttpClient(base_url(gw))
    try:
        result = await client.post_json(
            "/api/v1/publish", {"events": events}, {"authorization": f"Bearer {key}"}
        )
    finally:
        await client.close()
    schemas.publish_checked(events, result.status, result.body)  # against openapi.json
    return result


async def publish_ok(gw: Gateway, events: list[dict[str, Any]]) -> dict[str, Any]:
    result = await publish(gw, events)
    assert result.status == 200, result.body
    doc: dict[str, Any] = result.json()
    return doc


async def topic_history(gw: Gateway | int, topic: str) -> tuple[int, list[Any]]:
    """A public topic's last offset (events published on it) and its last 100 events."""
    port = gw if isinstance(gw, int) else gw.port
    client = HttpClient(f"http://127.0.0.1:{port}")
    try:
        result = await client.request("GET", f"/api/v1/history?topic={topic}&limit=100")
    finally:
        await client.close()
    assert result.status == 200, result.body
    doc = result.json()
    return doc["offset"], doc["events"]


def open_ws(gw: Gateway | int, path: str = "/ws/public", **kwargs: Any) -> Any:
    """``async with open_ws(gw) as ws``: a websockets client with pings off."""
    return connect(ws_url(gw, path), ping_interval=None, open_timeout=5 * UNIT, **kwargs)


async def send_json(ws: ClientConnection, msg: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(msg).decode())


async def recv_json(ws: ClientConnection, within: float = 5.0) -> Any:
    """The next message, decoded; TimeoutError after ``within`` time units."""
    raw = await asyncio.wait_for(ws.recv(), within * UNIT)
    return orjson.loads(raw)


async def messages_until_close(ws: ClientConnection, within: float = 5.0) -> tuple[list[Any], int]:
    """Every message until the server closes; returns them and the close code."""
    messages = []
    try:
        while True:
            messages.append(await recv_json(ws, within))
    except ConnectionClosed as closed:
        if closed.rcvd is None:
            raise AssertionError("the server closed without a close frame") from closed
        return messages, closed.rcvd.code


async def subscribe(
    ws: ClientConnection, topics: list[str], req_id: str = "s", **extra: Any
) -> dict[str, Any]:
    await send_json(ws, {"op": "subscribe", "args": topics, "req_id": req_id, **extra})
    ack: dict[str, Any] = await recv_json(ws)
    assert ack["op"] == "subscribed", ack
    return ack


class RawClient:
    """A WebSocket client that reads only when told to (slow and dead peers).

    Frames are built and parsed by ``websockets``' sans-I/O ClientProtocol; it never
    answers pings unless :meth:`read_frames` feeds them to it.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
        path: str = "",
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.path = path  # text frames are checked against this endpoint's messages

    @classmethod
    async def connect(cls, url: str, *, rcvbuf: int | None = None) -> RawClient:
        uri = parse_uri(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window is small too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        # A small stream limit: the client stops pulling from its socket at 128 KiB.
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        protocol = ClientProtocol(uri, max_size=None)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
        protocol.receive_data(head)
        events = protocol.events_received()
        assert events and getattr(events[0], "status_code", None) == 101, head
        return cls(reader, writer, protocol, uri.resource_name)

    def send_text(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        self.protocol.send_text(text.encode())
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def read_frames(self, within: float) -> list[Frame]:
        """Read whatever arrives within ``within`` seconds; return the frames parsed."""
        frames: list[Frame] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(self.reader.read(2**16), left)
            except TimeoutError:
                break
            if not chunk:
                self.protocol.receive_eof()
                frames.extend(e for e in self.protocol.events_received() if isinstance(e, Frame))
                break
            self.protocol.receive_data(chunk)
            frames.extend(e for e in self.protocol.events_received() if isinstance(e, Frame))
            self.writer.write(b"".join(self.protocol.data_to_send()))
        for frame in frames:
            if frame.opcode is Opcode.TEXT:
                schemas.frame_received(self.path, bytes(frame.data))
        return frames

    def close(self) -> None:
        self.writer.transport.abort()
