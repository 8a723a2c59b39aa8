"""The shared-state backends a node runs on, chosen by ``Config.broker``.

``memory`` (the embedded default): one process, nothing to run beside it, and redis is
not even imported. ``redis``: every node on the same Redis and key prefix acts as one
(docs/cluster.md); every client follows :mod:`streamgate.brokers.redis_connect`.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streamgate.brokers.base import Broker, IdempotencyStore
from streamgate.brokers.idempotency_memory import MemoryIdempotency
from streamgate.brokers.memory import MemoryBroker
from streamgate.brokers.presence import Presence
from streamgate.brokers.presence_memory import MemoryPresence
from streamgate.config import Config

__all__ = ["Backends", "node_id", "open_backends"]


@dataclass(frozen=True, slots=True)
class Backends:
    broker: Broker
    idempotency: IdempotencyStore
    presence: Presence
    # Used authorize (public key, nonce) pairs, claimed by every node (None: one node).
    nonces: IdempotencyStore | None
    # Closes what the stores share (a Redis client), after the stores are closed.
    close_shared: Callable[[], Awaitable[None]] | None = None

    async def close(self) -> None:
        """Close what ``open_backends`` opened (the broker is closed by its owner)."""
        await self.presence.close()
        await self.idempotency.close()
        if self.nonces is not None:
            await self.nonces.close()
        if self.close_shared is not None:
            await self.close_shared()


def node_id(config: Config) -> str:
    """This node's name: ``node_name`` or host-pid, made unique per process start."""
    name = config.node_name or f"{socket.gethostname()}-{os.getpid()}"
    return f"{name}-{secrets.token_hex(3)}"


def open_backends(config: Config, node: str) -> Backends:
    """Create (not yet connect) the backends ``config`` asks for."""
    if config.broker == "redis":
        return _redis_backends(config, node)
    return Backends(
        broker=MemoryBroker(history_size=config.history_size, history_ttl=config.history_ttl),
        idempotency=MemoryIdempotency(
            window=config.idempotency_window, max_keys=config.idempotency_max_keys
        ),
        presence=MemoryPresence(),
        nonces=None,
    )


def _redis_backends(config: Config, node: str) -> Backends:
    """The Redis backends, imported here only: the memory path never loads redis."""
    from streamgate.brokers.idempotency_redis import RedisIdempotency
    from streamgate.brokers.presence_redis import RedisPresence
    from streamgate.brokers.redis import RedisBroker
    from streamgate.brokers.redis_connect import command_client

    prefix, timeout = config.redis_prefix, config.redis_timeout
    # Three clients per node, one policy (streamgate.brokers.redis_connect): the broker's
    # commands, its pub/sub connection, and this one, shared by the small stores.
    shared = command_client(config.redis_url, name=f"streamgate-{node}-state", timeout=timeout)
    return Backends(
        broker=RedisBroker(
            config.redis_url,
            prefix=prefix,
            history_size=config.history_size,
            history_ttl=config.history_ttl,
            keep=config.redis_keep,
            name=f"streamgate-{node}",
            timeout=timeout,
        ),
        idempotency=RedisIdempotency(shared, prefix=prefix, window=config.idempotency_window),
        presence=RedisPresence(shared, prefix=prefix, node=node, ttl=config.presence_ttl),
        # As long as a node remembers a pair: the timestamp window either side, + 1 s.
        nonces=RedisIdempotency(
            shared, prefix=f"{prefix}nonce:", window=2 * config.authorize_window + 1.0
        ),
        close_shared=lambda: shared.aclose(close_connection_pool=True),
    )
