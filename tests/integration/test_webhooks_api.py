"""The /webhooks management, visibility and replay routes over real HTTP (issue 6).

WebhooksApi is not wired into the gateway yet: each test mounts it on a running gateway's
router itself, over a SQLite outbox in the gateway's data directory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamgate.client.http import HttpClient, HttpResult
from streamgate.server.app import Gateway
from streamgate.server.webhooks_api import DEFAULT_OVERLAP, MAX_OVERLAP, WebhooksApi
from streamgate.webhooks.body import webhook_body
from streamgate.webhooks.signing import new_message_id, secret_key
from streamgate.webhooks.store import Attempt, OutboxMessage, SqliteWebhookStore

from support import base_url, running_gateway

PUBLIC_URL = "https://8.8.8.8/hooks"  # an IP literal: checked without DNS
OWN = "<the tenant's own key>"
NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z, the API's clock in these tests


async def raw_request(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str]
) -> HttpResult:
    """One HTTP/1.1 request written byte for byte (``Connection: close``), its answer read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
        lines += [f"{k}: {v}" for k, v in {**headers, "content-length": str(len(body))}.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    found = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return HttpResult(int(status_line.split()[1]), found, content)


@dataclass
class Env:
    gw: Gateway
    store: SqliteWebhookStore
    client: HttpClient
    key: str
    wakes: list[int]

    async def call(
        self,
        method: str,
        path: str,
        doc: Any = None,
        *,
        key: str | None = OWN,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {} if key is None else {"api-key": self.key if key == OWN else key}
        body = raw if raw is not None else b"" if doc is None else orjson.dumps(doc)
        if body:
            headers["content-type"] = "application/json"
        if key is not None and not key.strip():
            # A blank header value, which HTTP clients refuse to send: written by hand.
            result = await raw_request(self.gw.port, method, path, body, headers)
        else:
            result = await self.client.request(method, path, body=body, headers=headers)
        answer: dict[str, Any] = result.json()
        assert answer["requestId"].startswith("req_"), answer
        if result.status < 300:
            assert answer["success"] is True and "error" not in answer, answer
        else:
            assert answer["success"] is False and "data" not in answer, answer
            assert answer["error"]["code"] == result.status, answer
        return result.status, answer

    async def ok(self, method: str, path: str, doc: Any = None, status: int = 200) -> Any:
        got, answer = await self.call(method, path, doc)
        assert got == status, answer
        return answer["data"]

    async def refused(
        self, method: str, path: str, doc: Any = None, *, key: str | None = OWN
    ) -> tuple[int, str, str]:
        status, answer = await self.call(method, path, doc, key=key)
        assert status >= 400, answer
        error = answer["error"]
        return status, error["key"], error["message"]

    async def create(self, url: str = PUBLIC_URL, event_types: Any = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"url": url}
        if event_types is not None:
            doc["eventTypes"] = event_types
        created: dict[str, Any] = await self.ok("POST", "/webhooks", doc, status=201)
        return created


@asynccontextmanager
async def webhooks_gateway(
    tmp_path: Path, *, allow_private: bool = False, **api: Any
) -> AsyncIterator[Env]:
    wakes: list[int] = []
    async with running_gateway(tmp_path) as gw:
        store = SqliteWebhookStore.in_data_dir(tmp_path)
        WebhooksApi(
            gw.api_keys,
            store,
            allow_private=allow_private,
            clock=lambda: NOW,
            wake=lambda: wakes.append(1),
            **api,
        ).mount(gw.router)
        key, _ = gw.api_keys.create("acme")
        client = HttpClient(base_url(gw))
        try:
            yield Env(gw, store, client, key, wakes)
        finally:
            await client.close()
            await store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with webhooks_gateway(tmp_path) as e:
        yield e


def iso(ts: float) -> str:
    when = datetime.fromtimestamp(ts, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def message(tenant: str, event_type: str, at: float, endpoints: Sequence[str]) -> OutboxMessage:
    msg_id = new_message_id()
    return OutboxMessage(
        message_id=msg_id,
        tenant=tenant,
        event_type=event_type,
        created_at=at,
        body=webhook_body(msg_id, event_type, iso(at), {"n": 1}, "alice"),
        endpoint_ids=tuple(endpoints),
    )


async def fail_once(store: SqliteWebhookStore, *, outcome: Any = "failed") -> None:
    """Lease every due delivery and record one failed attempt (HTTP 500) for each."""
    now = time.time() + 10
    for delivery in await store.claim_due(now, limit=100, lease=30, node="t", per_endpoint=100):
        attempt = Attempt(
            delivery.id, delivery.message_id, delivery.endpoint_id, now, 500, 12.5, "HTTP 500"
        )
        await store.record(
            delivery,
            attempt,
            outcome=outcome,
            next_attempt_at=now + 30 if outcome == "retry" else None,
        )


# -- endpoints ------------------------------------------------------------------------


async def test_create_shows_the_secret_once_and_never_again(env: Env) -> None:
    created = await env.create(event_types=["deposit.*", "trade.completed", "deposit.*"])
    assert created["id"].startswith("ep_")
    assert created["url"] == PUBLIC_URL
    assert created["eventTypes"] == ["deposit.*", "trade.completed"]  # repeats dropped
    assert created["enabled"] is True
    assert created["secret"].startswith("whsec_")
    assert len(secret_key(created["secret"])) == 32
    assert created["failingSince"] is None and created["disabledReason"] is None
    datetime.fromisoformat(created["createdAt"])  # ISO-8601

    listed = await env.ok("GET", "/webhooks")
    one = await env.ok("GET", f"/webhooks/{created['id']}")
    view = {k: v for k, v in created.items() if k != "secret"}
    assert listed == [view]
    assert one == view
    raw = await env.client.request("GET", "/webhooks", headers={"api-key": env.key})
    assert b"whsec_" not in raw.body and b"secret" not in raw.body.lower()

    stored = await env.store.get_endpoint("acme", created["id"])
    assert stored is not None and stored.secret == created["secret"]


@pytest.mark.parametrize("event_types", [None, [], "null"])
async def test_no_event_types_means_every_event(env: Env, event_types: Any) -> None:
    doc: dict[str, Any] = {"url": PUBLIC_URL}
    if event_types == "null":
        doc["eventTypes"] = None
    elif event_types is not None:
        doc["eventTypes"] = event_types
    created = await env.ok("POST", "/webhooks", doc, status=201)
    assert created["eventTypes"] is None


PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://10.0.0.1/hook",
    "http://localhost:9999/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://192.168.1.10/hook",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_loopback_and_private_targets_are_refused(env: Env, url: str) -> None:
    status, key, msg = await env.refused("POST", "/webhooks", {"url": url})
    assert (status, key) == (400, "VALIDATION_ERROR")
    assert msg.startswith("url"), msg
    assert await env.ok("GET", "/webhooks") == []


async def test_private_targets_are_accepted_when_allowed(tmp_path: Path) -> None:
    async with webhooks_gateway(tmp_path, allow_private=True) as env:
        for url in PRIVATE_URLS:
            created = await env.create(url)
            assert created["url"] == url
        assert len(await env.ok("GET", "/webhooks")) == len(PRIVATE_URLS)
        # The URL's form is still checked.
        _, key, msg = await env.refused("POST", "/webhooks", {"url": "http://127.1/"})
        assert key == "VALIDATION_ERROR" and "dotted quad" in msg


async def test_names_are_resolved_and_every_address_checked(tmp_path: Path) -> None:
    answers = {
        "public.example.test": ["93.184.215.14"],
        "rebind.example.test": ["93.184.215.14", "10.1.2.3"],
    }

    async def resolver(host: str, port: int) -> list[str]:
        if host == "slow.example.test":
            await asyncio.sleep(5)
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    async with webhooks_gateway(tmp_path, resolver=resolver, resolve_timeout=0.2) as env:
        created = await env.create("https://public.example.test/hook")
        assert created["url"] == "https://public.example.test/hook"
        _, key, msg = await env.refused(
            "POST", "/webhooks", {"url": "https://rebind.example.test/"}
        )
        assert key == "VALIDATION_ERROR" and "10.1.2.3" in msg and msg.startswith("url")
        _, key, msg = await env.refused("POST", "/webhooks", {"url": "https://nx.example.test/"})
        assert key == "VALIDATION_ERROR" and "cannot resolve" in msg
        _, key, msg = await env.refused("POST", "/webhooks", {"url": "https://slow.example.test/"})
        assert key == "VALIDATION_ERROR" and "did not resolve within" in msg
        assert len(await env.ok("GET", "/webhooks")) == 1


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({}, "url"),
        ({"url": 5}, "url"),
        ({"url": ""}, "url"),
        ({"url": "ftp://8.8.8.8/hook"}, "url scheme"),
        ({"url": "https://user:pw@8.8.8.8/hook"}, "url"),
        ({"url": "https://8.8.8.8/a b"}, "url"),
        ({"url": PUBLIC_URL, "eventTypes": "deposit.completed"}, "eventTypes"),
        ({"url": PUBLIC_URL, "eventTypes": ["nope.event"]}, "eventTypes"),
        ({"url": PUBLIC_URL, "eventTypes": [1]}, "eventTypes"),
        ({"url": PUBLIC_URL, "eventTypes": {"a": 1}}, "eventTypes"),
        ({"url": PUBLIC_URL, "eventType": ["trade.*"]}, "'eventType'"),
        ([PUBLIC_URL], "JSON object"),
    ],
)
async def test_bad_create_bodies_name_the_field(env: Env, doc: Any, field: str) -> None:
    status, key, msg = await env.refused("POST", "/webhooks", doc)
    assert (status, key) == (400, "VALIDATION_ERROR")
    assert field in msg, msg
    assert await env.ok("GET", "/webhooks") == []


async def test_malformed_json_is_a_validation_error(env: Env) -> None:
    status, answer = await env.call("POST", "/webhooks", raw=b"{not json")
    assert status == 400
    assert answer["error"]["key"] == "VALIDATION_ERROR"
    assert "JSON object" in answer["error"]["message"]


async def test_another_tenants_endpoint_is_not_found(env: Env) -> None:
    mine = await env.create()
    other, _ = env.gw.api_keys.create("globex")
    theirs_status, theirs = await env.call("POST", "/webhooks", {"url": PUBLIC_URL}, key=other)
    assert theirs_status == 201
    ep = mine["id"]
    for method, path, doc in [
        ("GET", f"/webhooks/{ep}", None),
        ("PATCH", f"/webhooks/{ep}", {"enabled": False}),
        ("DELETE", f"/webhooks/{ep}", None),
        ("POST", f"/webhooks/{ep}/rotate-secret", {}),
        ("POST", f"/webhooks/{ep}/recover", {"since": 0}),
    ]:
        status, key, _ = await env.refused(method, path, doc, key=other)
        assert (status, key) == (404, "NOT_FOUND"), (method, path)
    status, answer = await env.call("GET", "/webhooks", key=other)
    assert [e["id"] for e in answer["data"]] == [theirs["data"]["id"]]
    # Untouched by the other tenant.
    assert await env.ok("GET", f"/webhooks/{ep}") == {
        k: v for k, v in mine.items() if k != "secret"
    }
    stored = await env.store.get_endpoint("acme", ep)
    assert stored is not None and stored.secret == mine["secret"]
    # Nor can acme resend its own message to globex's endpoint.
    msg = message("acme", "deposit.completed", NOW, [ep])
    await env.store.enqueue([msg])
    status, key, _ = await env.refused(
        "POST",
        f"/webhooks/messages/{msg.message_id}/resend",
        {"endpointId": theirs["data"]["id"]},
    )
    assert (status, key) == (404, "NOT_FOUND")
    # globex sees none of acme's messages.
    status, answer = await env.call("GET", "/webhooks/messages", key=other)
    assert answer["data"] == []
    status, key, _ = await env.refused(
        "POST", f"/webhooks/messages/{msg.message_id}/resend", {}, key=other
    )
    assert (status, key) == (404, "NOT_FOUND")
    status, answer = await env.call(
        "GET", f"/webhooks/messages/{msg.message_id}/attempts", key=other
    )
    assert (status, answer["data"]) == (200, [])


async def test_delete(env: Env) -> None:
    keep = await env.create()
    gone = await env.create()
    msg = message("acme", "trade.completed", NOW, [gone["id"]])
    await env.store.enqueue([msg])
    assert await env.ok("DELETE", f"/webhooks/{gone['id']}") == {"id": gone["id"], "deleted": True}
    assert await env.refused("GET", f"/webhooks/{gone['id']}") == (
        404,
        "NOT_FOUND",
        f"no webhook endpoint {gone['id']!r}",
    )
    status, key, _ = await env.refused("DELETE", f"/webhooks/{gone['id']}")
    assert (status, key) == (404, "NOT_FOUND")
    assert [e["id"] for e in await env.ok("GET", "/webhooks")] == [keep["id"]]
    # Its pending delivery was canceled.
    [listed] = await env.ok("GET", "/webhooks/messages")
    assert (listed["pending"], listed["succeeded"], listed["failed"]) == (0, 0, 0)


async def test_patch_enabled(env: Env) -> None:
    ep = (await env.create())["id"]
    off = await env.ok("PATCH", f"/webhooks/{ep}", {"enabled": False})
    assert off["enabled"] is False and off["disabledReason"] == "disabled by the tenant"
    assert (await env.ok("GET", f"/webhooks/{ep}")) == off
    assert env.wakes == []
    on = await env.ok("PATCH", f"/webhooks/{ep}", {"enabled": True})
    assert on["enabled"] is True and on["disabledReason"] is None
    assert env.wakes == [1]  # re-enabled: deliveries may be due at once
    # Enabling an enabled endpoint changes nothing, not even failingSince (the 72 h rule).
    await env.store.enqueue([message("acme", "trade.completed", NOW, [ep])])
    await fail_once(env.store, outcome="retry")
    failing = await env.ok("GET", f"/webhooks/{ep}")
    assert failing["failingSince"] is not None
    assert await env.ok("PATCH", f"/webhooks/{ep}", {"enabled": True}) == failing


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({}, "enabled"),
        ({"enabled": "no"}, "enabled"),
        ({"enabled": 0}, "enabled"),
        ({"eventTypes": ["trade.*"]}, "eventTypes"),
        ({"enabled": True, "eventTypes": None}, "eventTypes"),
        ({"url": PUBLIC_URL}, "'url'"),
    ],
)
async def test_bad_patches_name_the_field(env: Env, doc: Any, field: str) -> None:
    ep = (await env.create())["id"]
    status, key, msg = await env.refused("PATCH", f"/webhooks/{ep}", doc)
    assert (status, key) == (400, "VALIDATION_ERROR")
    assert field in msg, msg
    assert (await env.ok("GET", f"/webhooks/{ep}"))["enabled"] is True


