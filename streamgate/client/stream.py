"""``StreamClient``: the stream protocol (``/ws/public``, ``/ws/private``) with resume.

One WebSocket (the ``websockets`` asyncio client) and one reader task. Replies are
matched to requests by ``req_id``; events go to the async iterator and to callbacks.
When the connection drops (a server restart, a killed node, 4009, a network cut) the
client reconnects with capped exponential backoff and full jitter, authenticates
again, and resubscribes every topic with ``resume`` from the last offset and epoch it
saw (PROTOCOL.md section 3). It then yields :class:`Reconnected`, naming the topics
whose missed events the gateway could not replay (``recovered: false``) and those that
had delivered no event yet (no position to resume from). Replayed events the client
already has are dropped by offset, so the application sees each event once.

Not retried: a refused ``auth`` (the bearer is bad or expired: :class:`AuthError`),
close 1008 (the gateway judged the client abusive) and protocol errors (1002, 1003,
1007, 1009). The iterator then yields a final ``Disconnected(retry_in=None)`` and ends;
:attr:`StreamClient.failure` holds the reason. A bearer that expires on an open socket
(``TOKEN_EXPIRED``: private delivery stops) ends the stream the same way, unless
``refresh_bearer`` gives a new one: then the client authenticates again on the same
socket and the gateway brings the private topics back with what was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from streamgate.client.backoff import Backoff
from streamgate.client.errors import (
    AuthError,
    ClientError,
    ClosedError,
    ConnectError,
    ProtocolError,
    SubscribeError,
)
from streamgate.client.events import Disconnected, Event, Reconnected, StreamItem
from streamgate.client.frames import ItemQueue, decode_frame, parse_event
from streamgate.core import exact_json

__all__ = ["FATAL_CLOSE_CODES", "StreamClient"]

log = logging.getLogger("streamgate.client")

# Close codes after which reconnecting would only repeat the failure (protocol-notes,
# "Close codes"): abuse, and frames the gateway could not read.
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009})

Callback = Callable[[StreamItem], Awaitable[None] | None]
Replies = list[dict[str, Any]]


class _Lost(Exception):
    """The connection dropped while a request waited for its reply."""


@dataclass
class _Pending:
    """A request waiting for its replies; ``asked`` is a subscribe's topic count."""

    future: asyncio.Future[list[dict[str, Any]]]
    asked: int | None = None
    replies: list[dict[str, Any]] = field(default_factory=list)


