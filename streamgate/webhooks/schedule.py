"""When to try a webhook delivery again, and when to give up (PROTOCOL.md section 1).

Schedule. A message is tried at once, then again :data:`DEFAULT_SCHEDULE` seconds after
each failed try: 30 s, 30 s, 5 m, 5 m, 15 m, 15 m, 1 h, 1 h, 6 h, 6 h, 11 attempts in
all (14 h 41 m from the first try to the last, before jitter).
``STREAMGATE_WEBHOOKS_RETRY_SCHEDULE`` (comma-separated seconds, read by
:func:`parse_schedule`) replaces the list; its length sets the number of retries.

Jitter. Each scheduled delay is multiplied by a factor drawn uniformly from
``1 - JITTER .. 1 + JITTER`` (±10 %), so messages that failed together (a receiver's
outage) do not all come back in the same second.

``Retry-After``. When a failed attempt's response (429, 503, or any other) carries
``Retry-After``, the next try waits ``max(jittered delay, retry_after)``, with
``retry_after`` capped at :data:`MAX_RETRY_AFTER` (24 h) so a receiver cannot park a
message for ever. It moves the next try later, never earlier, and never adds attempts:
the message still fails after the schedule's last entry.

Disabling. An endpoint whose deliveries have failed continuously for
:data:`DISABLE_AFTER` (72 h; "failing since" is the first failure after the last
success) is disabled: :func:`should_disable`. Each attempt waits at most
:data:`DELIVERY_TIMEOUT` seconds for the response.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from streamgate.errors import ConfigError

__all__ = [
    "DEFAULT_SCHEDULE",
    "DELIVERY_TIMEOUT",
    "DISABLE_AFTER",
    "JITTER",
    "MAX_RETRY_AFTER",
    "MAX_SCHEDULE_DELAY",
    "MAX_SCHEDULE_LENGTH",
    "RETRY_SCHEDULE_ENV",
    "next_delay",
    "parse_retry_after",
    "parse_schedule",
    "should_disable",
]

DEFAULT_SCHEDULE: Final[tuple[float, ...]] = (
    30,
    30,
    300,
    300,
    900,
    900,
    3600,
    3600,
    21600,
    21600,
)
RETRY_SCHEDULE_ENV: Final = "STREAMGATE_WEBHOOKS_RETRY_SCHEDULE"
JITTER: Final = 0.1  # ±10 % of each scheduled delay
MAX_RETRY_AFTER: Final = 24 * 3600.0  # a longer Retry-After is cut to this
MAX_SCHEDULE_LENGTH: Final = 100  # entries of a configured schedule
MAX_SCHEDULE_DELAY: Final = 7 * 24 * 3600.0  # one entry of a configured schedule
DISABLE_AFTER: Final = 72 * 3600
DELIVERY_TIMEOUT: Final = 10.0

_DELTA_SECONDS = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")


def parse_schedule(text: str) -> tuple[float, ...]:
    """``STREAMGATE_WEBHOOKS_RETRY_SCHEDULE``: comma-separated seconds, such as ``"1,2,5"``.

    Each entry is a finite number from 0 to :data:`MAX_SCHEDULE_DELAY` (spaces around it
    are allowed), at most :data:`MAX_SCHEDULE_LENGTH` entries.

    Raises:
        ConfigError: an empty text or entry, a non-number, or a value out of range.
    """
    if not text.strip():
        raise ConfigError(f"{RETRY_SCHEDULE_ENV} is empty: give comma-separated seconds")
    entries = text.split(",")
    if len(entries) > MAX_SCHEDULE_LENGTH:
        raise ConfigError(f"{RETRY_SCHEDULE_ENV} has more than {MAX_SCHEDULE_LENGTH} entries")
    delays = []
    for i, entry in enumerate(entries):
        try:
            value = float(entry.strip())
        except ValueError:
            raise ConfigError(
                f"{RETRY_SCHEDULE_ENV}: entry {i + 1} ({entry.strip()!r}) is not a number"
            ) from None
        if not math.isfinite(value) or not 0 <= value <= MAX_SCHEDULE_DELAY:
            raise ConfigError(
                f"{RETRY_SCHEDULE_ENV}: entry {i + 1} ({entry.strip()!r}) "
                f"must be within 0..{MAX_SCHEDULE_DELAY:g} seconds"
            )
        delays.append(value)
    return tuple(delays)


def next_delay(
    attempt: int,
    schedule: Sequence[float] = DEFAULT_SCHEDULE,
    *,
    retry_after: float | None,
    rng: random.Random,
) -> float | None:
    """Seconds from now to the next try, or None when the schedule is exhausted.

    ``attempt`` is the number of attempts made so far: 0 gives 0.0 (the first try is
    at once), n >= 1 gives ``schedule[n - 1]`` with jitter and ``Retry-After`` applied
    (module docstring), and n > ``len(schedule)`` gives None.
    """
    if attempt < 0:
        raise ValueError("attempt counts attempts made, >= 0")
    if attempt == 0:
        return 0.0
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (Unix seconds), or None.

    Both forms of RFC 9110 section 10.2.3: delta-seconds (``"120"``; a fraction is
    tolerated) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``; a date in the past
    gives 0.0). None for a missing, empty or unreadable value.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with no claim about local time
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def should_disable(failing_since: float | None, now: float) -> bool:
    """True once an endpoint has been failing continuously for :data:`DISABLE_AFTER`.

    ``failing_since`` is the Unix time of the first failure after the last success
    (None while the endpoint is healthy).
    """
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
