"""``PushClient``: the read-only push socket of one sub-user (``GET /ws``, PROTOCOL.md section 1).

With an API key it mints its ticket (``POST /auth/ws-token``, ``api-key`` and
``On-Behalf-Of`` headers) and mints a fresh one whenever the gateway closes with 4001;
with a given ticket, 4001 ends the stream (:class:`AuthError`). The ticket travels in the
``bearer.<jwt>`` subprotocol, the protocol's preferred slot. The client never sends a
data frame (that would be 4002 ``Read-only``); WebSocket pings and pongs are control frames.

On every reconnect it resumes with ``?offset=&epoch=`` from the last push it saw; the
``connected`` frame says whether the gateway could replay (``recovered``), reported as
:class:`Reconnected`. Replayed pushes the client already has are dropped by offset.
Events are :class:`Event` items whose ``topic`` is the push's ``event`` name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from streamgate.client.backoff import Backoff
from streamgate.client.errors import AuthError, ClientError, ClosedError, ConnectError
from streamgate.client.events import Disconnected, Reconnected, StreamItem
from streamgate.client.frames import ItemQueue, decode_frame, parse_event
from streamgate.client.http import HttpClient

__all__ = ["PushClient", "mint_ticket"]

# 4002: the client wrote a data frame (an SDK bug: retrying repeats it); 1008/1002/1003.
_FATAL = frozenset({1002, 1003, 1008, 4002})
_INVALID_TICKET = 4001


async def mint_ticket(base_url: str, api_key: str, sub_user: str, *, within: float = 10.0) -> str:
    """Mint a push ticket for ``sub_user`` with the tenant's API key.

    Raises:
        AuthError: the key or the sub-user was refused (``code``: the error ``key``).
        ConnectError: the gateway could not be reached, or is rate limiting (429).
    """
    http = HttpClient(base_url, timeout=within)
    try:
        result = await http.request(
            "POST", "/auth/ws-token", headers={"api-key": api_key, "On-Behalf-Of": sub_user}
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConnectError(f"cannot mint a ticket at {base_url}: {exc}") from exc
    finally:
        await http.close()
    try:
        doc = result.json()
    except ValueError as exc:
        raise ConnectError(f"ticket answer is not JSON ({result.status})") from exc
    if result.status == 200 and isinstance(doc, dict) and doc.get("success") is True:
        return str(doc["data"]["token"])
    error = doc.get("error", {}) if isinstance(doc, dict) else {}
    key, message = str(error.get("key", result.status)), str(error.get("message", ""))
    if result.status == 429 or result.status >= 500:
        raise ConnectError(f"ticket refused for now: {result.status} {key} {message}")
    raise AuthError(key, message)


class PushClient:
    """A consumer of one sub-user's pushes that survives reconnects.

    Args:
        base_url: the gateway, ``http://host:port`` (``ws://`` is derived).
        api_key, sub_user: mint tickets (and a fresh one on 4001).
        ticket: a ticket minted elsewhere (used until it is refused).
        backoff: delays between reconnect attempts.
        reconnect: False: a dropped socket ends the stream.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        sub_user: str | None = None,
        ticket: str | None = None,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        open_timeout: float = 10.0,
        max_attempts: int | None = None,
    ) -> None:
        if ticket is None and (api_key is None or sub_user is None):
            raise ValueError("PushClient needs a ticket, or an api_key and a sub_user")
        self.base_url = base_url.rstrip("/")
        self.api_key, self.sub_user, self.ticket = api_key, sub_user, ticket
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect
        self.open_timeout = open_timeout
        self.max_attempts = max_attempts
        self.user_id: str | None = None
        self.position: tuple[int, str] | None = None  # (offset, epoch) of the last push
        self.failure: ClientError | None = None
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._items = ItemQueue()
        self._closing = False

    async def __aenter__(self) -> PushClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamItem]:
        while (item := await self._items.get()) is not None:
            yield item

    async def connect(self) -> None:
        """Mint a ticket if needed, open the socket, read ``connected``; no retry here.

        Raises:
            AuthError: the API key or the ticket was refused.
            ConnectError: the gateway could not be reached.
        """
        await self._open()
        self._runner = asyncio.create_task(self._run(), name="streamgate-push-client")

    async def close(self) -> None:
        """Close the socket and end the iterator; idempotent."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._items.end()

    def _url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        query = ""
        if self.position is not None:
            query = urlencode({"offset": self.position[0], "epoch": self.position[1]})
        return urlunsplit((scheme, parts.netloc, "/ws", query, ""))

    async def _open(self, *, fresh_ticket: bool = False) -> bool | None:
        """Connect; return the ``connected`` frame's ``recovered`` (None: not asked)."""
        if self.ticket is None or (fresh_ticket and self.api_key is not None):
            assert self.api_key is not None
            assert self.sub_user is not None
            self.ticket = await mint_ticket(
                self.base_url, self.api_key, self.sub_user, within=self.open_timeout
            )
        try:
            self._ws = await connect(
                self._url(),
                subprotocols=[Subprotocol(f"bearer.{self.ticket}")],
                open_timeout=self.open_timeout,
                max_size=None,
                compression=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectError(f"cannot connect to {self.base_url}/ws: {exc}") from exc
        try:
            async with asyncio.timeout(self.open_timeout):
                frame = decode_frame(await self._ws.recv(decode=False))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else "connection lost"
            if code == _INVALID_TICKET:
                raise AuthError("4001", reason) from exc
            raise ConnectError(f"closed before connected: {code} {reason}") from exc
        except TimeoutError as exc:
            await self._ws.close()
            raise ConnectError("no connected frame") from exc
        got = frame.get("data")
        data: dict[str, Any] = got if isinstance(got, dict) else {}
        self.user_id = data.get("userId")
        recovered = data.get("recovered")
        return recovered if isinstance(recovered, bool) else None

    async def _run(self) -> None:
        while True:
            code, reason = await self._read()
            if self._closing:
                break
            if not self.reconnect or code in _FATAL:
                self.failure = ClosedError(code, reason)
                self._items.put(Disconnected(code, reason, None))
                break
            if not await self._reconnect(code, reason):
                break
        self._items.end()

    async def _read(self) -> tuple[int | None, str]:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                raw = await ws.recv(decode=False)
                data = raw if isinstance(raw, bytes) else raw.encode()
                event = parse_event(decode_frame(data), data, topic_key="event")
                if event.offset is not None and event.epoch is not None:
                    last = self.position
                    if last is not None and last[1] == event.epoch and event.offset <= last[0]:
                        continue  # had it already
                    self.position = (event.offset, event.epoch)
                self._items.put(event)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "connection lost")
        except ClientError as exc:  # a frame that is not JSON: the gateway is not one
            await ws.close()
            return None, str(exc)

    async def _reconnect(self, code: int | None, reason: str) -> bool:
        attempt = 0
        fresh = code == _INVALID_TICKET
        refused_in_a_row = 0
        while True:
            if self.max_attempts is not None and attempt >= self.max_attempts:
                self.failure = ConnectError(f"gave up after {attempt} reconnect attempts")
                self._items.put(Disconnected(code, reason, None))
                return False
            if fresh and self.api_key is None:
                self.failure = AuthError("4001", "the given ticket was refused")
                self._items.put(Disconnected(code, reason, None))
                return False
            delay = self.backoff.delay(attempt)
            attempt += 1
            self._items.put(Disconnected(code, reason, delay))
            await asyncio.sleep(delay)
            if self._closing:
                return False
            try:
                recovered = await self._open(fresh_ticket=fresh)
            except AuthError as exc:
                # A fresh ticket refused too (or the key itself): do not retry forever.
                refused_in_a_row += 1
                if exc.code != "4001" or refused_in_a_row >= 2 or self.api_key is None:
                    self.failure = exc
                    self._items.put(Disconnected(code, f"auth refused: {exc.code}", None))
                    return False
                code, reason, fresh = _INVALID_TICKET, exc.message, True
                continue
            except ConnectError as exc:
                code, reason = None, str(exc)
                continue
            # Without a position (no push seen yet) nothing could be resumed: say so.
            ok = recovered is True
            self._items.put(Reconnected(attempt, ok, () if ok else ("push",)))
            return True