async def test_rotate_secret_shows_the_new_one_once_and_keeps_the_old_for_the_overlap(
    env: Env,
) -> None:
    created = await env.create()
    ep = created["id"]
    rotated = await env.ok("POST", f"/webhooks/{ep}/rotate-secret")
    assert set(rotated) == {"id", "secret"} and rotated["id"] == ep
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    stored = await env.store.get_endpoint("acme", ep)
    assert stored is not None
    assert stored.secret == rotated["secret"]
    assert stored.previous_secret == created["secret"]
    assert stored.previous_secret_until == NOW + DEFAULT_OVERLAP
    raw = await env.client.request("GET", f"/webhooks/{ep}", headers={"api-key": env.key})
    assert b"whsec_" not in raw.body

    again = await env.ok("POST", f"/webhooks/{ep}/rotate-secret", {"overlapSeconds": 0})
    stored = await env.store.get_endpoint("acme", ep)
    assert stored is not None and stored.secret == again["secret"] != rotated["secret"]
    assert stored.previous_secret == rotated["secret"] and stored.previous_secret_until == NOW
    await env.ok("POST", f"/webhooks/{ep}/rotate-secret", {"overlapSeconds": MAX_OVERLAP})
    stored = await env.store.get_endpoint("acme", ep)
    assert stored is not None and stored.previous_secret_until == NOW + MAX_OVERLAP


