"""Fixed-size rings and the bounded record of failing webhook endpoints."""

from __future__ import annotations

from streamgate.observability.ring import Ring
from streamgate.observability.stats import MAX_FAILING, EndpointFailure, WebhookStats


def test_ring_keeps_the_newest_and_counts_all() -> None:
    ring: Ring[int] = Ring(3)
    for i in range(5):
        ring.add(i)
    assert ring.recent() == [4, 3, 2]
    assert len(ring) == 3
    assert ring.total == 5


def failure(endpoint: str, at: float, error: str = "HTTP 500") -> EndpointFailure:
    return EndpointFailure(endpoint, "acme", "http://h/p", at, error, at)


def test_failing_endpoints_keep_their_first_failure_and_count() -> None:
    stats = WebhookStats()
    stats.failed(failure("ep_1", 10.0))
    stats.failed(failure("ep_1", 20.0, "timeout after 10 s"))
    [known] = stats.failing.values()
    assert (known.failing_since, known.last_at, known.failures) == (10.0, 20.0, 2)
    assert known.last_error == "timeout after 10 s"
    stats.succeeded("ep_1")
    assert not stats.failing


def test_failing_endpoints_are_bounded_dropping_the_stalest() -> None:
    stats = WebhookStats()
    for i in range(MAX_FAILING + 5):
        stats.failed(failure(f"ep_{i}", float(i)))
    stats.failed(failure("ep_5", 999.0))  # news of ep_5: it is kept
    assert len(stats.failing) == MAX_FAILING
    assert "ep_0" not in stats.failing and "ep_5" in stats.failing
    assert list(stats.failing)[-1] == "ep_5"
