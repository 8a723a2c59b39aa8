"""The gateway: wires config -> broker -> hub, serves HTTP and WebSocket on one port.

Data path, one way: ``PublishEndpoint.handle`` -> ``Publisher.publish`` -> ``Broker.publish``
(offsets, history) -> ``Hub.deliver`` (books, encode once) -> ``WsConnection.enqueue`` ->
``Flusher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

from streamgate.auth.apikeys import ApiKeyStore
from streamgate.auth.authorize import Authorizer
from streamgate.auth.tokens import BearerVerifier, TokenIssuer, load_or_create_secret
from streamgate.brokers.backends import node_id, open_backends
from streamgate.config import Config
from streamgate.errors import ConfigError
from streamgate.hub.hub import Hub
from streamgate.protocol import close
from streamgate.protocol.push import PUSH_PURPOSE, BadResume, parse_resume, ticket_from
from streamgate.protocol.stream import StreamLimits
from streamgate.publisher import MarketDirectory, Publisher
from streamgate.server.admin import AdminView
from streamgate.server.admission import ConnectionLimits, connection_cap, raise_open_file_limit
from streamgate.server.auth import tenant_key_check
from streamgate.server.authorize import authorize_endpoint
from streamgate.server.errors import http_error
from streamgate.server.history import HistoryEndpoint
from streamgate.server.http import (
    HttpConnection,
    HttpRequest,
    HttpResponse,
    Router,
    UpgradeHandler,
    json_response,
)
from streamgate.server.metrics import GatewayCollector, RateSampler, RequestStats, Sources, render
from streamgate.server.producer import PublishEndpoint
from streamgate.server.spec import mount_spec
from streamgate.server.static import StaticFiles
from streamgate.server.webhooks_api import WebhooksApi
from streamgate.server.websocket import (
    Flusher,
    WsConnection,
    WsRegistry,
    handshake,
)
from streamgate.server.ws_push import PushEndpoint, offered_subprotocols
from streamgate.server.ws_stream import StreamEndpoint
from streamgate.server.ws_token import WsTokenEndpoint
from streamgate.webhooks.node import hold_lease_name
from streamgate.webhooks.outbox import Outbox
from streamgate.webhooks.schedule import DEFAULT_SCHEDULE, parse_schedule
from streamgate.webhooks.sender import Dispatcher
from streamgate.webhooks.store import open_store

if TYPE_CHECKING:
    from streamgate.venue.runner import DemoVenue

__all__ = ["Gateway", "producer_key"]

log = logging.getLogger("streamgate")

PROBE_TIMEOUT = 1.0  # seconds /readyz and /metrics wait for the outbox database


def producer_key(config: Config) -> str:
    """Return the configured producer key, or the one kept in the data dir (made once)."""
    if config.producer_key:
        return config.producer_key
    path = config.data_path / "producer.key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    try:
        config.data_path.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot keep the producer key in {path}: {exc}") from None
    log.info("= generated a producer key in %s", path)
    return key


class Gateway:
    """One gateway node. ``await start()``, then ``await drain()`` to stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.node = node_id(config)
        self.backends = open_backends(config, self.node)
        self.broker = self.backends.broker
        self.idempotency = self.backends.idempotency
        self.presence = self.backends.presence
        self.hub = Hub(self.broker)
        # Every TCP connection, HTTP or WebSocket; the total is sized in start().
        self.limits = ConnectionLimits(total=1, per_ip=config.max_connections_per_ip)
        self.sockets = WsRegistry(
            interval=config.ping_interval,
            timeout=config.ping_timeout,
            close_timeout=config.close_timeout,
            limits=self.limits,
        )
        self.markets = MarketDirectory(config.markets)
        self.producer_key = producer_key(config)
        self.webhook_store = open_store(config.data_path, config.webhooks_postgres_dsn or None)
        allow_private = bool(config.webhooks_allow_loopback)
        self.lease_name = hold_lease_name(
            config.data_path, worker=config.worker_index, name=config.node_name
        )
        self.dispatcher = Dispatcher(
            self.webhook_store,
            node=self.lease_name.name,
            take_back=self.lease_name.stable,
            allow_private=allow_private,
            schedule=(
                parse_schedule(config.webhooks_retry_schedule)
                if config.webhooks_retry_schedule
                else DEFAULT_SCHEDULE
            ),
            per_endpoint=config.webhooks_per_endpoint,
            timeout=config.webhooks_timeout,
            lease=config.webhooks_lease,
        )
        self.publisher = Publisher(
            outbox=Outbox(self.webhook_store, wake=self.dispatcher.wake),
            broker=self.broker,
            idempotency=self.idempotency,
            markets=self.markets,
            connected=self.presence.members,
        )
        self.producer = PublishEndpoint(key=self.producer_key, publisher=self.publisher)
        limits = StreamLimits(
            max_subscriptions=config.max_subscriptions,
            max_frame_bytes=config.max_frame_bytes,
            ops_per_second=config.ops_per_second,
            ops_burst=config.ops_burst,
            abuse_refusals=config.abuse_refusals,
            abuse_window=config.abuse_window,
        )
        self.public = StreamEndpoint(self.hub, limits, private=False)
        auth = config.auth_settings()
        secret = load_or_create_secret(config.data_path)
        self.tokens = TokenIssuer(secret, auth)
        self.authorizer = Authorizer(self.tokens, auth)
        self.private = StreamEndpoint(
            self.hub,
            limits,
            private=True,
            verifier=(verifier := BearerVerifier(secret, auth)),
            verify_off_loop=verifier.may_block,
            leeway=auth.leeway,
        )
        self.api_keys = ApiKeyStore.in_data_dir(config.data_path)
        self.ws_token = WsTokenEndpoint(
            self.api_keys,
            self.tokens,
            ttl=config.push_ticket_ttl,
            rate_limit=config.ws_token_rate_limit,
            rate_window=config.ws_token_rate_window,
        )
        self.push = PushEndpoint(
            self.hub,
            self.presence,
            BearerVerifier(secret, auth, purpose=PUSH_PURPOSE, own_only=True),
            max_per_sub_user=config.max_sockets_per_sub_user,
        )
        self.rates = RateSampler(self.hub, self.sockets)
        self.requests = RequestStats()
        self.metrics = Sources(
            hub=self.hub,
            sockets=self.sockets,
            broker=self.broker.stats,
            dispatcher=self.dispatcher,
            requests=self.requests,
            limits=self.limits,
            ops_rate_limited=lambda: self.public.rate_limited + self.private.rate_limited,
        )
        self.collector = GatewayCollector(self.metrics)
        self.router = Router()
        self.http_conns: set[HttpConnection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._flusher: Flusher | None = None
        self._dispatching: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._routes()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._flusher = Flusher(
            loop,
            self.hub.stats.flush,
            write_delay=self.config.write_delay,
            busy_after=self.config.write_delay_after,
        )
        await self.broker.start(self.hub)
        await self.presence.start()
        self.sockets.start()
        self.rates.start()
        self._dispatching = asyncio.create_task(self.dispatcher.run())
        caps = self.limits
        caps.total = connection_cap(self.config.max_connections, raise_open_file_limit())
        log.info("= connections: %d at most, %d per address", caps.total, caps.per_ip_cap)
        self._server = await loop.create_server(
            self._new_connection,
            self.config.host,
            self.config.port,
            backlog=4096,
            reuse_port=self.config.workers > 1 or None,
        )
        log.info("= serving on http://%s:%d", self.config.host, self.port)

    def mount_demo(self) -> DemoVenue:
        """Create the demo venue (publishing to this gateway) and mount its routes."""
        from streamgate.server.demo import DemoRoutes
        from streamgate.venue.runner import DemoVenue

        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        venue = DemoVenue(f"http://{host}:{self.port}", self.producer_key)
        verifier = self.private.verifier
        assert verifier is not None
        DemoRoutes(venue, verifier, self.tokens, self.config.push_ticket_ttl).mount(self.router)
        return venue

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def ready(self) -> bool:
        return self._server is not None and not self.draining and self.broker.ready

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def drain(self) -> None:
        """Stop accepting, close every socket with 1012, stop the broker."""
        if self.draining:
            await self._stopped.wait()
            return
        self.draining = True
        log.info("= draining: %d sockets", len(self.sockets.conns))
        self.publisher.stop()
        if self._server is not None:
            self._server.close()
        for http in list(self.http_conns):
            http.close_idle()
        timeout = self.config.drain_timeout
        # Publishes answered 200 reach their subscribers: their fan-out is queued on the
        # sockets before the close frames (which go after what is queued).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.publisher.settled()
        for conn in list(self.sockets.conns):
            conn.close(*close.SERVICE_RESTART, timeout=timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Sockets close at their peers' pace; poll them, bounded by the drain timeout.
        while (self.sockets.conns or self.http_conns) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await self.sockets.stop()
        await self.rates.stop()
        if self._dispatching is not None:
            self._dispatching.cancel()
            await asyncio.gather(self._dispatching, return_exceptions=True)
        await self.webhook_store.close()
        self.lease_name.close()
        await self.backends.close()
        await self.broker.close()
        self.api_keys.close()
        self._stopped.set()
        log.info("= stopped")

    # -- wiring -----------------------------------------------------------------------

    def _new_connection(self) -> HttpConnection:
        return HttpConnection(
            self.router,
            max_body=self.config.max_publish_bytes,
            on_open=self.http_conns.add,
            on_close=self.http_conns.discard,
            header_timeout=self.config.http_header_timeout,
            body_timeout=self.config.http_body_timeout,
            idle_timeout=self.config.http_idle_timeout,
            admission=self.limits,
        )

    def _routes(self) -> None:
        r = self.router
        r.add("GET", "/healthz", self._healthz)
        r.add("GET", "/readyz", self._readyz)
        r.add("GET", "/metrics", self._metrics)
        r.add("GET", "/api/v1/markets", self._markets)
        r.add("GET", "/api/v1/history", HistoryEndpoint(self.broker).handle)
        r.add("GET", "/api/v1/stats", self._stats)
        timed = self.requests.timed
        r.add("POST", "/api/v1/publish", timed("publish", self.producer.handle))
        # Keys are checked on the head: a refused body is never read (issue 11).
        r.check_head("/api/v1/publish", self.producer.authorized)
        tenant_key_valid = tenant_key_check(self.api_keys)
        for path, prefix in (("/auth/ws-token", False), ("/webhooks", False), ("/webhooks/", True)):
            r.check_head(path, tenant_key_valid, prefix=prefix)
        authorize = authorize_endpoint(self.authorizer, self.backends.nonces)
        r.add("POST", "/api/v1/authorize", timed("authorize", authorize))
        mount_spec(r)
        static = StaticFiles()
        r.add("GET", "/", static.handler("index.html"))
        for name in static.names():
            r.add("GET", f"/static/{name}", static.handler(name))
        r.add_upgrade("/ws/public", self._upgrade_to(self.public, "public"))
        r.add_upgrade("/ws/private", self._upgrade_to(self.private, "private"))
        r.add("POST", "/auth/ws-token", timed("ws_token", self.ws_token.handle))
        r.add_upgrade("/ws", self._upgrade_push)
        WebhooksApi(
            self.api_keys,
            self.webhook_store,
            allow_private=bool(self.config.webhooks_allow_loopback),
            wake=self.dispatcher.wake,
        ).mount(r)
        if self.config.admin_key:
            AdminView(
                self.config.admin_key,
                hub=self.hub,
                sockets=self.sockets,
                dispatcher=self.dispatcher,
                rates=self.rates,
                node=self.node,
                readiness=self.unready_reasons,
                webhooks_due=self.webhooks_due,
            ).mount(r)

    async def _healthz(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, {"status": "ok"})

    async def unready_reasons(self) -> list[str]:
        """Why the node is not ready (empty when it is): what ``/readyz`` says."""
        reasons: list[str] = []
        if self.draining or self._server is None:
            reasons.append("draining" if self.draining else "starting")
        if not self.broker.ready:
            reasons.append("broker unavailable")
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self.webhook_store.ping()
        except Exception:  # any failure to reach the outbox database, or the timeout
            reasons.append("outbox unavailable")
        return reasons

    async def webhooks_due(self) -> int | None:
        """Due deliveries in the outbox, or None when it cannot say within the probe time."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                return await self.webhook_store.due_count(time.time())
        except Exception:
            return None

    async def _readyz(self, request: HttpRequest) -> HttpResponse:
        reasons = await self.unready_reasons()
        if not reasons:
            return json_response(200, {"status": "ready"})
        doc = {"status": "not ready", "reason": reasons[0], "reasons": reasons}
        return json_response(503, doc)

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        self.metrics.ready = not await self.unready_reasons()
        self.metrics.webhooks_due = await self.webhooks_due()
        return HttpResponse(200, render(self.collector), content_type=CONTENT_TYPE_LATEST)

    async def _stats(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, self.rates.snapshot())

    async def _markets(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, self.markets.list())

    def _upgrade_to(self, endpoint: StreamEndpoint, kind: str) -> UpgradeHandler:
        def upgrade(request: HttpRequest, transport: asyncio.Transport, rest: bytes) -> None:
            conn = self._accept(request, transport, kind)
            if conn is not None:
                endpoint.attach(conn)
                self._feed(conn, rest)

        return upgrade

    def _upgrade_push(
        self, request: HttpRequest, transport: asyncio.Transport, rest: bytes
    ) -> None:
        ticket, subprotocol = ticket_from(offered_subprotocols(request), request.query_one("token"))
        try:
            resume = parse_resume(request.query)
        except BadResume as exc:
            refused = http_error(400, "INVALID_OFFSET", str(exc))
            transport.write(refused.encode(keep_alive=False))
            transport.close()
            return
        conn = self._accept(request, transport, "push", subprotocol)
        if conn is not None:
            self.push.attach(conn, ticket, resume)
            self._feed(conn, rest)

    def _accept(
        self,
        request: HttpRequest,
        transport: asyncio.Transport,
        kind: str,
        subprotocol: str | None = None,
    ) -> WsConnection | None:
        """Complete the upgrade (or refuse it) and make the socket a WsConnection."""
        if self.draining:
            refused = http_error(503, "DRAINING", "the node is shutting down")
            transport.write(refused.encode(keep_alive=False))
            transport.close()
            return None
        response, data = handshake(
            request,
            select_subprotocol=lambda offered: subprotocol if subprotocol in offered else None,
        )
        transport.write(data)
        if response.status_code != 101:
            transport.close()
            return None
        assert self._flusher is not None
        conn = WsConnection(
            transport,
            kind=kind,
            registry=self.sockets,
            flusher=self._flusher,
            queue_limit=self.config.outbound_buffer_bytes,
            max_message=self.config.hard_max_frame_bytes,
            client=request.client,
        )
        if self.config.send_buffer_bytes:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.send_buffer_bytes)
        transport.set_protocol(conn)
        return conn

    @staticmethod
    def _feed(conn: WsConnection, rest: bytes) -> None:
        """Hand bytes that came with the upgrade request to the new connection."""
        if rest and not conn.closing:
            conn.data_received(rest)
