"""``GET /ws``: the push protocol adapter (PROTOCOL.md section 1).

The ticket is checked right after the upgrade completes, as the document says: no
ticket closes with 4001 ``Missing token``, a bad one with 4001 ``Invalid token``. A good
one binds the socket to exactly one (tenant, sub-user) stream; the ``connected`` frame
comes first, then any replay asked for with ``?offset=&epoch=``, then live pushes. Any
data frame from the client closes with 4002 ``Read-only``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from streamgate.auth.tokens import BearerVerifier, InvalidToken
from streamgate.hub.channels import push_channel
from streamgate.hub.hub import Hub
from streamgate.hub.publication import Publication, StreamPosition
from streamgate.protocol import push as pp
from streamgate.server.http import HttpRequest
from streamgate.server.websocket import WsConnection, frame_text

__all__ = ["PushEndpoint", "PushHandler", "offered_subprotocols"]

log = logging.getLogger("streamgate.push")


def _push_encoder(pub: Publication) -> bytes:
    return frame_text(pp.encode_push(pub))


def offered_subprotocols(request: HttpRequest) -> list[str]:
    """Every subprotocol the client offered, in order (the header may repeat)."""
    return [
        part.strip()
        for name, value in request.headers
        if name == "sec-websocket-protocol"
        for part in value.split(",")
        if part.strip()
    ]


class PushEndpoint:
    """Tickets, the per-sub-user socket limit and the stream binding of ``/ws``."""

    def __init__(
        self,
        hub: Hub,
        verifier: BearerVerifier,
        *,
        max_per_sub_user: int,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.hub = hub
        self.verifier = verifier
        self.max_per_sub_user = max_per_sub_user
        self.clock_ms = clock_ms
        self.encoder = _push_encoder
        self.sockets: Counter[tuple[str, str]] = Counter()

    def identify(self, ticket: str) -> tuple[str, str]:
        """Return the (tenant, sub-user) a push ticket is bound to.

        Raises:
            InvalidToken: bad signature, expired, or not a push ticket.
        """
        claims = self.verifier.verify(ticket)
        tenant = claims.claims.get("tenant")
        if claims.claims.get("purpose") != pp.PUSH_PURPOSE or not isinstance(tenant, str):
            raise InvalidToken("not a push ticket")
        return tenant, claims.subject

    def attach(self, conn: WsConnection, ticket: str | None, resume: StreamPosition | None) -> None:
        """Bind an upgraded socket: close it, or start its stream."""
        conn.encoder = self.encoder
        handler = PushHandler(self, conn)
        conn.handler = handler
        if ticket is None:
            conn.close(*pp.CLOSE_MISSING_TOKEN)
            return
        try:
            who = self.identify(ticket)
        except InvalidToken as exc:
            log.info("! push ticket refused: %s", exc.reason)
            conn.close(*pp.CLOSE_INVALID_TOKEN)
            return
        if self.sockets[who] >= self.max_per_sub_user:
            conn.close(*pp.CLOSE_TOO_MANY)
            return
        handler.bind(who, resume)


class PushHandler:
    """One push socket: read-only, bound to one sub-user's channel."""

    __slots__ = ("_task", "channel", "conn", "endpoint", "who")

    def __init__(self, endpoint: PushEndpoint, conn: WsConnection) -> None:
        self.endpoint = endpoint
        self.conn = conn
        self.who: tuple[str, str] | None = None
        self.channel = ""
        self._task: asyncio.Task[None] | None = None

    def bind(self, who: tuple[str, str], resume: StreamPosition | None) -> None:
        self.who = who
        self.endpoint.sockets[who] += 1
        self.channel = push_channel(*who)
        self._task = asyncio.ensure_future(self._start(resume))

    async def _start(self, resume: StreamPosition | None) -> None:
        assert self.who is not None
        hub, conn = self.endpoint.hub, self.conn
        try:
            catchup = await hub.subscribe(self.channel, conn, resume)
            if conn.closing:
                return
            conn.send(pp.encode_connected(self.who[1], self.endpoint.clock_ms(), catchup.recovered))
            hub.go_live(catchup)
        except Exception:
            log.exception("! push subscribe failed; closing")
            conn.close(1011, "Internal error")
        finally:
            self._task = None

    # -- MessageHandler ---------------------------------------------------------------

    def text(self, data: bytes) -> None:
        self.conn.close(*pp.CLOSE_READ_ONLY, discard=True)

    def binary(self, data: bytes) -> None:
        self.conn.close(*pp.CLOSE_READ_ONLY, discard=True)

    def closed(self) -> None:
        if self._task is not None:
            self._task.cancel()
        who, self.who = self.who, None
        if who is None:
            return
        self.endpoint.hub.unsubscribe(self.channel, self.conn)
        sockets = self.endpoint.sockets
        sockets[who] -= 1
        if sockets[who] <= 0:
            del sockets[who]
