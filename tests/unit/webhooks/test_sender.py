"""The webhook Dispatcher (streamgate/webhooks/sender.py) against a real receiver.

Real HTTP to a receiver on 127.0.0.1 (tests/support/webhook_receiver.py) and a real SQLite
outbox in ``tmp_path``; the clock is the test's own, so a retry falls due when the test
moves it, never by waiting. Signatures are checked by recomputing them here, from the
Standard Webhooks rule, not with the gateway's signing module.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from streamgate.webhooks.model import Attempt, Endpoint, OutboxMessage, WebhookStore
from streamgate.webhooks.sender import Dispatcher
from streamgate.webhooks.signing import new_message_id, new_secret
from streamgate.webhooks.store import open_store

from support import UNIT
from support.webhook_receiver import Receiver

NOW = 1_700_000_000.0
TENANT = "acme"
BODY = b'{"type":"deposit.completed","data":{"amount":"1.50"}}'
WAIT = 5.0 * UNIT


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    store: WebhookStore
    clock: Clock
    receiver: Receiver
    dispatcher: Dispatcher
    endpoint: Endpoint

    async def send(self, name: str = "hook") -> str:
        """Enqueue one message to the endpoint and wake the dispatcher; its id."""
        message_id = new_message_id()
        message = OutboxMessage(
            message_id, TENANT, "deposit.completed", self.clock.now, BODY, (self.endpoint.id,)
        )
        assert await self.store.enqueue([message]) == 1
        self.dispatcher.wake()
        return message_id

    async def attempts(self, message_id: str, count: int) -> list[Attempt]:
        """Wait until the message has ``count`` attempts recorded; return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while len(got := await self.store.attempts(TENANT, message_id)) < count:
            assert loop.time() < deadline, f"{len(got)} of {count} attempts: {got}"
            await asyncio.sleep(0.01)
        return got

    async def current(self) -> Endpoint:
        found = await self.store.endpoint(self.endpoint.id)
        assert found is not None
        return found


Script = Callable[[str, int], tuple[int, dict[str, str], float]]


def always(status: int, headers: dict[str, str] | None = None, delay: float = 0) -> Script:
    return lambda path, n: (status, headers or {}, delay)


def answers(*replies: int) -> Script:
    """The n-th request is answered ``replies[n]`` (the last one from then on)."""
    return lambda path, n: (replies[min(n, len(replies) - 1)], {}, 0)


@asynccontextmanager
async def rigged(
    tmp_path: Path,
    script: Script | None = None,
    *,
    schedule: tuple[float, ...] = (10.0, 20.0),
    allow_private: bool = True,
    delivery_timeout: float = WAIT,
) -> AsyncIterator[Rig]:
    """A dispatcher running on a fresh outbox, one endpoint on a receiver of its own."""
    clock = Clock()
    store = open_store(tmp_path, None, clock=clock)
    receiver = await Receiver(script=script or always(200)).start()
    running: asyncio.Task[None] | None = None
    try:
        endpoint = await store.create_endpoint(TENANT, receiver.url("hook"), None, new_secret())
        dispatcher = Dispatcher(
            store,
            node="unit",
            allow_private=allow_private,
            schedule=schedule,
            poll=0.02 * UNIT,
            timeout=delivery_timeout,
            clock=clock,
            rng=random.Random(3),
        )
        running = asyncio.create_task(dispatcher.run())
        yield Rig(store, clock, receiver, dispatcher, endpoint)
    finally:
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        await receiver.stop()
        await store.close()


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: v1, base64 HMAC-SHA256 of ``id.timestamp.body``, keyed by the
    secret's base64 part."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def test_a_delivery_is_the_exact_body_signed_with_the_endpoint_secret(
    tmp_path: Path,
) -> None:
    async with rigged(tmp_path) as rig:
        message_id = await rig.send()
        [got] = await rig.receiver.wait_for("hook", 1, WAIT)
        assert got.body == BODY
        assert got.headers["webhook-id"] == message_id
        assert got.headers["webhook-timestamp"] == str(int(NOW))
        assert got.headers["content-type"] == "application/json"
        assert got.headers["webhook-signature"] == expected_signature(
            rig.endpoint.secret, message_id, str(int(NOW)), BODY
        )
        [attempt] = await rig.attempts(message_id, 1)
        assert (attempt.status_code, attempt.error) == (200, None)
        [info] = await rig.store.messages(TENANT, since=None, limit=10)
        assert (info.pending, info.succeeded, info.failed) == (0, 1, 0)


