"""``GET /metrics``: Prometheus exposition of the gateway's own figures.

The hot path keeps plain integers and :class:`~streamgate.observability.histogram.Histogram`
counts (no locks, no label lookups, nothing per message per socket); this collector reads
them when scraped and builds every family then. Labels come from bounded sets only
(endpoint kind, close code, HTTP status, topic kind, result): never a topic, user or
tenant. README.md's "Metrics" section says what each series is and what to alert on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streamgate.core.channels import TOPIC_KINDS
from streamgate.hub.hub import Hub
from streamgate.observability.histogram import Histogram
from streamgate.observability.stats import BrokerStats
from streamgate.server.admission import ConnectionLimits
from streamgate.server.http import HttpRequest, HttpResponse
from streamgate.server.router import Handler
from streamgate.server.websocket import WsRegistry
from streamgate.webhooks.sender import Dispatcher

__all__ = ["ENDPOINTS", "GatewayCollector", "RateSampler", "RequestStats", "render"]

ENDPOINTS = ("public", "private", "push")  # WebSocket endpoint kinds (the label values)


class RequestStats:
    """HTTP answers of the routes that matter to an operator, by route and status."""

    def __init__(self) -> None:
        self.codes: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}

    def timed(self, route: str, handler: Handler) -> Handler:
        """``handler``, counting each answer's status and observing its duration once."""
        latency = self.latency.setdefault(route, Histogram())
        codes = self.codes

        async def counted(request: HttpRequest) -> HttpResponse:
            started = time.perf_counter()
            response = await handler(request)
            latency.observe(time.perf_counter() - started)
            codes[route, response.status] += 1
            return response

        return counted

    def by_code(self, route: str) -> dict[int, int]:
        return {code: n for (r, code), n in self.codes.items() if r == route}


@dataclass
class Sources:
    """Everything the collector reads, owned elsewhere (``server/app.py`` wires it)."""

    hub: Hub
    sockets: WsRegistry
    broker: BrokerStats
    dispatcher: Dispatcher
    requests: RequestStats
    limits: ConnectionLimits
    # Stream refusals RATE_LIMITED (ops per second), summed over both stream endpoints.
    ops_rate_limited: Callable[[], int] = lambda: 0
    # Read just before each scrape: /readyz's verdict, and the outbox's due deliveries.
    ready: bool = False
    webhooks_due: int | None = None


