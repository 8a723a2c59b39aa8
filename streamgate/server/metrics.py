"""``GET /metrics``: Prometheus exposition of the gateway's own counters.

The hot path keeps plain integers (no locks, no label lookups); this collector reads
them when scraped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamgate.hub.hub import Hub
from streamgate.server.websocket import WsRegistry

__all__ = ["GatewayCollector", "RateSampler", "render"]


class GatewayCollector(Collector):
    """Reads the hub's and the socket registry's counters at scrape time."""

    def __init__(self, hub: Hub, sockets: WsRegistry, ready: Callable[[], bool]) -> None:
        self.hub = hub
        self.sockets = sockets
        self.ready = ready
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        by_kind = Counter(conn.kind for conn in self.sockets.conns)
        conns = GaugeMetricFamily(
            "streamgate_connections", "Open WebSocket connections", labels=["endpoint"]
        )
        for kind, count in sorted(by_kind.items()):
            conns.add_metric([kind], count)
        yield conns
        yield CounterMetricFamily(
            "streamgate_connections_opened",
            "WebSocket connections accepted",
            value=self.sockets.opened,
        )
        yield CounterMetricFamily(
            "streamgate_slow_consumer_disconnects",
            "Connections closed with 4009 because their outbound buffer was full",
            value=self.sockets.slow_consumers,
        )
        yield CounterMetricFamily(
            "streamgate_publications",
            "Publications the broker delivered to this node",
            value=self.hub.stats.published,
        )
        yield CounterMetricFamily(
            "streamgate_messages_delivered",
            "Publication copies queued to subscribers",
            value=self.hub.stats.delivered,
        )
        yield GaugeMetricFamily(
            "streamgate_channels",
            "Channels with subscribers on this node",
            value=self.hub.channel_count,
        )
        yield GaugeMetricFamily(
            "streamgate_ready", "1 when the node serves", value=int(self.ready())
        )


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
            "connections": {kind: by_kind.get(kind, 0) for kind in ("public", "private", "push")},
            "published_total": self.hub.stats.published,
            "delivered_total": self.hub.stats.delivered,
            "published_per_s": round(self.published_per_s, 1),
            "delivered_per_s": round(self.delivered_per_s, 1),
            "channels": self.hub.channel_count,
        }
