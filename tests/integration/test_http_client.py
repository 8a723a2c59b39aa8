"""The SDK's HTTP client (streamgate.client.http) against small servers on 127.0.0.1:0.

Its contract, which the SDK, the venue and the tests rely on: one bound on a whole
request, standard-library errors, a request sent again only when its connection
failed (never after a timeout), headers by lower-case name.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from streamgate.client.http import HttpClient

from support import UNIT

BOUND = 20 * UNIT  # anything here is done well within this

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def _response(body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class Server:
    """Serves ``handler`` per connection; counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        state = Server()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                await handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_request_that_gets_no_answer_times_out_and_is_not_resent(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    silent: Server

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.requests.append(await _read_request(reader))
        await reader.read()  # until the client gives up

    silent = await serve(never_answer)
    client = HttpClient(f"http://127.0.0.1:{silent.port}", timeout=0.2 * UNIT)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.post_json("/api/v1/publish", {"events": []}), BOUND)
    finally:
        await client.close()
    assert len(silent.requests) == 1  # a timed-out request may have run: never twice


async def test_a_refused_connection_raises_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        client = HttpClient(f"http://127.0.0.1:{port}", timeout=BOUND)
        try:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(client.request("GET", "/readyz"), BOUND)
        finally:
            await client.close()


async def test_a_kept_alive_connection_the_server_closed_is_replaced(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    server: Server

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.requests.append(await _read_request(reader))
        # Says keep-alive, then closes: the client's next request needs a new connection.
        writer.write(_response(b'{"n": %d}' % len(server.requests), "connection: keep-alive\r\n"))
        await writer.drain()

    server = await serve(answer_once)
    client = HttpClient(f"http://127.0.0.1:{server.port}", timeout=BOUND)
    try:
        for n in (1, 2, 3):
            result = await asyncio.wait_for(client.request("GET", "/x"), BOUND)
            assert (result.status, result.json()) == (200, {"n": n})
            await asyncio.sleep(0.05 * UNIT)  # the server's close reaches the client
    finally:
        await client.close()
    assert len(server.requests) == 3  # each request reached the server once


async def test_the_result_carries_status_headers_and_body(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    server: Server

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            server.requests.append(await _read_request(reader))
            body = b'{"ok": true}'
            extra = "Content-Type: application/json\r\nX-Twice: a\r\nX-Twice: b\r\n"
            writer.write(_response(body, extra).replace(b"200 OK", b"201 Created"))
            await writer.drain()

    server = await serve(answer)
    client = HttpClient(f"http://127.0.0.1:{server.port}", timeout=BOUND)
    try:
        result = await client.post_json("/p", {"a": 1}, {"authorization": "Bearer k"})
        assert (result.status, result.body, result.json()) == (201, b'{"ok": true}', {"ok": True})
        assert result.headers["content-type"] == "application/json"
        assert result.headers["x-twice"] == "b"  # one value per name: the last
        await client.close()
        again = await client.request("GET", "/after-close")  # a new connection
        assert again.status == 201
    finally:
        await client.close()
    sent = server.requests[0].lower()
    assert sent.startswith(b"post /p http/1.1\r\n")
    assert b"\r\nauthorization: bearer k\r\n" in sent
    assert b"\r\ncontent-type: application/json\r\n" in sent
    assert sent.endswith(b'\r\n\r\n{"a":1}')
    assert server.connections == 2


def test_only_http_urls_are_taken() -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        HttpClient("https://127.0.0.1:1")