class GatewayCollector(Collector):
    """Reads the figures of the hub, sockets, broker, dispatcher and routes at scrape time."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        yield from self._connections(s.sockets)
        yield from self._hub(s.hub)
        yield from self._requests(s.requests)
        yield from self._rate_limited(s)
        yield from self._webhooks(s)
        yield from self._broker(s.broker)
        yield GaugeMetricFamily(
            "streamgate_ready",
            "1 when the node serves (GET /readyz answers 200)",
            value=int(s.ready),
        )

    def _connections(self, sockets: WsRegistry) -> Iterator[Metric]:
        by_kind = Counter(conn.kind for conn in sockets.conns)
        written_bytes = Counter(sockets.written_bytes)
        written_messages = Counter(sockets.written_messages)
        for conn in sockets.conns:
            written_bytes[conn.kind] += conn.sent_bytes
            written_messages[conn.kind] += conn.sent_messages
        yield _by(
            GaugeMetricFamily, "streamgate_connections", "Open WebSocket connections", by_kind
        )
        yield _by(
            CounterMetricFamily,
            "streamgate_connections_opened",
            "WebSocket connections accepted",
            sockets.opened_by,
        )
        closed = CounterMetricFamily(
            "streamgate_disconnects",
            "WebSocket connections closed, by the close code of the side that closed first"
            " (1006: no close frame)",
            labels=["endpoint", "code"],
        )
        for (kind, code), n in sorted(sockets.closed_by.items()):
            closed.add_metric([kind, str(code)], n)
        yield closed
        yield _by(
            CounterMetricFamily,
            "streamgate_messages_written",
            "Queued messages written to sockets (one channel's batch queued at once counts once)",
            written_messages,
        )
        yield _by(
            CounterMetricFamily,
            "streamgate_bytes_written",
            "Bytes of WebSocket frames written to sockets",
            written_bytes,
        )
        yield _by(
            CounterMetricFamily,
            "streamgate_slow_consumer_disconnects",
            "Connections closed with 4009 because their outbound buffer was full",
            sockets.cut_by,
        )

    def _hub(self, hub: Hub) -> Iterator[Metric]:
        stats = hub.stats
        yield CounterMetricFamily(
            "streamgate_publications",
            "Publications the broker delivered to this node",
            value=stats.published,
        )
        yield CounterMetricFamily(
            "streamgate_messages_delivered",
            "Publication copies queued to subscribers",
            value=stats.delivered,
        )
        yield GaugeMetricFamily(
            "streamgate_channels", "Channels with subscribers on this node", value=hub.channel_count
        )
        current = GaugeMetricFamily(
            "streamgate_subscriptions", "Subscriptions on this node, by topic kind", labels=["kind"]
        )
        now = hub.subscriptions_by_kind()
        for kind in TOPIC_KINDS:
            current.add_metric([kind], now.get(kind, 0))
        yield current
        made = CounterMetricFamily(
            "streamgate_subscribes",
            "Subscriptions made (a resume included), by topic kind",
            labels=["kind"],
        )
        for kind in TOPIC_KINDS:
            made.add_metric([kind], stats.subscribes.get(kind, 0))
        yield made
        resumes = CounterMetricFamily(
            "streamgate_resumes",
            "Subscriptions with a resume position, by whether history had everything since",
            labels=["recovered"],
        )
        for recovered in (True, False):
            resumes.add_metric([str(recovered).lower()], stats.resumes.get(recovered, 0))
        yield resumes
        yield _histogram(
            "streamgate_fanout_duration_seconds",
            "Time one delivery of a channel's batch took to reach every live subscriber's queue",
            stats.fanout,
        )
        yield _histogram(
            "streamgate_publish_to_write_seconds",
            "Per flush pass: from the server time of the oldest publication queued since the"
            " last pass to the end of the pass's socket writes",
            stats.flush.lag,
        )
        yield _histogram(
            "streamgate_write_queue_bytes",
            "Per flush pass: the queued bytes of one connection being flushed (a different"
            " one each pass)",
            stats.flush.queued,
        )

    def _requests(self, requests: RequestStats) -> Iterator[Metric]:
        for route, what in (
            ("publish", "POST /api/v1/publish answers"),
            ("authorize", "POST /api/v1/authorize answers"),
            ("ws_token", "POST /auth/ws-token (push ticket) answers"),
        ):
            family = CounterMetricFamily(
                f"streamgate_{route}_requests", f"{what}, by HTTP status", labels=["code"]
            )
            for code, n in sorted(requests.by_code(route).items()):
                family.add_metric([str(code)], n)
            yield family
        yield _histogram(
            "streamgate_publish_duration_seconds",
            "Time from a publish request's body to its answer (parse, claim, broker, outbox)",
            requests.latency.get("publish") or Histogram(),
        )

    def _rate_limited(self, s: Sources) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "streamgate_rate_limited",
            "Refusals for going past a limit, by kind (ops: stream ops per second; authorize,"
            " ws_token: per client or key; connections: connection caps; push_sockets: 4008)",
            labels=["kind"],
        )
        requests = s.requests
        refused = {
            "ops": s.ops_rate_limited(),
            "authorize": requests.codes.get(("authorize", 429), 0),
            "ws_token": requests.codes.get(("ws_token", 429), 0),
            "connections": s.limits.refused,
            "push_sockets": s.sockets.closed_by.get(("push", 4008), 0),
        }
        for kind, n in refused.items():
            family.add_metric([kind], n)
        yield family

    def _webhooks(self, s: Sources) -> Iterator[Metric]:
        stats = s.dispatcher.stats
        yield _by(
            CounterMetricFamily,
            "streamgate_webhook_attempts",
            "Webhook delivery attempts made by this node, by result (success, 4xx, 5xx,"
            " timeout, connection_error, unresolvable, refused_target)",
            stats.attempts,
            label="result",
        )
        yield _histogram(
            "streamgate_webhook_attempt_duration_seconds",
            "Time one webhook delivery attempt took (resolve, connect, answer)",
            stats.latency,
        )
        yield GaugeMetricFamily(
            "streamgate_webhook_deliveries_in_flight",
            "Webhook attempts this node has in flight",
            value=s.dispatcher.in_flight,
        )
        if s.webhooks_due is not None:
            yield GaugeMetricFamily(
                "streamgate_webhook_deliveries_due",
                "Pending webhook deliveries due now and not leased (the whole outbox)",
                value=s.webhooks_due,
            )
        disabled = CounterMetricFamily(
            "streamgate_webhook_endpoints_disabled",
            "Webhook endpoints this node disabled, by reason (gone: 410; failing: 72 h)",
            labels=["reason"],
        )
        for reason in ("gone", "failing"):
            disabled.add_metric([reason], stats.disabled.get(reason, 0))
        yield disabled

    def _broker(self, stats: BrokerStats) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "streamgate_broker_reconnects",
            "Times the broker's pub/sub connection was made again after it dropped",
            value=stats.reconnects,
        )
        yield CounterMetricFamily(
            "streamgate_broker_lost_channels",
            "Channels whose continuity the broker could not prove after a reconnect",
            value=stats.lost_channels,
        )
        yield _histogram(
            "streamgate_broker_pubsub_lag_seconds",
            "From a publication's server time to its arrival over pub/sub (Redis only),"
            " once per pub/sub message",
            stats.lag,
        )


def _by(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    documentation: str,
    counts: Counter[str],
    *,
    label: str = "endpoint",
    values: Iterable[str] = ENDPOINTS,
) -> Metric:
    """A family labelled by ``label``: every fixed value (0 when unseen), then the others."""
    family = kind(name, documentation, labels=[label])
    fixed = tuple(values) if label == "endpoint" else ()
    for value in fixed:
        family.add_metric([value], counts.get(value, 0))
    for value, n in sorted(counts.items()):
        if value not in fixed:
            family.add_metric([value], n)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> Metric:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], histogram.cumulative(), sum_value=histogram.sum)
    return family


def render(collector: GatewayCollector) -> bytes:
    return generate_latest(collector.registry)


class RateSampler:
    """Per-second rates of the hub's counters, sampled once a second (``GET /api/v1/stats``)."""

    def __init__(self, hub: Hub, sockets: WsRegistry, interval: float = 1.0) -> None:
        self.hub = hub
        self.sockets = sockets
        self.interval = interval
        self.published_per_s = 0.0
        self.delivered_per_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.hub.stats
        last, published, delivered = loop.time(), stats.published, stats.delivered
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            span = max(now - last, 1e-9)
            self.published_per_s = (stats.published - published) / span
            self.delivered_per_s = (stats.delivered - delivered) / span
            last, published, delivered = now, stats.published, stats.delivered

    def snapshot(self) -> dict[str, object]:
        by_kind = Counter(conn.kind for conn in self.sockets.conns)
        return {
            "connections": {kind: by_kind.get(kind, 0) for kind in ENDPOINTS},
            "published_total": self.hub.stats.published,
            "delivered_total": self.hub.stats.delivered,
            "published_per_s": round(self.published_per_s, 1),
            "delivered_per_s": round(self.delivered_per_s, 1),
            "channels": self.hub.channel_count,
        }
