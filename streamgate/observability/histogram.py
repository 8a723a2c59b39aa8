"""A histogram as plain integers: ``observe`` is a bisect and two additions, no lock.

The event loop is one thread, so the hot path needs no lock; the scrape reads the
counts (``server/metrics.py``) and builds the Prometheus family then.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["BYTES_BUCKETS", "SECONDS_BUCKETS", "Histogram"]

# Latencies from 0.1 ms to 10 s (fan-out of a batch, publish requests, lags).
SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Queued bytes from one small frame to the default 1 MiB limit of a write queue.
BYTES_BUCKETS: tuple[float, ...] = (
    256,
    1024,
    4096,
    16_384,
    65_536,
    262_144,
    524_288,
    1_048_576,
    4_194_304,
)


class Histogram:
    """Cumulative-on-read bucket counts of observed values (``le`` upper bounds)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = SECONDS_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of values <= le)`` for every bound and ``+Inf``, as Prometheus wants."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else _le(bound), total))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))