@pytest.mark.parametrize("overlap", [-1, MAX_OVERLAP + 1, "60", 1.5, True, None])
async def test_bad_overlaps_are_refused(env: Env, overlap: Any) -> None:
    created = await env.create()
    status, key, msg = await env.refused(
        "POST", f"/webhooks/{created['id']}/rotate-secret", {"overlapSeconds": overlap}
    )
    assert (status, key) == (400, "VALIDATION_ERROR") and "overlapSeconds" in msg
    stored = await env.store.get_endpoint("acme", created["id"])
    assert stored is not None and stored.secret == created["secret"]


async def test_unknown_endpoint_is_not_found(env: Env) -> None:
    for method, path, doc in [
        ("GET", "/webhooks/ep_nope", None),
        ("PATCH", "/webhooks/ep_nope", {"enabled": False}),
        ("DELETE", "/webhooks/ep_nope", None),
        ("POST", "/webhooks/ep_nope/rotate-secret", {}),
        ("POST", "/webhooks/ep_nope/recover", {"since": 0}),
    ]:
        status, key, _ = await env.refused(method, path, doc)
        assert (status, key) == (404, "NOT_FOUND"), (method, path)


async def test_unknown_paths_and_methods(env: Env) -> None:
    ep = (await env.create())["id"]
    for path in [
        "/webhooks/",
        f"/webhooks/{ep}/nope",
        "/webhooks/messages/m/nope",
        "/webhooks/a/b/c",
    ]:
        status, key, _ = await env.refused("GET", path)
        assert (status, key) == (404, "NOT_FOUND"), path
    result = await env.client.request(
        "GET", f"/webhooks/{ep}/recover", headers={"api-key": env.key}
    )
    assert result.status == 405 and result.headers["allow"] == "POST"
    assert result.json()["error"]["key"] == "METHOD_NOT_ALLOWED"
    # No key: the API key is checked before anything is said about the path.
    status, key, _ = await env.refused("GET", f"/webhooks/{ep}/nope", key=None)
    assert (status, key) == (401, "MISSING_API_KEY")