async def test_during_a_rotation_both_secrets_sign(tmp_path: Path) -> None:
    async with rigged(tmp_path) as rig:
        old = rig.endpoint.secret
        new = new_secret()
        await rig.store.rotate_secret(rig.endpoint.id, new, NOW + 3600)
        message_id = await rig.send()
        [got] = await rig.receiver.wait_for("hook", 1, WAIT)
        ts = str(int(NOW))
        assert got.headers["webhook-signature"].split(" ") == [
            expected_signature(new, message_id, ts, BODY),
            expected_signature(old, message_id, ts, BODY),
        ]
        rig.clock.now = NOW + 3601  # the overlap is over: the new secret alone signs
        second = await rig.send()
        [_, later] = await rig.receiver.wait_for("hook", 2, WAIT)
        assert later.headers["webhook-signature"] == expected_signature(
            new, second, str(int(NOW + 3601)), BODY
        )


async def test_a_failed_attempt_is_retried_on_schedule_with_the_same_id_and_body(
    tmp_path: Path,
) -> None:
    async with rigged(tmp_path, answers(500, 200), schedule=(10.0,)) as rig:
        message_id = await rig.send()
        [failed] = await rig.attempts(message_id, 1)
        assert (failed.status_code, failed.error) == (500, "HTTP 500")
        assert (await rig.current()).failing_since == NOW
        rig.clock.now = NOW + 12  # past 10 s + 10 % jitter: due again
        rig.dispatcher.wake()
        first, second = await rig.receiver.wait_for("hook", 2, WAIT)
        assert (first.body, second.body) == (BODY, BODY)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == message_id
        assert second.headers["webhook-timestamp"] == str(int(NOW + 12))  # signed anew
        _, ok = await rig.attempts(message_id, 2)
        assert (ok.status_code, ok.error) == (200, None)
        assert (await rig.current()).failing_since is None


async def test_a_retry_after_longer_than_the_schedule_is_honoured(tmp_path: Path) -> None:
    async with rigged(tmp_path, always(503, {"Retry-After": "120"}), schedule=(1.0,)) as rig:
        message_id = await rig.send()
        [attempt] = await rig.attempts(message_id, 1)
        assert attempt.status_code == 503
    # The dispatcher has stopped: ask the outbox when the delivery is due again.
    store = open_store(tmp_path, None, clock=Clock())
    try:
        assert await store.claim_due(NOW + 119, limit=9, lease=9, node="p", per_endpoint=4) == []
        [due] = await store.claim_due(NOW + 121, limit=9, lease=9, node="p", per_endpoint=4)
        assert (due.message_id, due.attempts) == (message_id, 1)
    finally:
        await store.close()


async def test_410_gone_disables_the_endpoint_and_ends_the_delivery(tmp_path: Path) -> None:
    async with rigged(tmp_path, always(410)) as rig:
        message_id = await rig.send()
        [attempt] = await rig.attempts(message_id, 1)
        assert (attempt.status_code, attempt.error) == (410, "HTTP 410")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while (endpoint := await rig.current()).enabled:
            assert loop.time() < deadline, "the endpoint was not disabled"
            await asyncio.sleep(0.01)
        assert endpoint.disabled_reason == "410 Gone"
        [info] = await rig.store.messages(TENANT, since=None, limit=10)
        assert (info.pending, info.failed) == (0, 1)


async def test_an_exhausted_schedule_fails_the_delivery_for_good(tmp_path: Path) -> None:
    async with rigged(tmp_path, always(500), schedule=()) as rig:
        message_id = await rig.send()
        await rig.attempts(message_id, 1)
        [info] = await rig.store.messages(TENANT, since=None, limit=10)
        assert (info.pending, info.succeeded, info.failed) == (0, 0, 1)
        assert (await rig.current()).enabled  # one failure does not disable


async def test_a_slow_endpoint_times_out_and_is_retried_later(tmp_path: Path) -> None:
    async with rigged(tmp_path, always(200, delay=2.0 * UNIT), delivery_timeout=0.2 * UNIT) as rig:
        message_id = await rig.send()
        [attempt] = await rig.attempts(message_id, 1)
        assert attempt.status_code is None
        assert attempt.error == f"timeout after {0.2 * UNIT:g} s"
        [info] = await rig.store.messages(TENANT, since=None, limit=10)
        assert info.pending == 1


async def test_a_private_address_is_refused_without_a_request(tmp_path: Path) -> None:
    async with rigged(tmp_path, allow_private=False) as rig:
        message_id = await rig.send()
        [attempt] = await rig.attempts(message_id, 1)
        assert attempt.status_code is None
        assert attempt.error is not None and attempt.error.startswith("refused target: ")
        assert rig.receiver.received == []
