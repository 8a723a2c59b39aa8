"""HttpConnection (streamgate/server/http.py) over ``socket.socketpair()``: bytes in, bytes out.

The gateway's side is a real uvloop transport running HttpConnection; the client is a
plain stream on the other end that writes raw HTTP/1.1 and reads the raw answers. Only
the Router's ``add``, ``check_head`` and ``add_upgrade`` are used, so the tests judge the
connection's behaviour, not how routes are looked up.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamgate.server.http import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    HttpConnection,
    HttpRequest,
    HttpResponse,
    Router,
    json_response,
)

from support import UNIT

WAIT = 5.0 * UNIT


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class App:
    """The routes under test, and what their handlers saw."""

    seen: list[HttpRequest] = field(default_factory=list)
    upgraded: list[tuple[HttpRequest, bytes]] = field(default_factory=list)

    def router(self) -> Router:
        router = Router()
        router.add("GET", "/echo", self.echo)
        router.add("POST", "/echo", self.echo)
        router.add("GET", "/slow", self.slow)
        router.add("GET", "/boom", self.boom)
        router.add("POST", "/guarded", self.guarded)
        router.check_head("/guarded", lambda r: r.header("authorization") == "Bearer ok")
        router.add_upgrade("/ws", self.upgrade)
        return router

    async def echo(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        return json_response(
            200,
            {
                "method": request.method,
                "target": request.target,
                "path": request.path,
                "query": request.query,
                "headers": request.headers,
                "body": request.body.decode(),
            },
        )

    async def slow(self, request: HttpRequest) -> HttpResponse:
        ms = int(request.query_one("ms") or "0")
        await asyncio.sleep(ms / 1000 * UNIT)
        return json_response(200, {"ms": ms})

    async def boom(self, request: HttpRequest) -> HttpResponse:
        raise RuntimeError("a handler's bug")

    async def guarded(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        if request.header("authorization") != "Bearer ok":
            return json_response(401, {"error": {"code": "UNAUTHORIZED", "message": "key"}})
        return json_response(200, {"body": request.body.decode()})

    def upgrade(self, request: HttpRequest, transport: asyncio.Transport, rest: bytes) -> None:
        self.upgraded.append((request, rest))
        transport.write(b"switched:" + rest)


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    app: App
    opened: list[HttpConnection]
    closed: list[HttpConnection]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Answer:
        """Read one response: its head, then ``content-length`` bytes of body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        _, status, reason = status_line.split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines)
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        return Answer(int(status), reason, headers, body)

    async def rest(self) -> bytes:
        """Every byte until the gateway's side closes (bounded by WAIT)."""
        return await asyncio.wait_for(self.reader.read(), WAIT)