# -- visibility and replay -----------------------------------------------------------------


async def test_an_empty_outbox(env: Env) -> None:
    ep = (await env.create())["id"]
    assert await env.ok("GET", "/webhooks/messages") == []
    assert await env.ok("GET", "/webhooks/messages?since=0&limit=1000") == []
    assert await env.ok("GET", "/webhooks/messages/msg_nope/attempts") == []
    status, key, _ = await env.refused("POST", "/webhooks/messages/msg_nope/resend")
    assert (status, key) == (404, "NOT_FOUND")
    assert await env.ok("POST", f"/webhooks/{ep}/recover", {"since": 0}, status=202) == {
        "queued": 0
    }
    assert env.wakes == []


async def test_messages_attempts_resend_recover(env: Env) -> None:
    every = (await env.create())["id"]
    trades = (await env.create(event_types=["trade.*"]))["id"]
    t0 = time.time() - 60
    m1 = message("acme", "deposit.completed", t0, [every])
    m2 = message("acme", "trade.completed", t0 + 1, [every, trades])
    assert await env.store.enqueue([m1, m2]) == 3

    listed = await env.ok("GET", "/webhooks/messages")
    assert listed == [
        {
            "id": m1.message_id,
            "type": "deposit.completed",
            "createdAt": iso(t0),
            "pending": 1,
            "succeeded": 0,
            "failed": 0,
        },
        {
            "id": m2.message_id,
            "type": "trade.completed",
            "createdAt": iso(t0 + 1),
            "pending": 2,
            "succeeded": 0,
            "failed": 0,
        },
    ]
    assert await env.ok("GET", f"/webhooks/messages?since={t0 + 0.5}") == listed[1:]
    assert await env.ok("GET", f"/webhooks/messages?since={iso(t0 + 0.5)}") == listed[1:]
    # "+00:00" unencoded in a query string arrives as " 00:00"; still understood.
    offset = datetime.fromtimestamp(t0 + 0.5, tz=UTC).isoformat()
    assert "+00:00" in offset
    assert await env.ok("GET", f"/webhooks/messages?since={offset}") == listed[1:]
    assert await env.ok("GET", "/webhooks/messages?limit=1") == listed[:1]
    assert await env.ok("GET", f"/webhooks/messages?since={int(t0) + 3600}") == []

    assert await env.ok("GET", f"/webhooks/messages/{m1.message_id}/attempts") == []
    await fail_once(env.store)
    attempts = await env.ok("GET", f"/webhooks/messages/{m1.message_id}/attempts")
    assert len(attempts) == 1
    [attempt] = attempts
    assert attempt["endpointId"] == every
    assert (attempt["statusCode"], attempt["latencyMs"], attempt["error"]) == (
        500,
        12.5,
        "HTTP 500",
    )
    datetime.fromisoformat(attempt["at"])
    assert len(await env.ok("GET", f"/webhooks/messages/{m2.message_id}/attempts")) == 2
    states = [(m["pending"], m["failed"]) for m in await env.ok("GET", "/webhooks/messages")]
    assert states == [(0, 1), (0, 2)]

    # Resend: to every endpoint the message went to, or to one.
    path = f"/webhooks/messages/{m2.message_id}/resend"
    assert await env.ok("POST", path, status=202) == {"queued": 2}
    assert env.wakes == [1]
    assert await env.ok("POST", path, {"endpointId": trades}, status=202) == {"queued": 1}
    assert await env.ok("POST", f"/webhooks/messages/{m1.message_id}/resend", {}, status=202) == {
        "queued": 1
    }
    assert len(env.wakes) == 3
    states = [(m["pending"], m["failed"]) for m in await env.ok("GET", "/webhooks/messages")]
    assert states == [(1, 1), (3, 2)]
    status, key, _ = await env.refused("POST", path, {"endpointId": "ep_nope"})
    assert (status, key) == (404, "NOT_FOUND")

    # Recover: every message since a time that the endpoint's filter takes.
    late_all = (await env.create())["id"]
    late_trades = (await env.create(event_types=["trade.completed"]))["id"]
    recover = f"/webhooks/{late_all}/recover"
    assert await env.ok("POST", recover, {"since": iso(t0)}, status=202) == {"queued": 2}
    assert await env.ok("POST", recover, {"since": t0}, status=202) == {"queued": 0}  # pending
    assert await env.ok(
        "POST", f"/webhooks/{late_trades}/recover", {"since": str(t0 - 1)}, status=202
    ) == {"queued": 1}
    assert await env.ok(
        "POST", f"/webhooks/{late_trades}/recover", {"since": int(t0) + 3600}, status=202
    ) == {"queued": 0}
    assert len(env.wakes) == 5  # only when something was queued


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=-5", "since"),
        ("since=nan", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
    ],
)
async def test_bad_message_queries_name_the_field(env: Env, query: str, field: str) -> None:
    status, key, msg = await env.refused("GET", f"/webhooks/messages?{query}")
    assert (status, key) == (400, "VALIDATION_ERROR")
    assert msg.startswith(field), msg


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({}, "since"),
        ({"since": "last week"}, "since"),
        ({"since": True}, "since"),
        ({"since": -1}, "since"),
        ({"since": None}, "since"),
        ({"since": 0, "until": 5}, "'until'"),
    ],
)
async def test_bad_recover_bodies_name_the_field(env: Env, doc: Any, field: str) -> None:
    ep = (await env.create())["id"]
    status, key, msg = await env.refused("POST", f"/webhooks/{ep}/recover", doc)
    assert (status, key) == (400, "VALIDATION_ERROR")
    assert field in msg, msg


