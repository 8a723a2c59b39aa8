#!/usr/bin/env python3
"""Test server for the load generator itself (not a baseline).

Speaks the same interface as the gateway as far as loadgen uses it
(POST /api/v1/publish, GET /healthz, WS /ws/public with subscribe), in one of
two styles:

  --style hostile  every framing corner loadgen must survive: frames split
                   into small chunks written separately, several frames per
                   segment, 16- and 64-bit payload lengths (padded events),
                   fragmented messages with pings between the fragments,
                   periodic pings whose pongs are checked (masked, same
                   payload), unknown non-event text messages.
  --style fast     each event is framed once; with --writes batch (default)
                   a whole batch goes to each subscriber in one write, with
                   --writes frame one write per frame: cheaper per message
                   than a real server, to find the load generator's ceiling.

Every client frame is checked to be masked.  On SIGTERM/SIGINT it prints one
line "SELFTEST key=value ..." with what it saw, then exits.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import signal
import struct
import sys
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

stats = {
    "subscribed": 0,
    "published": 0,
    "pings_sent": 0,
    "pongs_ok": 0,
    "pongs_bad": 0,
    "unmasked_frames": 0,
    "client_closes": 0,
    "fragmented_sent": 0,
    "len16_sent": 0,
    "len64_sent": 0,
}


def frame(op: int, payload: bytes, fin: bool = True) -> bytes:
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 126, n)
        stats["len16_sent"] += 1
    else:
        hdr = struct.pack("!BBQ", b0, 127, n)
        stats["len64_sent"] += 1
    return hdr + payload


class Topic:
    def __init__(self) -> None:
        self.offset = 0
        self.subs: set[Client] = set()


topics: dict[str, Topic] = {}


class Client:
    def __init__(self, writer: asyncio.StreamWriter, style: str) -> None:
        self.writer = writer
        self.style = style
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.ping_payloads: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        if self.style == "fast":
            self.writer.write(data)
        else:
            self.queue.put_nowait(data)

    async def hostile_writer(self, rng: random.Random) -> None:
        """Write queued bytes in small random chunks, yielding in between, so
        that frames straddle reads and several frames share a segment."""
        try:
            while True:
                data = await self.queue.get()
                if data is None:
                    return
                # sometimes coalesce with what else is queued
                while not self.queue.empty() and rng.random() < 0.5:
                    more = self.queue.get_nowait()
                    if more is None:
                        self.queue.put_nowait(None)
                        break
                    data += more
                pos = 0
                while pos < len(data):
                    step = rng.choice((1, 2, 3, 7, 50, 300, 5000))
                    self.writer.write(data[pos : pos + step])
                    pos += step
                    if rng.random() < 0.3:
                        await self.writer.drain()
                        await asyncio.sleep(0)
                await self.writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return


def event_message(topic: str, data: object, offset: int, pad: int) -> bytes:
    msg = {
        "op": "event",
        "topic": topic,
        "data": data,
        "offset": offset,
        "epoch": "selftest",
        "server_ts_ms": 0,
    }
    if pad:
        msg["pad"] = "x" * pad
    return json.dumps(msg, separators=(",", ":")).encode()


def publish(events: list[dict[str, Any]], args: argparse.Namespace, rng: random.Random) -> None:
    per_topic: dict[str, list[bytes]] = {}
    for ev in events:
        t = topics.setdefault(ev["topic"], Topic())
        t.offset += 1
        stats["published"] += 1
        if args.style == "fast":
            per_topic.setdefault(ev["topic"], []).append(
                frame(1, event_message(ev["topic"], ev["data"], t.offset, 0))
            )
            continue
        # hostile: pick an encoding per event, the same for every subscriber
        r = rng.random()
        if r < 0.03:
            payload = event_message(ev["topic"], ev["data"], t.offset, 70_000)  # 64-bit length
        elif r < 0.10:
            payload = event_message(ev["topic"], ev["data"], t.offset, 1_000)  # 16-bit length
        else:
            payload = event_message(ev["topic"], ev["data"], t.offset, 0)
        if rng.random() < 0.1:
            # fragmented: text(FIN=0) + ping + continuation(FIN=0) + continuation(FIN=1)
            a, b = len(payload) // 3, 2 * len(payload) // 3
            ping = os.urandom(4)
            parts = [
                frame(1, payload[:a], fin=False),
                frame(9, ping),
                frame(0, payload[a:b], fin=False),
                frame(0, payload[b:], fin=True),
            ]
            stats["fragmented_sent"] += 1
            data = b"".join(parts)
            for c in t.subs:
                c.ping_payloads.append(ping)
                stats["pings_sent"] += 1
                c.send_raw(data)
            continue
        data = frame(1, payload)
        for i, c in enumerate(t.subs):
            if i == 0 and args.drop_every and t.offset % args.drop_every == 0:
                stats["dropped"] = stats.get("dropped", 0) + 1
                continue
            c.send_raw(data)
            if i == 0 and args.dup_every and t.offset % args.dup_every == 0:
                stats["duplicated"] = stats.get("duplicated", 0) + 1
                c.send_raw(data)
            if i == 1 and args.close_at and t.offset == args.close_at:
                stats["close_sent"] = 1
                c.send_raw(frame(8, struct.pack("!H", 1011) + b"selftest close"))
    for name, frames in per_topic.items():
        subs = topics[name].subs
        if args.writes == "frame":
            for f in frames:
                for c in subs:
                    c.send_raw(f)
        else:
            data = b"".join(frames)
            for c in subs:
                c.send_raw(data)


async def read_http_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return method, path, headers


def http_response(status: int, obj: object) -> bytes:
    body = json.dumps(obj).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "X")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if not b1 & 0x80:
        stats["unmasked_frames"] += 1
        raise ConnectionError("unmasked client frame")
    mask = await reader.readexactly(4)
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i & 3]
    return b0 & 0x0F, bytes(data)


async def websocket(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: dict[str, str],
    args: argparse.Namespace,
    rng: random.Random,
) -> None:
    key = headers.get("sec-websocket-key", "")
    # RFC 6455 Sec-WebSocket-Accept: SHA-1 is the protocol's, not a security choice
    digest = hashlib.sha1(key.encode() + GUID, usedforsecurity=False).digest()
    accept = base64.b64encode(digest).decode()
    writer.write(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    client = Client(writer, args.style)
    wtask = asyncio.create_task(client.hostile_writer(rng)) if args.style == "hostile" else None
    ptask = None
    try:
        while True:
            op, data = await read_client_frame(reader)
            if op == 1:
                m = json.loads(data)
                if m.get("op") == "subscribe":
                    for name in m.get("args", []):
                        topics.setdefault(name, Topic()).subs.add(client)
                    reply = {"op": "subscribed", "args": m.get("args"), "req_id": m.get("req_id")}
                    client.send_raw(frame(1, json.dumps(reply).encode()))
                    stats["subscribed"] += 1
                    if args.style == "hostile":
                        # a non-event text message loadgen must skip
                        client.send_raw(frame(1, b'{"op":"info","note":"no offset here"}'))
                        ptask = asyncio.create_task(pinger(client, args.ping_ms))
            elif op == 10:
                if client.ping_payloads and client.ping_payloads[0] == data:
                    client.ping_payloads.pop(0)
                    stats["pongs_ok"] += 1
                else:
                    stats["pongs_bad"] += 1
            elif op == 8:
                stats["client_closes"] += 1
                return
    except (asyncio.IncompleteReadError, ConnectionError, json.JSONDecodeError):
        return
    finally:
        for t in topics.values():
            t.subs.discard(client)
        if ptask:
            ptask.cancel()
        if wtask:
            client.queue.put_nowait(None)
        writer.close()


async def pinger(client: Client, ping_ms: int) -> None:
    try:
        while True:
            await asyncio.sleep(ping_ms / 1000)
            payload = os.urandom(8)
            client.ping_payloads.append(payload)
            stats["pings_sent"] += 1
            client.send_raw(frame(9, payload))
    except asyncio.CancelledError:
        return


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    args: argparse.Namespace,
    rng: random.Random,
) -> None:
    try:
        while True:
            req = await read_http_head(reader)
            if req is None:
                break
            method, path, headers = req
            if path == "/ws/public" and headers.get("upgrade", "").lower() == "websocket":
                await websocket(reader, writer, headers, args, rng)
                return
            body = b""
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            if method == "GET" and path == "/healthz":
                writer.write(http_response(200, {"status": "ok"}))
            elif method == "POST" and path == "/api/v1/publish":
                if headers.get("authorization") != f"Bearer {args.key}":
                    writer.write(http_response(401, {"error": "unauthorized"}))
                else:
                    events = json.loads(body)["events"]
                    publish(events, args, rng)
                    writer.write(http_response(200, {"accepted": len(events), "duplicates": 0}))
            else:
                writer.write(http_response(404, {"error": "not found"}))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--style", choices=("hostile", "fast"), default="hostile")
    ap.add_argument("--ping-ms", type=int, default=200)
    ap.add_argument(
        "--writes",
        choices=("batch", "frame"),
        default="batch",
        help="fast: one write per batch per subscriber, or one per frame",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--drop-every",
        type=int,
        default=0,
        help="hostile: withhold every K-th event from one subscriber",
    )
    ap.add_argument(
        "--dup-every",
        type=int,
        default=0,
        help="hostile: send every K-th event twice to one subscriber",
    )
    ap.add_argument(
        "--close-at",
        type=int,
        default=0,
        help="hostile: send a close frame to one subscriber at this offset",
    )
    args = ap.parse_args()
    args.key = os.environ.get("STREAMGATE_PRODUCER_KEY", "")
    if not args.key:
        sys.exit("set STREAMGATE_PRODUCER_KEY")
    rng = random.Random(args.seed)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args, rng), "127.0.0.1", args.port, backlog=4096, limit=1 << 20
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"selftest server ({args.style}) on 127.0.0.1:{args.port}", flush=True)
    await stop.wait()
    server.close()
    print("SELFTEST " + " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
