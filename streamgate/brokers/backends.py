"""The shared-state backends a node runs on, chosen by ``Config.broker``.

``memory`` (the embedded default): one process, nothing to run beside it, and redis is
not even imported. ``redis``: every node on the same Redis and key prefix acts as one
(docs/cluster.md); every client follows :mod:`streamgate.brokers.redis_connect`.
"""

from __future__ import annotations

import os
import secrets
import socket
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

    async def close(self) -> None:
        """Close what ``open_backends`` opened (the broker is closed by its owner)."""
        await self.presence.close()
        await self.idempotency.close()
        if self.nonces is not None:
            await self.nonces.close()


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

    prefix, timeout = config.redis_prefix, config.redis_timeout
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
        idempotency=RedisIdempotency(
            config.redis_url,
            prefix=prefix,
            window=config.idempotency_window,
            timeout=timeout,
            name=f"streamgate-{node}-idem",
        ),
        presence=RedisPresence(
            config.redis_url,
            prefix=prefix,
            node=node,
            ttl=config.presence_ttl,
            timeout=timeout,
        ),
        # As long as a node remembers a pair: the timestamp window either side, + 1 s.
        nonces=RedisIdempotency(
            config.redis_url,
            prefix=f"{prefix}nonce:",
            window=2 * config.authorize_window + 1.0,
            timeout=timeout,
            name=f"streamgate-{node}-nonce",
        ),
    )
