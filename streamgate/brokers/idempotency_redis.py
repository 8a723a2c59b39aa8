"""Idempotency keys shared by every node on one Redis (``IdempotencyStore`` on Redis).

Each claimed key is ``{prefix}idem:{key}``, value ``1``, set with NX and a PX expiry of
the window: the first claim wins on every node, and Redis forgets the key by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from streamgate.brokers.base import IdempotencyStore
from streamgate.brokers.redis_connect import REDIS_TIMEOUT, command_client, unavailable_on_error

__all__ = ["RedisIdempotency"]


class RedisIdempotency:
    """Idempotency keys shared by every node, each kept ``window`` seconds in Redis.

    A call is never resent (:mod:`streamgate.brokers.redis_connect`): a claim whose
    reply was lost must not run again and find its own keys.

    Args:
        url: ``redis://host:port/db``, or a client of :func:`command_client` to share
            (then :meth:`close` leaves it open: its owner closes it).
        prefix: put before every key (``{prefix}idem:{key}``).
        window: seconds a claimed key is remembered.
        timeout: seconds a connect or a command may take before ``BrokerUnavailable``.
        name: the Redis client name (CLIENT SETNAME).
    """

    def __init__(
        self,
        url: str | Redis,
        *,
        prefix: str,
        window: float,
        timeout: float = REDIS_TIMEOUT,
        name: str = "streamgate-idempotency",
    ) -> None:
        self._owned = isinstance(url, str)
        self._redis = (
            command_client(url, name=name, timeout=timeout) if isinstance(url, str) else url
        )
        self._prefix = f"{prefix}idem:"
        self._window_ms = max(1, int(window * 1000))

    async def close(self) -> None:
        """Disconnect (a shared client stays open); keys stay until their window ends."""
        if self._owned:
            await self._redis.aclose(close_connection_pool=True)

    async def seen(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        with unavailable_on_error():
            values = await self._redis.mget([self._prefix + k for k in keys])
        return {k for k, v in zip(keys, values, strict=True) if v is not None}

    async def claim(self, keys: Sequence[str]) -> set[str]:
        """Claim ``keys`` (SET NX PX, one pipeline); a key repeated in ``keys`` counts once."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for key in unique:
            pipe.set(self._prefix + key, b"1", nx=True, px=self._window_ms)
        with unavailable_on_error():
            results = await pipe.execute()
        return {k for k, ok in zip(unique, results, strict=True) if not ok}

    async def release(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        with unavailable_on_error():
            await self._redis.delete(*(self._prefix + k for k in keys))


def _conforms(store: RedisIdempotency) -> IdempotencyStore:
    """Checked by mypy: the Redis backend satisfies the seam."""
    return store
