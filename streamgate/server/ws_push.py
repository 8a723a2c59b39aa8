"""``GET /ws``: the push protocol adapter (PROTOCOL.md section 1).

The ticket is checked right after the upgrade completes, as the document says: no
ticket closes with 4001 ``Missing token``, a bad one with 4001 ``Invalid token``. A good
one binds the socket to exactly one (tenant, sub-user) stream; the ``connected`` frame
comes first, then any replay asked for with ``?offset=&epoch=``, then live pushes. Any
data frame from the client closes with 4002 ``Read-only``.

The per-sub-user socket limit is counted by :class:`Presence`, across every node when
the broker is Redis: the socket is counted before its stream starts, and uncounted when
it closes. When presence cannot be reached the socket closes with 1013 (try again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streamgate.auth.tokens import BearerVerifier, InvalidToken
from streamgate.brokers.presence import Presence
from streamgate.core.channels import push_channel, push_tenant, push_tenant_prefix
from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import BrokerUnavailable
from streamgate.hub.hub import Hub
from streamgate.protocol import close
from streamgate.protocol import push as pp
from streamgate.server.errors import push_close
from streamgate.server.messages import HttpRequest
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
        presence: Presence,
        verifier: BearerVerifier,
        *,
        max_per_sub_user: int,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.hub = hub
        self.presence = presence
        self.verifier = verifier
        self.max_per_sub_user = max_per_sub_user
        self.clock_ms = clock_ms
        self.encoder = _push_encoder
        self._releases: set[asyncio.Task[None]] = set()

    def release_later(self, channel: str) -> None:
        """Uncount one socket of ``channel`` (in a task: called from ``closed``)."""
        task = asyncio.ensure_future(self._release(channel))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, channel: str) -> None:
        try:
            await self.presence.release(_group(channel), channel)
        except BrokerUnavailable:
            log.warning("! presence unavailable: %s stays counted until its node expires", channel)

    def identify(self, ticket: str) -> tuple[str, str]:
        """Return the (tenant, sub-user) a push ticket is bound to.

        Raises:
            InvalidToken: bad signature, expired, or not a push ticket.
        """
        claims = self.verifier.verify(ticket)
        tenant = claims.claims.get("tenant")
        if claims.claims.get("purpose") != pp.PUSH_PURPOSE or not isinstance(tenant, str):
            raise InvalidToken("not a push ticket")
        try:
            push_channel(tenant, claims.subject)  # a tenant and sub-user a channel can carry
        except ValueError:
            raise InvalidToken("not a push ticket: bad tenant or sub-user") from None
        return tenant, claims.subject

    def attach(self, conn: WsConnection, ticket: str | None, resume: StreamPosition | None) -> None:
        """Bind an upgraded socket: close it, or start its stream."""
        conn.encoder = self.encoder
        handler = PushHandler(self, conn)
        conn.handler = handler
        if ticket is None:
            conn.close(*close.MISSING_TOKEN)
            return
        try:
            who = self.identify(ticket)
        except InvalidToken as exc:
            log.info("! push ticket refused: %s", exc.reason)
            conn.close(*push_close(exc))
            return
        handler.bind(who, resume)


class PushHandler:
    """One push socket: read-only, bound to one sub-user's channel."""

    __slots__ = ("_task", "channel", "conn", "counted", "endpoint", "who")

    def __init__(self, endpoint: PushEndpoint, conn: WsConnection) -> None:
        self.endpoint = endpoint
        self.conn = conn
        self.who: tuple[str, str] | None = None
        self.channel = ""
        self.counted = False  # this socket holds one count of the sub-user's limit
        self._task: asyncio.Task[None] | None = None

    def bind(self, who: tuple[str, str], resume: StreamPosition | None) -> None:
        self.who = who
        self.channel = push_channel(*who)
        self._task = asyncio.ensure_future(self._start(who[1], resume))

    async def _start(self, sub_user: str, resume: StreamPosition | None) -> None:
        """Count the socket, subscribe, send ``connected``, go live.

        Never cancelled: when the socket closes meanwhile, this notices after each
        await and undoes what it did, so no count and no subscription is left behind.
        """
        endpoint, conn, channel = self.endpoint, self.conn, self.channel
        hub = endpoint.hub
        try:
            limit = endpoint.max_per_sub_user
            if not await endpoint.presence.acquire(_group(channel), channel, limit):
                conn.close(*close.TOO_MANY)
                return
            self.counted = True
            if conn.closing:
                self._uncount()
                return
            catchup = await hub.subscribe(channel, conn, resume)
            if conn.closing:
                hub.unsubscribe(channel, conn)
                return
            conn.send(pp.encode_connected(sub_user, endpoint.clock_ms(), catchup.recovered))
            hub.go_live(catchup)
        except BrokerUnavailable as exc:
            log.warning("! push socket refused for now: %s", exc)
            conn.close(*push_close(exc))
        except Exception as exc:
            log.exception("! push subscribe failed; closing")
            conn.close(*push_close(exc))
        finally:
            self._task = None

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            self.endpoint.release_later(self.channel)

    # -- MessageHandler ---------------------------------------------------------------

    def text(self, data: bytes) -> None:
        self.conn.close(*close.READ_ONLY, discard=True)

    def binary(self, data: bytes) -> None:
        self.conn.close(*close.READ_ONLY, discard=True)

    def closed(self) -> None:
        who, self.who = self.who, None
        if who is None:
            return
        self.endpoint.hub.unsubscribe(self.channel, self.conn)
        self._uncount()


def _group(channel: str) -> str:
    """The presence group of a push channel: its tenant's prefix."""
    return push_tenant_prefix(push_tenant(channel))