@asynccontextmanager
async def connected(
    max_body: int = 1024,
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> AsyncIterator[Client]:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    app = App()
    opened: list[HttpConnection] = []
    closed: list[HttpConnection] = []
    router = app.router()
    transport, _ = await loop.connect_accepted_socket(
        lambda: HttpConnection(
            router,
            max_body=max_body,
            on_open=opened.append,
            on_close=closed.append,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            idle_timeout=idle_timeout,
        ),
        ours,
    )
    reader, writer = await asyncio.open_connection(sock=theirs)
    try:
        yield Client(reader, writer, app, opened, closed)
    finally:
        writer.close()
        transport.abort()


def get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: gw", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(target: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: gw", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- parsing and keep-alive ------------------------------------------------------------


async def test_a_request_is_parsed_into_method_path_query_and_headers() -> None:
    async with connected() as c:
        await c.send(get("/echo?a=1&a=2&b=x%20y", "X-Trace: AbC", "x-trace: second"))
        answer = await c.answer()
        assert (answer.status, answer.reason) == (200, "OK")
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["connection"] == "keep-alive"
        assert answer.json() == {
            "method": "GET",
            "target": "/echo?a=1&a=2&b=x%20y",
            "path": "/echo",
            "query": {"a": ["1", "2"], "b": ["x y"]},
            "headers": [["host", "gw"], ["x-trace", "AbC"], ["x-trace", "second"]],
            "body": "",
        }
        assert c.app.seen[0].header("x-trace") == "AbC"  # the first of repeated headers
        assert len(c.opened) == 1 and not c.closed


async def test_a_kept_alive_connection_answers_until_the_client_says_close() -> None:
    async with connected() as c:
        for n in range(3):
            await c.send(post("/echo", f"body {n}".encode()))
            answer = await c.answer()
            assert (answer.json()["body"], answer.headers["connection"]) == (
                f"body {n}",
                "keep-alive",
            )
        await c.send(get("/echo", "Connection: close"))
        assert (await c.answer()).headers["connection"] == "close"
        assert await c.rest() == b""
        assert len(c.closed) == 1


async def test_http_1_0_without_keep_alive_closes_after_its_answer() -> None:
    async with connected() as c:
        await c.send(b"GET /echo HTTP/1.0\r\n\r\n")
        answer = await c.answer()
        assert (answer.status, answer.headers["connection"]) == (200, "close")
        assert await c.rest() == b""


async def test_pipelined_requests_are_answered_in_their_order() -> None:
    """The first takes longest; the answers still come first to last, one each."""
    async with connected() as c:
        await c.send(get("/slow?ms=200") + get("/slow?ms=0") + get("/slow?ms=50"))
        got = [(await c.answer()).json()["ms"] for _ in range(3)]
        assert got == [200, 0, 50]


async def test_a_request_split_into_single_bytes_is_parsed_whole() -> None:
    async with connected() as c:
        for byte in post("/echo?q=1", b"hello"):
            await c.send(bytes([byte]))
        answer = await c.answer()
        assert (answer.json()["query"], answer.json()["body"]) == ({"q": ["1"]}, "hello")


async def test_a_chunked_body_reaches_the_handler_whole() -> None:
    async with connected() as c:
        head = b"POST /echo HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
        await c.send(head + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert (await c.answer()).json()["body"] == "hello world"


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with connected() as c:
        await c.send(
            b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await c.send(b"data")
        assert (await c.answer()).json()["body"] == "data"


# -- routing and failures ------------------------------------------------------------------


async def test_unknown_paths_wrong_methods_and_websocket_paths_are_told_apart() -> None:
    async with connected() as c:
        await c.send(get("/nowhere") + post("/slow", b"") + get("/ws"))
        missing, wrong, upgrade_only = [await c.answer() for _ in range(3)]
        assert (missing.status, missing.json()["error"]["code"]) == (404, "NOT_FOUND")
        assert (wrong.status, wrong.json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
        assert wrong.headers["allow"] == "GET"
        assert (upgrade_only.status, upgrade_only.json()["error"]["code"]) == (
            426,
            "UPGRADE_REQUIRED",
        )


async def test_a_failing_handler_is_a_500_and_the_connection_lives_on() -> None:
    async with connected() as c:
        await c.send(get("/boom"))
        failed = await c.answer()
        assert failed.status == 500
        assert failed.json() == {
            "error": {
                "code": "INTERNAL_ERROR",
                "message": "the gateway failed to answer; see its log",
            }
        }
        assert failed.headers["connection"] == "keep-alive"
        await c.send(get("/echo"))
        assert (await c.answer()).status == 200


async def test_a_malformed_request_is_a_400_with_a_json_error_then_closed() -> None:
    async with connected() as c:
        await c.send(b"GET /echo HTTP/1.1\r\nHost gw\r\n\r\n")  # a header line without ':'
        answer = await c.answer()
        assert (answer.status, answer.headers["connection"]) == (400, "close")
        assert answer.json()["error"]["code"] == "BAD_REQUEST"
        assert answer.json()["error"]["message"].startswith("malformed HTTP request")
        assert await c.rest() == b""


# -- limits ----------------------------------------------------------------------------------


async def test_a_declared_body_over_the_limit_is_a_413_before_it_is_read() -> None:
    async with connected(max_body=100) as c:
        await c.send(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 101\r\n\r\n")
        answer = await c.answer()
        assert (answer.status, answer.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
        assert answer.json()["error"]["message"] == "the body is larger than 100 bytes"
        assert answer.headers["connection"] == "close"
        assert not c.app.seen


async def test_a_chunked_body_growing_over_the_limit_is_a_413() -> None:
    async with connected(max_body=100) as c:
        head = b"POST /echo HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
        await c.send(head + b"40\r\n" + b"x" * 64 + b"\r\n40\r\n" + b"y" * 64 + b"\r\n")
        answer = await c.answer()
        assert (answer.status, answer.headers["connection"]) == (413, "close")
        assert not c.app.seen


async def test_a_body_of_exactly_the_limit_is_taken() -> None:
    async with connected(max_body=100) as c:
        await c.send(post("/echo", b"z" * 100))
        assert (await c.answer()).json()["body"] == "z" * 100


async def test_headers_over_16_kib_are_a_431() -> None:
    async with connected() as c:
        filler = [f"X-Filler-{i}: {'v' * 1000}" for i in range(17)]
        await c.send(get("/echo", *filler))
        answer = await c.answer()
        assert (answer.status, answer.json()["error"]["code"]) == (431, "HEADERS_TOO_LARGE")
        assert not c.app.seen


async def test_a_head_check_refusal_is_answered_without_reading_the_body() -> None:
    """The answer comes while the body is still unsent; the body is never handed over,
    and the connection is half-closed so that the client reads the answer (no reset)."""
    async with connected() as c:
        await c.send(
            b"POST /guarded HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer no\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        answer = await c.answer()
        assert (answer.status, answer.headers["connection"]) == (401, "close")
        assert [r.body for r in c.app.seen] == [b""]
        await c.send(b"x" * 1000)  # what still comes is dropped, not answered
        assert await c.rest() == b""


async def test_a_head_check_that_passes_lets_the_body_through() -> None:
    async with connected() as c:
        await c.send(post("/guarded", b"paid", "Authorization: Bearer ok"))
        answer = await c.answer()
        assert (answer.status, answer.json()) == (200, {"body": "paid"})


# -- timeouts ----------------------------------------------------------------------------


async def test_a_silent_connection_is_closed_without_an_answer() -> None:
    async with connected(header_timeout=0.2 * UNIT) as c:
        assert await c.rest() == b""


async def test_a_partial_head_is_told_408_when_its_time_is_up() -> None:
    async with connected(header_timeout=0.2 * UNIT) as c:
        await c.send(b"GET /echo HTTP/1.1\r\nHost: g")
        answer = await c.answer()
        assert (answer.status, answer.json()["error"]["code"]) == (408, "REQUEST_TIMEOUT")
        assert "the request head did not arrive within" in answer.json()["error"]["message"]
        assert await c.rest() == b""


async def test_a_slow_body_is_told_408_when_its_time_is_up() -> None:
    async with connected(body_timeout=0.2 * UNIT) as c:
        await c.send(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nabc")
        answer = await c.answer()
        assert answer.status == 408
        assert "the request body did not arrive within" in answer.json()["error"]["message"]
        assert not c.app.seen


async def test_an_idle_kept_alive_connection_is_closed_without_an_answer() -> None:
    async with connected(idle_timeout=0.2 * UNIT) as c:
        await c.send(get("/echo"))
        assert (await c.answer()).status == 200
        assert await c.rest() == b""


# -- upgrades ------------------------------------------------------------------------------


async def test_an_upgrade_hands_the_transport_over_with_the_bytes_after_the_head() -> None:
    async with connected() as c:
        head = (
            b"GET /ws?x=1 HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        await c.send(head + b"\x81\x00")
        got = await asyncio.wait_for(c.reader.readexactly(len(b"switched:") + 2), WAIT)
        assert got == b"switched:\x81\x00"
        [(request, _)] = c.app.upgraded
        assert (request.path, request.query) == ("/ws", {"x": ["1"]})
        assert len(c.closed) == 1  # the HTTP side let go of it


async def test_an_upgrade_to_a_path_without_a_websocket_is_a_404() -> None:
    async with connected() as c:
        await c.send(get("/echo", "Connection: Upgrade", "Upgrade: websocket"))
        answer = await c.answer()
        assert (answer.status, answer.json()["error"]["code"]) == (404, "NOT_FOUND")
        assert not c.app.upgraded
