"""Figures one layer keeps for the scrape: plain fields, no Prometheus on the hot path."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from streamgate.observability.histogram import BYTES_BUCKETS, SECONDS_BUCKETS, Histogram

__all__ = [
    "MAX_FAILING",
    "BrokerStats",
    "EndpointFailure",
    "FlushStats",
    "WebhookStats",
]


def _seconds() -> Histogram:
    return Histogram(SECONDS_BUCKETS)


def _bytes() -> Histogram:
    return Histogram(BYTES_BUCKETS)


@dataclass(slots=True)
class FlushStats:
    """What the writer samples once per flush pass (``server/websocket.Flusher``).

    ``oldest_ms`` is set by the hub's fan-out: the server time of the first publication
    it queued to live subscribers since the last pass (0: none). At the end of each pass
    the writer observes ``now - oldest_ms`` into ``lag`` and clears it; it observes one
    connection's queued bytes (a different one each pass) into ``queued``.
    """

    lag: Histogram = field(default_factory=_seconds)
    queued: Histogram = field(default_factory=_bytes)
    oldest_ms: int = 0
    passes: int = 0


@dataclass(slots=True)
class BrokerStats:
    """A broker's connection to its backend (the memory broker never changes them)."""

    reconnects: int = 0  # pub/sub connections made again after a drop
    lost_channels: int = 0  # channels reported lost after a reconnect (Hub.lost)
    down_since: float | None = None  # wall time the pub/sub connection dropped, if it is down
    # Publication server time to its arrival over pub/sub, once per pub/sub message.
    lag: Histogram = field(default_factory=_seconds)


MAX_FAILING = 100  # failing webhook endpoints remembered (the oldest news is dropped)


@dataclass(slots=True)
class EndpointFailure:
    """A webhook endpoint whose last attempt on this node failed."""

    endpoint_id: str
    tenant: str
    target: str  # scheme://host[:port]/path: no query, no credentials
    failing_since: float  # wall time of its first failure in a row here
    last_error: str
    last_at: float
    failures: int = 1


@dataclass(slots=True)
class WebhookStats:
    """The dispatcher's figures; ``failing`` holds at most :data:`MAX_FAILING` endpoints."""

    attempts: Counter[str] = field(default_factory=Counter)  # by result (bounded set)
    latency: Histogram = field(default_factory=_seconds)  # seconds per attempt
    disabled: Counter[str] = field(default_factory=Counter)  # by reason: gone, failing
    failing: dict[str, EndpointFailure] = field(default_factory=dict)

    def failed(self, failure: EndpointFailure) -> None:
        known = self.failing.pop(failure.endpoint_id, None)
        if known is not None:
            failure.failing_since = known.failing_since
            failure.failures = known.failures + 1
        self.failing[failure.endpoint_id] = failure  # newest last
        while len(self.failing) > MAX_FAILING:
            del self.failing[next(iter(self.failing))]

    def succeeded(self, endpoint_id: str) -> None:
        self.failing.pop(endpoint_id, None)
