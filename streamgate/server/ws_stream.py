"""``/ws/public`` and ``/ws/private``: the stream protocol adapter over the hub.

The adapter feeds each text frame to a :class:`~streamgate.protocol.stream.StreamSession`,
carries out the command it returns against the hub, and queues the encoded reply.
Commands of one connection are carried out in order by a short-lived task, so an idle
connection holds no task.

On ``/ws/private`` the ``auth`` op verifies a bearer; private topics then map to the
user's own channels (``user:<id>:<kind>``), so a socket can only ever receive its
user's events. When the bearer expires the socket gets a ``TOKEN_EXPIRED`` error frame
and private delivery stops; a later successful ``auth`` of the same user brings the
subscriptions back, replaying what was published meanwhile (when history still has it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from streamgate.auth.tokens import BearerVerifier, Claims, InvalidToken
from streamgate.core.channels import private_channel, private_kind
from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import BrokerUnavailable
from streamgate.hub.hub import Catchup, Encoder, Hub
from streamgate.protocol import close
from streamgate.protocol import stream as sp
from streamgate.protocol.topics import has_latest_value
from streamgate.server.websocket import WsConnection, frame_text

__all__ = ["StreamEndpoint", "StreamHandler"]

log = logging.getLogger("streamgate.stream")


def _public_encoder(pub: Publication) -> bytes:
    return frame_text(sp.encode_event(pub.channel, pub))


def _private_encoder(pub: Publication) -> bytes:
    return frame_text(sp.encode_event(private_kind(pub.channel), pub))


class StreamEndpoint:
    """What every connection of one stream endpoint shares.

    Args:
        verifier: checks ``auth`` bearers; required when ``private``.
        verify_off_loop: run verification in a thread (it may fetch a JWKS URL).
        leeway: seconds a bearer stays valid past its ``exp`` (as the verifier allows).
    """

    def __init__(
        self,
        hub: Hub,
        limits: sp.StreamLimits,
        *,
        private: bool,
        verifier: BearerVerifier | None = None,
        verify_off_loop: bool = False,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if private and verifier is None:
            raise ValueError("a private endpoint needs a bearer verifier")
        self.hub = hub
        self.limits = limits
        self.private = private
        self.verifier = verifier
        self.verify_off_loop = verify_off_loop
        self.leeway = leeway
        self.clock = clock
        self.encoder: Encoder = _private_encoder if private else _public_encoder
        self.rate_limited = 0  # RATE_LIMITED refusals sent (read by the scrape)

    def attach(self, conn: WsConnection) -> StreamHandler:
        handler = StreamHandler(self, conn)
        conn.encoder = self.encoder
        conn.handler = handler
        return handler

    def channel(self, topic: str, user_id: str | None) -> str:
        """Map a wire topic to its hub channel: public topics are their own channel."""
        if not self.private:
            return topic
        assert user_id is not None, "private topics are checked for auth first"
        return private_channel(user_id, topic)

    async def verify(self, bearer: str) -> Claims:
        assert self.verifier is not None
        if self.verify_off_loop:
            return await asyncio.to_thread(self.verifier.verify, bearer)
        return self.verifier.verify(bearer)


class StreamHandler:
    """One connection's adapter: session state in, hub calls and replies out."""

    __slots__ = ("_expiry", "_inbox", "_suspended", "_task", "conn", "endpoint", "session")

    def __init__(self, endpoint: StreamEndpoint, conn: WsConnection) -> None:
        self.endpoint = endpoint
        self.conn = conn
        self.session = sp.StreamSession(private=endpoint.private, limits=endpoint.limits)
        self._inbox: deque[sp.Command] | None = None
        self._task: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        # Topics held while the bearer is expired, with the position delivery stopped at.
        self._suspended: dict[str, StreamPosition] | None = None

    # -- MessageHandler ---------------------------------------------------------------

    def text(self, data: bytes) -> None:
        self._accept(self.session.receive_text(data, time.monotonic()))

    def binary(self, data: bytes) -> None:
        self._accept(self.session.receive_binary(time.monotonic()))

    def closed(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._expiry is not None:
            self._expiry.cancel()
        self._release_all()

    # -- commands ---------------------------------------------------------------------

    def _accept(self, cmd: sp.Command) -> None:
        if isinstance(cmd, sp.Abort):
            self.conn.close(cmd.code, cmd.reason)
            return
        if self._task is None and isinstance(cmd, sp.Refusal | sp.Ping):
            self._reply_now(cmd)  # nothing in flight: answer at once, order is kept
            return
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(cmd)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def _reply_now(self, cmd: sp.Refusal | sp.Ping) -> None:
        if isinstance(cmd, sp.Refusal):
            if cmd.code == "RATE_LIMITED":
                self.endpoint.rate_limited += 1
            self.conn.send(sp.encode_error(cmd.code, cmd.detail, cmd.req_id, cmd.topics))
        else:
            self.conn.send(sp.encode_pong(time.time_ns(), cmd.client_ts, cmd.req_id))

    async def _run(self) -> None:
        inbox = self._inbox
        try:
            while inbox and not self.conn.closing:
                cmd = inbox.popleft()
                if isinstance(cmd, sp.Subscribe):
                    await self._subscribe(cmd)
                elif isinstance(cmd, sp.Unsubscribe):
                    self._unsubscribe(cmd)
                elif isinstance(cmd, sp.Auth):
                    await self._auth(cmd)
                elif isinstance(cmd, sp.Refusal | sp.Ping):
                    self._reply_now(cmd)
        except Exception:
            log.exception("! stream command failed; closing the connection")
            self.conn.close(*close.STREAM_FAILED)
        finally:
            self._task = None
            if not inbox:
                self._inbox = None  # an idle connection holds no deque (~760 B; issue 14)

    async def _subscribe(self, cmd: sp.Subscribe) -> None:
        admitted = self.session.admit(cmd, time.monotonic())
        if self._aborted(admitted):
            return
        catchups: list[Catchup] = []
        if admitted.topics:
            joined = await self._join(admitted.topics, cmd.resume, admitted.already, cmd.req_id)
            if joined is None or self.conn.closing:
                return
            catchups = joined
            recovered = {
                topic: bool(c.recovered)
                for topic, c in zip(admitted.topics, catchups, strict=True)
                if c.recovered is not None
            }
            self.conn.send(sp.encode_subscribed(admitted.topics, cmd.req_id, recovered))
        if isinstance(admitted.refusal, sp.Refusal):
            self._reply_now(admitted.refusal)  # after the ack, before the catch-up
        for catchup in catchups:
            self.endpoint.hub.go_live(catchup)

    def _aborted(self, admitted: sp.Admitted) -> bool:
        if isinstance(admitted.refusal, sp.Abort):
            self.conn.close(admitted.refusal.code, admitted.refusal.reason)
            return True
        return False

    async def _join(
        self,
        topics: tuple[str, ...],
        resume: dict[str, StreamPosition],
        already: frozenset[str],
        req_id: str | None,
    ) -> list[Catchup] | None:
        """Subscribe ``topics`` (pending); None, with the error sent, when it cannot."""
        hub, conn, session = self.endpoint.hub, self.conn, self.session
        catchups: list[Catchup] = []
        try:
            for topic in topics:
                channel = self.endpoint.channel(topic, session.user_id)
                since, latest = resume.get(topic), has_latest_value(topic)
                catchups.append(await hub.subscribe(channel, conn, since, latest=latest))
        except BrokerUnavailable:
            # All or nothing: undo only what this subscribe added.
            added = [t for t in topics if t not in already]
            for topic, catchup in zip(topics, catchups, strict=False):
                if topic in added:
                    hub.unsubscribe(catchup.channel, conn)
                else:
                    hub.go_live(catchup)
            session.topics.difference_update(added)
            detail = "the gateway cannot subscribe now; retry"
            conn.send(sp.encode_error("UNAVAILABLE", detail, req_id))
            return None
        return catchups

    def _unsubscribe(self, cmd: sp.Unsubscribe) -> None:
        admitted = self.session.admit(cmd, time.monotonic())
        if self._aborted(admitted):
            return
        user = self.session.user_id
        for topic in admitted.topics:
            if self._suspended is not None:
                self._suspended.pop(topic, None)
            if not self.endpoint.private or user is not None:
                self.endpoint.hub.unsubscribe(self.endpoint.channel(topic, user), self.conn)
        if admitted.topics:
            self.conn.send(sp.encode_unsubscribed(admitted.topics, cmd.req_id))
        if isinstance(admitted.refusal, sp.Refusal):
            self._reply_now(admitted.refusal)

    # -- private stream: auth and expiry ----------------------------------------------------

    async def _auth(self, cmd: sp.Auth) -> None:
        try:
            claims = await self.endpoint.verify(cmd.bearer)
        except InvalidToken as exc:
            self.conn.send(sp.encode_auth(None, "INVALID_TOKEN", cmd.req_id, detail=exc.reason))
            return
        if self.conn.closing:
            return
        user = claims.subject
        previous = self.session.user_id
        if previous is not None and previous != user:
            self._release_all()  # another user's subscriptions never carry over
            self._suspended = None
        self.session.authenticated(user)
        if self._expiry is not None:
            self._expiry.cancel()
        # The verifier accepts a bearer until exp + leeway; expire it at the same moment.
        delay = max(0.0, claims.expires_at + self.endpoint.leeway - self.endpoint.clock())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)
        self.conn.send(sp.encode_auth(user, None, cmd.req_id))
        suspended, self._suspended = self._suspended, None
        if suspended:
            # The topics held through the expiry come back, with what was missed.
            await self._subscribe(sp.Subscribe(tuple(suspended), cmd.req_id, suspended))

    def _expired(self) -> None:
        """The bearer ran out: tell the client, stop private delivery, keep the topics."""
        self._expiry = None
        user = self.session.user_id
        if user is None or self.conn.closing:
            return
        hub = self.endpoint.hub
        suspended: dict[str, StreamPosition] = {}
        for topic in self.session.topics:
            channel = self.endpoint.channel(topic, user)
            position = hub.delivered_position(channel, self.conn)
            hub.unsubscribe(channel, self.conn)
            if position is not None:
                suspended[topic] = position
        self._suspended = suspended
        self.session.topics.clear()
        self.session.authenticated(None)
        detail = "the bearer expired; send auth with a new one to resume private topics"
        self.conn.send(sp.encode_error("TOKEN_EXPIRED", detail, None))

    def _release_all(self) -> None:
        hub, conn, user = self.endpoint.hub, self.conn, self.session.user_id
        if not self.endpoint.private or user is not None:
            for topic in self.session.topics:
                hub.unsubscribe(self.endpoint.channel(topic, user), conn)
        self.session.topics.clear()
