"""HTTP/1.1 transport: requests parsed by httptools, routed to async handlers.

One :class:`HttpConnection` per TCP connection. Requests on a connection are answered
in order (pipelining is allowed, at most a few queued before reading pauses);
``Upgrade: websocket`` requests to a WebSocket route are handed over to that route,
which takes the transport for itself.

Limits (issue 11): a request head must arrive within ``header_timeout`` (from the accept,
or from its first byte after a kept-alive response), its body within ``body_timeout``
after the head, and a kept-alive connection may idle ``idle_timeout`` between requests;
past them the connection is closed (408 when part of a request came). Every connection
takes a slot of a :class:`~streamgate.server.admission.ConnectionLimits` (when there is
none: 503 on its first bytes, and closed). A route may judge a request on its head
(:meth:`Router.check_head`): refused, it is answered before its body is read, the body
is never buffered, and the connection closes. Refusals made before a body is read close
with a lingering close (half-close, what still comes is dropped, at most ``LINGER``
seconds) so the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import parse_qs

import httptools

from streamgate.errors import HttpRefusal
from streamgate.server.admission import ConnectionLimits
from streamgate.server.errors import RETRY_SOON, http_error, refusal_response
from streamgate.server.messages import HttpRequest, HttpResponse, json_response
from streamgate.server.router import Handler, HeadCheck, Router, UpgradeHandler

__all__ = [
    "BUSY_WAIT",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "LINGER",
    "Handler",
    "HeadCheck",
    "HttpConnection",
    "HttpRequest",
    "HttpResponse",
    "Router",
    "UpgradeHandler",
    "json_response",
]
# HttpRequest, HttpResponse, json_response (server/messages.py) and Router, Handler,
# HeadCheck, UpgradeHandler (server/router.py) are re-exported: the transport's API.

log = logging.getLogger("streamgate.http")

MAX_HEADER_BYTES = 16_384
MAX_QUEUED_REQUESTS = 8
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 30.0
LINGER = 2.0  # seconds a refused client may go on sending (dropped) before the close
BUSY_WAIT = 1.0  # seconds a connection over a cap may take to send its first bytes
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpConnection(asyncio.Protocol):
    """One client's HTTP/1.1 connection until it closes or becomes a WebSocket.

    Timers: the head timer runs from the accept (and from a request's first byte after
    an idle spell) to the end of its head, the body timer from there to the end of the
    body, the idle timer while nothing is asked. None runs while a request is answered.
    """

    def __init__(
        self,
        router: Router,
        *,
        max_body: int,
        on_open: Callable[[HttpConnection], None],
        on_close: Callable[[HttpConnection], None],
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        admission: ConnectionLimits | None = None,
    ) -> None:
        self._router = router
        self._max_body = max_body
        self._on_open = on_open
        self._on_close = on_close
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._idle_timeout = idle_timeout
        self._admission = admission
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._client = ""
        self._url = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._head: HttpRequest | None = None  # the request whose head is complete
        self._body = bytearray()
        self._queue: deque[tuple[HttpRequest | HttpResponse, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._in_request = False  # part of a request came, not all of it
        self._idle = False  # the idle timer runs
        self._discarding = False  # a refusal is pending or sent: input is dropped
        self._closing = False
        self._upgraded = False
        self._opened = False
        self._admitted = False
        self._busy: str | None = None  # over a connection cap: why

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        # Interned: the many sockets of one address share one string (issue 14).
        self._client = sys.intern(peer[0]) if isinstance(peer, tuple) else ""
        if self._admission is not None:
            refused = self._admission.admit(self._client)
            if refused is not None:
                # Refuse fast and keep accepting: answered 503 on its first bytes (not
                # before: a client may not expect an answer before its request), closed
                # in at most a second if silent.
                self._closing = True
                self._parser = None
                self._busy = refused
                self._arm(min(BUSY_WAIT, self._header_timeout), transport.close)
                return
            self._admitted = True
        self._opened = True
        self._on_open(self)
        self._arm(self._header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._disarm()
        if self._worker is not None:
            self._worker.cancel()
        # The parser holds this object's bound callbacks: drop it, and the buffers, now
        # (refcounting frees them at once instead of the cycle collector, some time).
        self._parser = None
        self._head = None
        self._body = bytearray()
        self._queue.clear()
        if self._admitted and self._admission is not None:
            self._admitted = False
            self._admission.release(self._client)
        if self._opened and not self._upgraded:
            self._on_close(self)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._discarding:
            if self._busy is not None and self._transport is not None:
                busy = http_error(503, "TOO_MANY_CONNECTIONS", self._busy, RETRY_SOON)
                self._busy = None
                self._disarm()
                self._transport.write(busy.encode(keep_alive=False))
                self._transport.close()
            return  # refused: what the client still sends is dropped
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            # A callback's own exception arrives as the context of HttpParserCallbackError.
            cause = exc.__context__
            if isinstance(cause, HttpRefusal):
                self._refuse(refusal_response(cause))
            elif isinstance(cause, _RefusedHead) and self._head is not None:
                self._refuse(self._head)
            else:
                self._refuse(http_error(400, "BAD_REQUEST", f"malformed HTTP request: {exc}"))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._header_bytes = 0
        self._body.clear()
        self._in_request = True
        if self._idle:
            self._idle = False
            self._arm(self._header_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise HttpRefusal("HEADERS_TOO_LARGE", "request headers are too large", status=431)
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._disarm()
        request = self._head = self._request()
        has_body = expect_continue = False
        for name, value in self._headers:
            if name == "content-length":
                if value.isdigit() and int(value) > self._max_body:
                    raise _payload_too_large(self._max_body)
                has_body = has_body or value.strip("0 ") != ""
            elif name == "transfer-encoding":
                has_body = True
            elif name == "expect":
                expect_continue = value.strip().lower() == "100-continue"
        if not has_body:
            return
        check = self._router.head_check(request.path)
        if check is not None and not self._passes(check, request):
            raise _RefusedHead
        if expect_continue and not self._queue and self._worker is None:
            assert self._transport is not None
            self._transport.write(_CONTINUE)  # RFC 9110 section 10.1.1
        self._arm(self._body_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._max_body:
            raise _payload_too_large(self._max_body)

    def on_message_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        if parser.should_upgrade():
            return  # handled when feed_data raises HttpParserUpgrade
        self._disarm()
        self._in_request = False
        request, self._head = self._head, None
        if request is None:
            return
        request.body = bytes(self._body)
        self._body.clear()
        self._queue.append((request, parser.should_keep_alive()))
        if len(self._queue) >= MAX_QUEUED_REQUESTS and self._transport is not None:
            self._transport.pause_reading()
        self._start_worker()

    # -- internals ------------------------------------------------------------------

    def _request(self) -> HttpRequest:
        parser = self._parser
        assert parser is not None
        url = httptools.parse_url(bytes(self._url))
        path = url.path.decode("latin-1") if url.path else "/"
        query = parse_qs(url.query.decode("latin-1")) if url.query else {}
        return HttpRequest(
            method=parser.get_method().decode("latin-1"),
            target=self._url.decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"",
            client=self._client,
        )

    @staticmethod
    def _passes(check: HeadCheck, request: HttpRequest) -> bool:
        try:
            return check(request)
        except Exception:
            log.exception("! head check of %s %s failed", request.method, request.path)
            return True

    def _upgrade(self, rest: bytes) -> None:
        request, self._head = self._head, None
        handler = None if request is None else self._router.upgrade(request.path)
        if request is None or handler is None or self._queue or self._transport is None:
            path = "" if request is None else request.path
            self._refuse(http_error(404, "NOT_FOUND", f"no WebSocket endpoint at {path}"))
            return
        self._disarm()
        self._upgraded = True
        self._parser = None  # the WebSocket side takes it from here
        self._on_close(self)
        handler(request, self._transport, rest)

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while self._queue and not self._closing:
                item, keep_alive = self._queue.popleft()
                response = item if isinstance(item, HttpResponse) else await self._answer(item)
                if self._closing:
                    return
                transport.write(response.encode(keep_alive))
                if not keep_alive:
                    self._closing = True
                    self._disarm()
                    if self._discarding:
                        self._linger(transport)
                    else:
                        transport.close()
                    return
                if len(self._queue) < MAX_QUEUED_REQUESTS:
                    transport.resume_reading()
            if not self._closing:
                if self._in_request:
                    self._arm(self._header_timeout, self._head_timed_out)
                else:
                    self._idle = True
                    self._arm(self._idle_timeout, self._idle_timed_out)
        finally:
            self._worker = None

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        route = self._router.route(request)
        if isinstance(route, HttpResponse):
            return route
        try:
            response = await route(request)
        except Exception:
            log.exception("! %s %s failed", request.method, request.path)
            return http_error(500, "INTERNAL_ERROR", "the gateway failed to answer; see its log")
        # The path only: a query may carry a ticket, headers carry keys.
        log.debug(
            "< %s %s from %s: %d", request.method, request.path, request.client, response.status
        )
        return response

    def _refuse(self, answer: HttpRequest | HttpResponse) -> None:
        """Answer ``answer`` (a request: by its handler) after what is queued, then close.

        Nothing more is parsed: the client's further bytes are dropped, never buffered.
        """
        if self._transport is None or self._closing or self._discarding:
            return
        self._discarding = True
        self._disarm()
        self._queue.append((answer, False))
        self._start_worker()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close after a refusal so that the client reads it (nginx's lingering close).

        The write side is shut once the answer is out; what the client still sends is
        dropped until it closes too, or for at most ``LINGER`` seconds. Closing with
        unread bytes instead would send a reset, which can destroy the answer in flight.
        """
        transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        self._arm(LINGER, transport.close)

    # -- timers -----------------------------------------------------------------------

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer = self._loop.call_later(delay, action)

    def _disarm(self) -> None:
        self._idle = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        # Silent connections just close; a partial head is told why (as nginx, Go).
        what = "request head" if self._in_request else None
        self._timed_out(what, self._header_timeout)

    def _body_timed_out(self) -> None:
        self._timed_out("request body", self._body_timeout)

    def _idle_timed_out(self) -> None:
        self._timed_out(None, self._idle_timeout)

    def _timed_out(self, what: str | None, seconds: float) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        self._discarding = True
        if what is not None and self._worker is None and not self._queue:
            message = f"the {what} did not arrive within {seconds:g} s"
            transport.write(http_error(408, "REQUEST_TIMEOUT", message).encode(keep_alive=False))
        transport.close()

    def close_idle(self) -> None:
        """Close the connection if no request is being answered (shutdown)."""
        if self._worker is None and self._transport is not None and not self._closing:
            self._closing = True
            self._disarm()
            self._transport.close()


class _RefusedHead(Exception):
    """A head check refused the request: answer it without reading its body."""


def _payload_too_large(limit: int) -> HttpRefusal:
    return HttpRefusal("PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes", status=413)