class StreamClient:
    """A consumer of ``/ws/public`` or ``/ws/private`` that survives reconnects.

    Args:
        url: ``ws://host:port/ws/public`` or ``.../ws/private``; or several (nodes of one
            cluster): each reconnect attempt tries the next.
        bearer: sent as ``op: auth`` on every (re)connect; required for private topics.
        backoff: delays between reconnect attempts.
        reconnect: False: a dropped connection ends the stream.
        open_timeout: seconds for the handshake and for each request's reply.
        max_attempts: reconnect attempts in a row before giving up (None: forever).
        refresh_bearer: returns a new bearer; called when the gateway says the bearer
            expired (``TOKEN_EXPIRED``, the socket stays open and private topics come
            back with what was missed) or refuses it on a reconnect. Without it, either
            ends the stream with :class:`AuthError`.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        bearer: str | None = None,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        open_timeout: float = 10.0,
        max_attempts: int | None = None,
        refresh_bearer: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.urls = (url,) if isinstance(url, str) else tuple(url)
        if not self.urls:
            raise ValueError("StreamClient needs a URL")
        self.url = self.urls[0]
        self.bearer = bearer
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect
        self.open_timeout = open_timeout
        self.max_attempts = max_attempts
        self.refresh_bearer = refresh_bearer
        self.user_id: str | None = None
        self.failure: ClientError | None = None
        # topic -> (offset, epoch) of the last event seen; None: subscribed, none seen yet
        self.positions: dict[str, tuple[int, str] | None] = {}
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._items = ItemQueue()
        self._callbacks: list[Callback] = []
        self._iterated = False
        self._connected = asyncio.Event()
        self._closing = False
        self._refreshing: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> StreamClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and authenticate; this first try raises rather than retries.

        Raises:
            ConnectError: the gateway could not be reached or refused the handshake.
            AuthError: the bearer was refused.
        """
        await self._open()
        self._connected.set()
        self._runner = asyncio.create_task(self._run(), name="streamgate-stream-client")

    async def close(self) -> None:
        """Close the socket and end the iterator; idempotent."""
        self._closing = True
        self._connected.set()  # wake requests waiting for a connection: they raise
        ws = self._ws
        if ws is not None:
            await ws.close()
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self._refreshing is not None:
            self._refreshing.cancel()
        self._fail_pending(ClosedError())
        self._items.end()

    # -- requests ----------------------------------------------------------------------

    async def subscribe(self, *topics: str) -> list[str]:
        """Subscribe ``topics``; return those the gateway took (the ack's ``args``).

        A topic already subscribed is subscribed again (an order book sends a fresh
        snapshot). Subscribed topics are resumed on every reconnect.

        Raises:
            SubscribeError: every topic was refused (``refused``: topic -> code).
            ClosedError: the client is closed.
        """
        wanted = list(dict.fromkeys(topics))
        if not wanted:
            return []
        for topic in wanted:
            self.positions.setdefault(topic, None)
        try:
            replies = await self._request({"op": "subscribe", "args": wanted}, asked=len(wanted))
        except _Lost:
            # The reconnect resubscribed them (they are in positions); report what it kept.
            await self._wait_connected()
            return [t for t in wanted if t in self.positions]
        acked, refused, _ = _answer(replies, wanted)
        for topic in refused:
            self.positions.pop(topic, None)
        if not acked:
            raise SubscribeError(refused)
        return acked

    async def unsubscribe(self, *topics: str) -> None:
        """Unsubscribe ``topics`` (acknowledged even when not subscribed)."""
        for topic in topics:
            self.positions.pop(topic, None)
        if topics:
            with contextlib.suppress(_Lost):
                await self._request({"op": "unsubscribe", "args": list(topics)})

    async def ping(self) -> float:
        """Send an application ping; return the round trip in seconds."""
        start = time.monotonic()
        await self._request({"op": "ping", "ts": time.time_ns()})
        return time.monotonic() - start

    async def authenticate(self, bearer: str) -> None:
        """Send a new bearer on the open socket (and on every reconnect from now on).

        Before the old one expires this extends the session; after ``TOKEN_EXPIRED`` the
        gateway brings the private topics back, replaying what was published meanwhile.

        Raises:
            AuthError: the gateway refused it.
        """
        (answer,) = (await self._request({"op": "auth", "bearer": bearer}))[:1]
        if answer.get("op") != "auth" or answer.get("success") is not True:
            raise AuthError(str(answer.get("message") or answer.get("op")))
        self.bearer = bearer
        self.user_id = answer.get("user_id")

    # -- output ------------------------------------------------------------------------

    def on_event(self, callback: Callback) -> None:
        """Call ``callback`` with every item, in order (awaited when it returns an awaitable).

        With callbacks and no iterator, items are not also queued for iteration.
        """
        self._callbacks.append(callback)

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        self._iterated = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamItem]:
        while (item := await self._items.get()) is not None:
            yield item

    async def _emit(self, item: StreamItem) -> None:
        if self._iterated or not self._callbacks:
            self._items.put(item)
        for callback in self._callbacks:
            result = callback(item)
            if inspect.isawaitable(result):
                await result

    # -- connecting --------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect and, with a bearer, authenticate (reading the answer inline)."""
        try:
            self._ws = await connect(
                self.url, open_timeout=self.open_timeout, max_size=None, compression=None
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        if self.bearer is None:
            return
        (answer,) = await self._inline({"op": "auth", "bearer": self.bearer})
        if answer.get("op") != "auth" or answer.get("success") is not True:
            await self._ws.close()
            raise AuthError(str(answer.get("message") or answer.get("op")), "")
        self.user_id = answer.get("user_id")

    async def _inline(
        self, frame: dict[str, Any], asked: int | None = None
    ) -> list[dict[str, Any]]:
        """Send a request before the reader runs and read its replies here.

        Only used right after connecting, when nothing but these replies can arrive.
        """
        ws = self._ws
        assert ws is not None
        req_id = self._next_id()
        pending = _Pending(asyncio.get_running_loop().create_future(), asked)
        try:
            await ws.send(exact_json.dumps({**frame, "req_id": req_id}), text=True)
            async with asyncio.timeout(self.open_timeout):
                while not pending.future.done():
                    reply = decode_frame(await ws.recv(decode=False))
                    if reply.get("req_id") == req_id:
                        _collect(pending, reply)
        except (ConnectionClosed, TimeoutError, ProtocolError) as exc:
            raise ConnectError(f"no answer from {self.url}: {exc}") from exc
        return pending.future.result()

    async def _reconnect(self, code: int | None, reason: str) -> bool:
        """Reconnect, re-auth, resubscribe with resume; emit Reconnected. False: gave up."""
        attempt = 0
        refreshed = False
        while True:
            if self.max_attempts is not None and attempt >= self.max_attempts:
                self.failure = ConnectError(f"gave up after {attempt} reconnect attempts")
                await self._emit(Disconnected(code, reason, None))
                return False
            delay = self.backoff.delay(attempt)
            attempt += 1
            await self._emit(Disconnected(code, reason, delay))
            await asyncio.sleep(delay)
            if self._closing:
                return False
            self.url = self.urls[attempt % len(self.urls)]
            try:
                await self._open()
                lost = await self._resubscribe()
            except AuthError as exc:
                if self.refresh_bearer is not None and not refreshed:
                    refreshed = True  # one new bearer per reconnect: a refused one ends it
                    with contextlib.suppress(Exception):
                        self.bearer = await self.refresh_bearer()
                        code, reason = None, f"auth refused: {exc.code}; new bearer"
                        continue
                self.failure = exc
                await self._emit(Disconnected(code, f"auth refused: {exc.code}", None))
                return False
            except ConnectError as exc:
                code, reason = None, str(exc)
                if self._ws is not None:
                    await self._ws.close()
                continue
            self._connected.set()
            await self._emit(Reconnected(attempt, not lost, tuple(lost)))
            return True

    async def _resubscribe(self) -> list[str]:
        """Resubscribe every topic, each resumed from its last position; return the lost.

        Lost: a resumed topic answered ``recovered: false``, a topic that had delivered
        nothing yet (no position; order books excepted: they start from a snapshot), or
        a topic the gateway now refuses.
        """
        topics = list(self.positions)
        if not topics:
            return []
        resume = {t: {"offset": p[0], "epoch": p[1]} for t, p in self.positions.items() if p}
        frame: dict[str, Any] = {"op": "subscribe", "args": topics}
        if resume:
            frame["resume"] = resume
        acked, refused, recovered = _answer(await self._inline(frame, len(topics)), topics)
        for topic in refused:
            self.positions.pop(topic, None)
        lost = [
            t
            for t in topics
            if t not in acked
            or (t in resume and not recovered.get(t, False))
            or (t not in resume and not t.startswith("orderbook/"))
        ]
        return lost

    # -- reading -----------------------------------------------------------------------

    async def _run(self) -> None:
        """Read frames; on a drop, reconnect and resume until closed or failed."""
        while True:
            code, reason = await self._read()
            self._connected.clear()
            self._fail_pending(_Lost())
            if self._closing:
                break
            if isinstance(self.failure, AuthError):  # TOKEN_EXPIRED and no new bearer
                await self._emit(Disconnected(code, self.failure.code, None))
                break
            if not self.reconnect or code in FATAL_CLOSE_CODES:
                self.failure = ClosedError(code, reason)
                await self._emit(Disconnected(code, reason, None))
                break
            if not await self._reconnect(code, reason):
                break
        self._connected.set()  # requests waiting for a connection now raise
        self._items.end()

    async def _read(self) -> tuple[int | None, str]:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                raw = await ws.recv(decode=False)
                data = raw if isinstance(raw, bytes) else raw.encode()
                try:
                    frame = decode_frame(data)
                except ProtocolError as exc:
                    log.warning("! %s", exc)
                    continue
                event = self._dispatch(frame, data)
                if event is not None:
                    await self._emit(event)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "connection lost")

    def _dispatch(self, frame: dict[str, Any], raw: bytes) -> Event | None:
        """Route one frame: a reply to its waiting request; an event is returned."""
        op = frame.get("op")
        if op == "event":
            return self._event(frame, raw)
        req_id = frame.get("req_id")
        pending = self._pending.get(req_id) if isinstance(req_id, str) else None
        if pending is None:
            if op == "error" and frame.get("message") == "TOKEN_EXPIRED":
                self._bearer_expired()
            elif op == "error":
                log.warning("! gateway error %s: %s", frame.get("message"), frame.get("detail"))
            return None
        _collect(pending, frame)
        return None

    def _bearer_expired(self) -> None:
        """``TOKEN_EXPIRED``: authenticate with a new bearer, or end the stream."""
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshing = asyncio.create_task(self._refresh(), name="streamgate-refresh")

    async def _refresh(self) -> None:
        error = AuthError("TOKEN_EXPIRED", "the bearer expired")
        if self.refresh_bearer is not None:
            try:
                await self.authenticate(await self.refresh_bearer())
                return
            except (AuthError, _Lost, TimeoutError) as exc:
                error = exc if isinstance(exc, AuthError) else error
            except Exception as exc:  # the application's callback failed
                log.warning("! refresh_bearer failed: %r", exc)
        self.failure = error
        if self._ws is not None:
            await self._ws.close()  # the reader ends; _run reports the failure

    def _event(self, frame: dict[str, Any], raw: bytes) -> Event | None:
        event = parse_event(frame, raw)
        topic = event.topic
        if topic not in self.positions:
            return None  # unsubscribed meanwhile
        if event.offset is None or event.epoch is None:
            return event
        last = self.positions[topic]
        data = event.data
        snapshot = isinstance(data, dict) and data.get("type") == "orderbook_snapshot"
        if not snapshot and last is not None and last[1] == event.epoch and event.offset <= last[0]:
            return None  # had it already (a replay overlapping what arrived live)
        self.positions[topic] = (event.offset, event.epoch)
        return event

    # -- requests' plumbing ------------------------------------------------------------

    def _next_id(self) -> str:
        return f"sg{next(self._ids)}"

    async def _request(
        self, frame: dict[str, Any], asked: int | None = None
    ) -> list[dict[str, Any]]:
        """Send ``frame`` with a new ``req_id``; return its replies.

        Raises:
            _Lost: the connection dropped before the replies came.
            ClosedError: the client is closed or failed for good.
        """
        await self._wait_connected()
        ws = self._ws
        assert ws is not None
        req_id = self._next_id()
        pending = _Pending(asyncio.get_running_loop().create_future(), asked)
        self._pending[req_id] = pending
        try:
            await ws.send(exact_json.dumps({**frame, "req_id": req_id}), text=True)
            async with asyncio.timeout(self.open_timeout):
                return await pending.future
        except ConnectionClosed as exc:
            raise _Lost() from exc
        finally:
            self._pending.pop(req_id, None)

    async def _wait_connected(self) -> None:
        for _ in range(2):
            if self._closing or self.failure is not None:
                raise self.failure or ClosedError()
            if self._connected.is_set():
                return
            await self._connected.wait()
        raise self.failure or ClosedError()

    def _fail_pending(self, exc: Exception) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()


