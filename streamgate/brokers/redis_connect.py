"""The one place Redis clients are made: one connection policy for every backend.

Every client a node opens (the broker's commands and its pub/sub connection, the
idempotency and nonce stores, presence) is built here, so they all follow one policy:

- **Bounded everywhere.** A connect, a command, and the wait for a pooled connection
  each take at most ``timeout`` seconds (``Config.redis_timeout``); past it the call
  raises, which :func:`unavailable_on_error` turns into ``BrokerUnavailable`` (503 /
  ``UNAVAILABLE``). A hung Redis fails a call after one timeout.
- **Bounded pools.** Commands share at most ``max_connections`` connections per client
  (a :class:`~redis.asyncio.BlockingConnectionPool`): thousands of callers at once wait
  for one instead of opening one each.
- **Nothing is sent twice.** A command (a script, a claim pipeline) is never resent
  after it failed: one that timed out or lost its connection may have run, and running
  it again could number a publication twice, or find its own idempotency keys claimed.
  A pooled connection that died meanwhile (a Redis restart) is found closed when it
  is taken from the pool and replaced before anything is written on it.
- **The pub/sub connection is the broker's to heal.** It is never reconnected behind
  the broker's back (that would hide the gap): its reader reconnects with backoff,
  re-subscribes and proves continuity itself (:mod:`streamgate.brokers.redis`). TCP
  keepalive finds a peer that vanished while the connection idled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from streamgate.errors import BrokerUnavailable

__all__ = [
    "MAX_CONNECTIONS",
    "REDIS_TIMEOUT",
    "UNAVAILABLE_ERRORS",
    "command_client",
    "pubsub_client",
    "unavailable_on_error",
]

# What a lost, refused or slow Redis connection raises.
UNAVAILABLE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)

# Seconds a connect or a command may take before ``BrokerUnavailable`` (Config.redis_timeout).
REDIS_TIMEOUT = 5.0

# Command connections one client keeps to Redis.
MAX_CONNECTIONS = 32


@contextlib.contextmanager
def unavailable_on_error() -> Iterator[None]:
    """Turn a lost or refused Redis connection (or a timeout) into ``BrokerUnavailable``."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise BrokerUnavailable(f"redis: {exc}") from exc


def _never_resend() -> Retry:
    return Retry(NoBackoff(), 0)


def command_client(
    url: str,
    *,
    name: str,
    timeout: float = REDIS_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> Redis:
    """Return a client for commands and scripts, following the module's policy.

    Args:
        url: ``redis://host:port/db``.
        name: the client name Redis lists (CLIENT SETNAME).
        timeout: seconds a connect, a command or the wait for a pooled connection may take.
        max_connections: the connections the client keeps at most.
    """
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            client_name=name,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=_never_resend(),
        )
    )


def pubsub_client(url: str, *, name: str, timeout: float = REDIS_TIMEOUT) -> Redis:
    """Return the client of a pub/sub connection, which its reader reconnects itself.

    ``timeout`` bounds the connect and every write; the reader's waits for messages
    carry their own timeouts.
    """
    return Redis.from_url(
        url,
        client_name=name,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        socket_keepalive=True,
        retry=_never_resend(),
    )