@pytest.mark.parametrize("doc", [{"endpointId": 5}, {"endpointId": ""}, {"endpoint": "ep_x"}])
async def test_bad_resend_bodies_are_refused(env: Env, doc: Any) -> None:
    ep = (await env.create())["id"]
    msg = message("acme", "trade.completed", NOW, [ep])
    await env.store.enqueue([msg])
    path = f"/webhooks/messages/{msg.message_id}/resend"
    status, key, text = await env.refused("POST", path, doc)
    assert (status, key) == (400, "VALIDATION_ERROR") and "endpoint" in text
    assert env.wakes == []


# -- the api-key -------------------------------------------------------------------------

ROUTES = [
    ("POST", "/webhooks", {"url": PUBLIC_URL}),
    ("GET", "/webhooks", None),
    ("GET", "/webhooks/{ep}", None),
    ("PATCH", "/webhooks/{ep}", {"enabled": False}),
    ("DELETE", "/webhooks/{ep}", None),
    ("POST", "/webhooks/{ep}/rotate-secret", {}),
    ("POST", "/webhooks/{ep}/recover", {"since": 0}),
    ("GET", "/webhooks/messages", None),
    ("GET", "/webhooks/messages/{msg}/attempts", None),
    ("POST", "/webhooks/messages/{msg}/resend", {}),
]


