"""The Redis clients one node opens: three, one policy, all closed at shutdown (issue 12).

The broker's commands, its pub/sub connection, and one client the idempotency store,
the nonce store and presence share; each built by streamgate.brokers.redis_connect.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from streamgate.brokers.backends import open_backends
from streamgate.config import Config
from streamgate.core.publication import Publication, StreamPosition

from support import UNIT
from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

pytestmark = pytest.mark.redis

WAIT = 10.0 * UNIT


class _Ignore:
    def deliver(self, channel: str, pubs: Sequence[Publication]) -> None: ...

    def lost(self, channel: str, position: StreamPosition) -> None: ...


async def _names(node: str) -> list[str]:
    """The client names of ``node``'s open connections, sorted (one per connection)."""
    admin = Redis.from_url(REDIS_URL)
    try:
        listed = await admin.client_list()
    finally:
        await admin.aclose()
    return sorted(c["name"] for c in listed if c.get("name", "").startswith(f"streamgate-{node}"))


async def test_a_node_opens_three_redis_clients_and_closes_them_all() -> None:
    await ensure_redis()
    prefix = f"sgtest-clients-{secrets.token_hex(4)}:"
    node = f"clients-{secrets.token_hex(4)}"
    config = Config(broker="redis", redis_url=REDIS_URL, redis_prefix=prefix, redis_timeout=WAIT)
    backends = open_backends(config, node)
    nonces = backends.nonces
    assert nonces is not None
    try:
        await backends.broker.start(_Ignore())
        await backends.presence.start()
        # Each store used at once: a client of its own would show as a connection each.
        await asyncio.gather(
            backends.idempotency.claim(["k"]),
            nonces.claim(["n"]),
            backends.presence.acquire("g:", "g:m", 1),
            backends.broker.subscribe("trade/0xc1"),
        )
        names = set(await _names(node))
        assert names == {f"streamgate-{node}", f"streamgate-{node}-sub", f"streamgate-{node}-state"}
    finally:
        await backends.close()
        await backends.broker.close()
        deadline = time.monotonic() + WAIT
        while (left := await _names(node)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await delete_prefix(prefix)
    assert left == []
