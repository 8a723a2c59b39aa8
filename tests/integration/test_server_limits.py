"""HTTP and WebSocket hardening (issue 11 points 6-8), over real sockets on 127.0.0.x.

Connection caps (total and per address, HTTP and WebSocket), head, body and keep-alive
timeouts, keys checked on the head before a body is read, the parser cycle broken, and
pongs counted against a non-reading peer's outbound limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.frames import Close, Frame, Opcode

from streamgate.server.app import Gateway
from streamgate.server.http import HttpConnection

from support import PRODUCER_KEY, UNIT, RawClient, open_ws, running_gateway, trade_event, ws_url

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def connections(gw: Gateway, count: int, source: str) -> AsyncIterator[list[Conn]]:
    """``count`` TCP connections to the gateway from ``source``; aborted after."""
    conns: list[Conn] = []
    try:
        for _ in range(count):
            conns.append(
                await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", gw.port, local_addr=(source, 0)),
                    5 * UNIT,
                )
            )
        yield conns
    finally:
        for _, writer in conns:
            writer.transport.abort()


async def until(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Poll ``check`` for at most ``within`` time units."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * UNIT
    while not check():
        assert loop.time() < deadline, f"not within {within * UNIT:g} s: {what}"
        await asyncio.sleep(0.01)


async def answer(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    """Everything the server sends until it closes (at most ``within`` time units)."""
    data = b""
    async with asyncio.timeout(within * UNIT):
        while chunk := await reader.read(65_536):
            data += chunk
    return data


async def get(gw: Gateway, path: str, source: str) -> bytes:
    """``GET path`` from ``source`` on a fresh connection; the whole answer."""
    async with connections(gw, 1, source) as [(reader, writer)]:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        return await answer(reader)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> Any:
    return orjson.loads(response.split(b"\r\n\r\n", 1)[1])


# -- point 6: connection caps ---------------------------------------------------------


async def test_an_address_at_its_cap_is_refused_and_others_are_served(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, max_connections_per_ip=20) as gw,
        connections(gw, 20, "127.0.0.1") as held,
    ):
        await until(lambda: gw.limits.by_ip.get("127.0.0.1") == 20, "20 admitted")
        refused = await get(gw, "/healthz", "127.0.0.1")
        assert status_of(refused) == 503
        assert body_of(refused)["error"]["code"] == "TOO_MANY_CONNECTIONS"
        assert b"retry-after: 1" in refused
        assert status_of(await get(gw, "/healthz", "127.0.0.2")) == 200
        held[0][1].transport.abort()
        await until(lambda: gw.limits.by_ip.get("127.0.0.1") == 19, "a slot given back")
        assert status_of(await get(gw, "/healthz", "127.0.0.1")) == 200


async def test_the_total_cap_counts_every_address(tmp_path: Path) -> None:
    # Per address at most half the total: 5 each, so three addresses meet the total.
    async with running_gateway(tmp_path, max_connections=10) as gw:
        assert gw.limits.per_ip_cap == 5
        async with connections(gw, 5, "127.0.0.3"), connections(gw, 5, "127.0.0.4"):
            await until(lambda: gw.limits.open == 10, "10 admitted")
            refused = await get(gw, "/healthz", "127.0.0.2")
            assert status_of(refused) == 503
            assert "connection limit" in body_of(refused)["error"]["message"]
        await until(lambda: gw.limits.open == 0, "every slot given back")
        assert status_of(await get(gw, "/healthz", "127.0.0.2")) == 200


async def test_websockets_hold_their_slot_until_they_close(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, max_connections_per_ip=3) as gw:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(open_ws(gw)) for _ in range(3)]
            with pytest.raises(InvalidStatus) as refused:
                async with open_ws(gw):
                    pass
            assert refused.value.response.status_code == 503
            await sockets[0].close()
            await until(lambda: gw.limits.open == 2, "the closed WebSocket's slot back")
            async with open_ws(gw) as again:
                await again.send('{"op":"ping"}')
                assert orjson.loads(await asyncio.wait_for(again.recv(), 5 * UNIT))
        await until(lambda: gw.limits.open == 0, "every slot given back")


# -- point 6: timeouts ----------------------------------------------------------------


async def test_a_stalled_head_is_answered_408_and_closed(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, http_header_timeout=0.2 * UNIT) as gw,
        connections(gw, 1, "127.0.0.1") as [(reader, writer)],
    ):
        writer.write(b"POST /api/v1/publish HTTP/1.1\r\nhost: x\r\ncontent-type: appl")
        response = await answer(reader)
        assert status_of(response) == 408
        assert body_of(response)["error"]["code"] == "REQUEST_TIMEOUT"
        assert "request head" in body_of(response)["error"]["message"]
        await until(lambda: not gw.http_conns and gw.limits.open == 0, "the connection gone")


async def test_a_silent_connection_is_closed_without_an_answer(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, http_header_timeout=0.2 * UNIT) as gw,
        connections(gw, 1, "127.0.0.1") as [(reader, _)],
    ):
        assert await answer(reader) == b""


async def test_a_stalled_body_is_answered_408(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, http_body_timeout=0.2 * UNIT) as gw,
        connections(gw, 1, "127.0.0.1") as [(reader, writer)],
    ):
        writer.write(
            b"POST /api/v1/publish HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
            b"authorization: Bearer " + PRODUCER_KEY.encode() + b'\r\n\r\n{"events":'
        )
        response = await answer(reader)
        assert status_of(response) == 408
        assert "request body" in body_of(response)["error"]["message"]


async def test_an_idle_kept_alive_connection_is_closed(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, http_idle_timeout=0.2 * UNIT) as gw,
        connections(gw, 1, "127.0.0.1") as [(reader, writer)],
    ):
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5 * UNIT)
        assert status_of(first) == 200 and b"connection: keep-alive" in first
        assert await answer(reader) == b""  # closed quietly, nothing more said


# -- point 7: keys on the head, bodies never buffered ------------------------------------

BIG_HEAD = (
    "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    "content-length: 8000000\r\n{extra}\r\n"
)


async def test_a_keyless_publish_is_refused_before_its_body(gw: Gateway) -> None:
    async with connections(gw, 1, "127.0.0.1") as [(reader, writer)]:
        writer.write(BIG_HEAD.format(path="/api/v1/publish", extra="").encode())
        response = await answer(reader)  # nothing of the 8 MB body was sent
    assert status_of(response) == 401
    assert b"connection: close" in response
    assert body_of(response)["error"]["code"] == "UNAUTHORIZED"


async def test_tenant_key_routes_refuse_on_the_head(gw: Gateway) -> None:
    for path in ("/auth/ws-token", "/webhooks", "/webhooks/ep_1/recover"):
        async with connections(gw, 1, "127.0.0.1") as [(reader, writer)]:
            writer.write(BIG_HEAD.format(path=path, extra="api-key: sk_wrong\r\n").encode())
            response = await answer(reader)
        assert status_of(response) == 401, (path, response)
        assert body_of(response)["error"]["key"] == "INVALID_API_KEY"


async def test_a_refused_client_still_sending_reads_its_answer(gw: Gateway) -> None:
    async with connections(gw, 1, "127.0.0.1") as [(reader, writer)]:
        writer.write(BIG_HEAD.format(path="/api/v1/publish", extra="").encode())
        writer.write(b"x" * 2_000_000)  # a client that sends its body without waiting
        response = await answer(reader)
    assert status_of(response) == 401


async def test_an_oversized_length_is_refused_413_on_the_head(gw: Gateway) -> None:
    async with connections(gw, 1, "127.0.0.1") as [(reader, writer)]:
        head = BIG_HEAD.replace("8000000", str(gw.config.max_publish_bytes + 1))
        writer.write(head.format(path="/api/v1/publish", extra="").encode())
        response = await answer(reader)
    assert status_of(response) == 413


async def test_expect_100_continue_with_a_key(gw: Gateway) -> None:
    body = orjson.dumps({"events": [trade_event("M", 1)]})
    async with connections(gw, 1, "127.0.0.1") as [(reader, writer)]:
        writer.write(
            f"POST /api/v1/publish HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
            f"authorization: Bearer {PRODUCER_KEY}\r\nexpect: 100-continue\r\n\r\n".encode()
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
        assert status_of(final) == 200


async def test_a_closed_connection_frees_its_body_without_the_cycle_collector(
    gw: Gateway,
) -> None:
    gc.collect()
    gc.disable()
    try:
        async with connections(gw, 1, "127.0.0.1") as [(_, writer)]:
            writer.write(
                BIG_HEAD.format(
                    path="/api/v1/publish", extra=f"authorization: Bearer {PRODUCER_KEY}\r\n"
                ).encode()
                + b"x" * 1_000_000
            )
            await until(lambda: len(gw.http_conns) == 1, "the connection accepted")
            conn: weakref.ref[HttpConnection] = weakref.ref(next(iter(gw.http_conns)))
            await until(lambda: len(getattr(conn(), "_body", b"")) >= 1_000_000, "body read")
        await until(lambda: not gw.http_conns, "the connection closed")
        await until(lambda: conn() is None, "the connection freed by refcounting", within=2)
    finally:
        gc.enable()


# -- point 8: pongs count against the outbound limit ---------------------------------------


async def test_a_non_reading_ping_flood_is_cut_as_a_slow_consumer(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, outbound_buffer_bytes=65_536, close_timeout=UNIT) as gw:
        client = await RawClient.connect(ws_url(gw), rcvbuf=4096)
        try:
            ping = Frame(Opcode.PING, b"p" * 125).serialize(mask=True, extensions=[])

            async def flood() -> None:
                for _ in range(100):  # 13 MB at most, far past 64 KiB of pongs
                    client.writer.write(ping * 1000)
                    await client.writer.drain()

            flooding = asyncio.create_task(flood())
            try:
                await until(lambda: gw.sockets.slow_consumers == 1, "the flood cut")
                [conn] = gw.sockets.conns
                assert not conn.transport.is_reading()  # it cannot make the gateway buffer more
            finally:
                flooding.cancel()
                await asyncio.gather(flooding, return_exceptions=True)
            # Reading now, the client gets its pongs (within the limit), then the close.
            closes: list[int] = []
            async with asyncio.timeout(5 * UNIT):
                while not closes:
                    frames = await client.read_frames(0.2 * UNIT)
                    closes = [Close.parse(f.data).code for f in frames if f.opcode is Opcode.CLOSE]
            assert closes == [4009]
            await until(lambda: not gw.sockets.conns and gw.limits.open == 0, "socket closed")
        finally:
            client.close()