@pytest.mark.parametrize(("method", "path", "doc"), ROUTES)
async def test_every_api_key_error_on_every_route(
    env: Env, method: str, path: str, doc: Any
) -> None:
    created = await env.create()
    msg = message("acme", "trade.completed", NOW, [created["id"]])
    await env.store.enqueue([msg])
    target = path.format(ep=created["id"], msg=msg.message_id)
    revoked, _ = env.gw.api_keys.create("acme")
    env.gw.api_keys.revoke(revoked)
    for key, expected in [
        (None, "MISSING_API_KEY"),
        ("   ", "MISSING_API_KEY"),
        ("sgk_not-a-key", "INVALID_API_KEY"),
        (revoked, "API_KEY_REVOKED"),
    ]:
        status, error, message_text = await env.refused(method, target, doc, key=key)
        assert (status, error) == (401, expected), (key, message_text)
    # Nothing happened: the endpoint is as created, nothing queued, one endpoint.
    assert [e["id"] for e in await env.ok("GET", "/webhooks")] == [created["id"]]
    stored = await env.store.get_endpoint("acme", created["id"])
    assert stored is not None and stored.enabled and stored.secret == created["secret"]
    [listed] = await env.ok("GET", "/webhooks/messages")
    assert listed["pending"] == 1
    assert env.wakes == []
