"""Backoff: capped exponential bounds, full jitter within them."""

from __future__ import annotations

import random

import pytest

from streamgate.client import Backoff


def test_caps_grow_exponentially_up_to_the_maximum() -> None:
    b = Backoff(initial=0.5, maximum=30.0, factor=2.0)
    assert [b.cap(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.cap(10_000) == 30.0


def test_delays_are_jittered_within_the_cap() -> None:
    b = Backoff(initial=1.0, maximum=4.0, rng=random.Random(1))
    delays = [b.delay(3) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, not one fixed value
    assert max(delays) > 3.0 and min(delays) < 1.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)
