"""HTTP/1.1 transport: requests parsed by httptools, routed to async handlers.

One :class:`HttpConnection` per TCP connection. Requests on a connection are answered
in order (pipelining is allowed, at most a few queued before reading pauses);
``Upgrade: websocket`` requests to a WebSocket route are handed over to that route,
which takes the transport for itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs

import httptools
import orjson

__all__ = [
    "Handler",
    "HttpConnection",
    "HttpRequest",
    "HttpResponse",
    "Router",
    "UpgradeHandler",
    "json_response",
]

log = logging.getLogger("streamgate.http")

MAX_HEADER_BYTES = 16_384
MAX_QUEUED_REQUESTS = 8


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str  # path and query, as sent
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    client: str

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, keep_alive: bool) -> bytes:
        reason = HTTPStatus(self.status).phrase
        lines = [
            f"HTTP/1.1 {self.status} {reason}",
            f"content-type: {self.content_type}",
            f"content-length: {len(self.body)}",
            f"connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def json_response(
    status: int, doc: Any, headers: list[tuple[str, str]] | None = None
) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(doc), headers=headers or [])


def _error(status: int, code: str, message: str) -> HttpResponse:
    return json_response(status, {"error": {"code": code, "message": message}})


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
UpgradeHandler = Callable[[HttpRequest, asyncio.Transport, bytes], None]


class Router:
    """Exact-path routes for HTTP methods and WebSocket upgrades."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}
        self._prefixes: list[tuple[str, str, Handler]] = []
        self._upgrades: dict[str, UpgradeHandler] = {}

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes.setdefault(path, {})[method] = handler

    def add_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        """Route every path under ``prefix``; like :meth:`add`, a later route replaces."""
        self._prefixes = [p for p in self._prefixes if p[:2] != (method, prefix)]
        self._prefixes.append((method, prefix, handler))

    def add_upgrade(self, path: str, handler: UpgradeHandler) -> None:
        self._upgrades[path] = handler

    def upgrade(self, path: str) -> UpgradeHandler | None:
        return self._upgrades.get(path)

    def resolve(self, method: str, path: str) -> Handler | HttpResponse:
        methods = self._routes.get(path)
        if methods is None:
            for m, prefix, prefixed in self._prefixes:
                if path.startswith(prefix) and m == method:
                    return prefixed
            if path in self._upgrades:
                return _error(426, "UPGRADE_REQUIRED", f"{path} is a WebSocket endpoint")
            return _error(404, "NOT_FOUND", f"no route for {path}")
        found = methods.get(method)
        if found is None:
            allowed = ", ".join(sorted(methods))
            resp = _error(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed; use {allowed}")
            resp.headers.append(("allow", allowed))
            return resp
        return found


class HttpConnection(asyncio.Protocol):
    """One client's HTTP/1.1 connection until it closes or becomes a WebSocket."""

    def __init__(
        self,
        router: Router,
        *,
        max_body: int,
        on_open: Callable[[HttpConnection], None],
        on_close: Callable[[HttpConnection], None],
    ) -> None:
        self._router = router
        self._max_body = max_body
        self._on_open = on_open
        self._on_close = on_close
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client = ""
        self._url = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body = bytearray()
        self._queue: deque[tuple[HttpRequest, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._upgraded = False
        self._refused: HttpResponse | None = None

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) else ""
        self._on_open(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._worker is not None:
            self._worker.cancel()
        if not self._upgraded:
            self._on_close(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            # A callback's own exception arrives as the context of HttpParserCallbackError.
            cause = exc.__context__
            if isinstance(cause, _TooLarge):
                self._finish(cause.response)
            else:
                self._finish(_error(400, "BAD_REQUEST", f"malformed HTTP request: {exc}"))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._header_bytes = 0
        self._body.clear()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge(_error(431, "HEADERS_TOO_LARGE", "request headers are too large"))
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name == "content-length" and value.isdigit() and int(value) > self._max_body:
                raise _TooLarge(_payload_too_large(self._max_body))

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._max_body:
            raise _TooLarge(_payload_too_large(self._max_body))

    def on_message_complete(self) -> None:
        if self._parser.should_upgrade():
            return  # handled when feed_data raises HttpParserUpgrade
        request = self._request()
        self._queue.append((request, self._parser.should_keep_alive()))
        if len(self._queue) >= MAX_QUEUED_REQUESTS and self._transport is not None:
            self._transport.pause_reading()
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._work())

    # -- internals ------------------------------------------------------------------

    def _request(self) -> HttpRequest:
        url = httptools.parse_url(bytes(self._url))
        path = url.path.decode("latin-1") if url.path else "/"
        query = parse_qs(url.query.decode("latin-1")) if url.query else {}
        return HttpRequest(
            method=self._parser.get_method().decode("latin-1"),
            target=self._url.decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=bytes(self._body),
            client=self._client,
        )

    def _upgrade(self, rest: bytes) -> None:
        request = self._request()
        handler = self._router.upgrade(request.path)
        if handler is None or self._queue or self._transport is None:
            self._finish(_error(404, "NOT_FOUND", f"no WebSocket endpoint at {request.path}"))
            return
        self._upgraded = True
        self._on_close(self)
        handler(request, self._transport, rest)

    async def _work(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while self._queue and not self._closing:
                request, keep_alive = self._queue.popleft()
                response = await self._answer(request)
                if self._closing:
                    return
                transport.write(response.encode(keep_alive))
                if not keep_alive:
                    self._closing = True
                    transport.close()
                    return
                if len(self._queue) < MAX_QUEUED_REQUESTS:
                    transport.resume_reading()
        finally:
            self._worker = None

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        route = self._router.resolve(request.method, request.path)
        if isinstance(route, HttpResponse):
            return route
        try:
            return await route(request)
        except Exception:
            log.exception("! %s %s failed", request.method, request.path)
            return _error(500, "INTERNAL_ERROR", "the gateway failed to answer; see its log")

    def _finish(self, response: HttpResponse) -> None:
        """Answer a request that cannot be parsed further, then close."""
        if self._transport is None or self._closing:
            return
        self._closing = True
        self._transport.write(response.encode(keep_alive=False))
        self._transport.close()

    def close_idle(self) -> None:
        """Close the connection if no request is being answered (shutdown)."""
        if self._worker is None and self._transport is not None and not self._closing:
            self._closing = True
            self._transport.close()


class _TooLarge(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _payload_too_large(limit: int) -> HttpResponse:
    return _error(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")
