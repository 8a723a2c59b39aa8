"""PushClient against a real gateway: minted tickets, resume by offset, a fresh ticket on 4001."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from streamgate.client import AuthError, Backoff, Event, Reconnected
from streamgate.client.push import PushClient, mint_ticket
from streamgate.server.app import Gateway

from support import UNIT, base_url, publish_ok, running_gateway

WAIT = 10.0 * UNIT
FAST = Backoff(initial=0.05, maximum=0.2)


def deposit(sub_user: str, n: int) -> dict[str, Any]:
    data = {"depositId": f"d{n}", "chain": "ETH", "token": "USDC", "txHash": None}
    return {
        "event": "deposit.pending",
        "tenant": "acme",
        "sub_user": sub_user,
        "data": {**data, "amountWei": str(n)},
    }


async def take(items: Any, count: int) -> tuple[list[Event], list[Reconnected]]:
    """The next ``count`` events, and the Reconnected items among them, within WAIT."""
    events: list[Event] = []
    reconnects: list[Reconnected] = []
    async with asyncio.timeout(WAIT):
        while len(events) < count:
            item = await items.__anext__()
            if isinstance(item, Event):
                events.append(item)
            elif isinstance(item, Reconnected):
                reconnects.append(item)
    return events, reconnects


def cut(client: PushClient) -> None:
    """Drop the client's TCP connection under it (no close handshake)."""
    assert client._ws is not None
    client._ws.transport.abort()


async def test_push_client_resumes_and_mints_a_fresh_ticket_on_4001(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, push_ticket_ttl=2, jwt_leeway=0) as gw:
        key, _ = gw.api_keys.create("acme")
        client = PushClient(base_url(gw), api_key=key, sub_user="alice", backoff=FAST)
        async with client:
            assert client.user_id == "alice"
            items = aiter(client)
            await publish_ok(gw, [deposit("alice", 1), deposit("bob", 9), deposit("alice", 2)])
            first, _ = await take(items, 2)
            assert [e.topic for e in first] == ["deposit.pending"] * 2
            assert [e.data["depositId"] for e in first] == ["d1", "d2"]
            minted = client.ticket

            cut(client)
            await publish_ok(gw, [deposit("alice", 3), deposit("alice", 4)])
            again, reconnects = await take(items, 2)
            assert [e.data["depositId"] for e in again] == ["d3", "d4"]  # once each
            assert reconnects == [Reconnected(1, True, ())]

            # Past the ticket's exp the gateway closes a new socket with 4001: a fresh one.
            until = time.time() + 3.0
            while time.time() < until:
                await asyncio.sleep(0.1)
            cut(client)
            await publish_ok(gw, [deposit("alice", 5)])
            last, reconnects = await take(items, 1)
            assert [e.data["depositId"] for e in last] == ["d5"]
            assert client.ticket != minted
            assert [r.recovered for r in reconnects] == [True]


async def test_refused_key_and_ticket_are_auth_errors(gw: Gateway) -> None:
    with pytest.raises(AuthError) as bad_key:
        await mint_ticket(base_url(gw), "sk_nope", "alice")
    assert bad_key.value.code == "INVALID_API_KEY"
    with pytest.raises(AuthError) as bad_ticket:
        await PushClient(base_url(gw), ticket="not.a.jwt").connect()
    assert bad_ticket.value.code == "4001"
    key, _ = gw.api_keys.create("acme")
    ticket = await mint_ticket(base_url(gw), key, "bob")
    async with PushClient(base_url(gw), ticket=ticket) as client:
        assert client.user_id == "bob"