def _collect(pending: _Pending, reply: dict[str, Any]) -> None:
    """Add a reply; resolve unless it is the ack of a partly refused subscribe.

    A subscribe that takes fewer topics than asked is answered by the ack and then one
    error frame with the same ``req_id`` (protocol-notes, "Subscribe and unsubscribe").
    """
    if pending.future.done():
        return
    pending.replies.append(reply)
    partial = (
        reply.get("op") == "subscribed"
        and pending.asked is not None
        and len(reply.get("args") or []) < pending.asked
    )
    if not partial:
        pending.future.set_result(pending.replies)


def _answer(
    replies: list[dict[str, Any]], asked: list[str]
) -> tuple[list[str], dict[str, str], dict[str, bool]]:
    """A subscribe's replies as (acked topics, refused topic -> code, recovered by topic)."""
    acked: list[str] = []
    refused: dict[str, str] = {}
    recovered: dict[str, bool] = {}
    for reply in replies:
        if reply.get("op") == "subscribed":
            acked = [str(t) for t in reply.get("args") or []]
            got = reply.get("recovered")
            if isinstance(got, dict):
                recovered = {str(k): v is True for k, v in got.items()}
        elif reply.get("op") == "error":
            code = str(reply.get("message"))
            named = reply.get("args")
            for topic in named if isinstance(named, list) else asked:
                if topic not in acked:
                    refused[str(topic)] = code
    return acked, refused, recovered
