"""Capped exponential backoff with full jitter (the AWS architecture blog's "full jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """``delay(n)`` is uniform in ``[0, min(maximum, initial * factor**n)]``.

    ``attempt`` counts from 0 (the first retry). ``rng`` is for tests that need
    repeatable delays.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.factor < 1:
            raise ValueError("Backoff needs initial >= 0, maximum >= 0 and factor >= 1")

    def cap(self, attempt: int) -> float:
        """The upper bound of the delay before retry ``attempt``."""
        exponent = min(max(attempt, 0), 64)  # past 2**64 the cap is reached anyway
        return float(min(self.maximum, self.initial * self.factor**exponent))

    def delay(self, attempt: int) -> float:
        """A random delay in ``[0, cap(attempt)]``."""
        return self.rng.uniform(0.0, self.cap(attempt))
