"""Hostile input over real sockets gets a clear 4xx, never a 500 (issue 11 points 10, 11)."""

from __future__ import annotations

import time

import orjson

from streamgate.client.http import HttpClient, HttpResult
from streamgate.server.app import Gateway

from support import PRODUCER_KEY, base_url

DEEP_LIST = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000


async def post(gw: Gateway, path: str, body: bytes, headers: dict[str, str]) -> HttpResult:
    client = HttpClient(base_url(gw))
    try:
        return await client.request("POST", path, body=body, headers=headers)
    finally:
        await client.close()


async def test_deeply_nested_json_in_a_publish_is_a_400(gw: Gateway) -> None:
    auth = {"authorization": f"Bearer {PRODUCER_KEY}"}
    for deep in (DEEP_LIST, DEEP_OBJECT):
        for body in (
            b'{"events":[{"event":' + deep + b',"tenant":"acme"}]}',
            b'{"events":[{"topic":"trade/M","data":{"seq":1,"trades":[{"id":' + deep + b"}]}}]}",
            b'{"events":[{"topic":' + deep + b"}]}",
            b'{"events":' + deep + b"}",
        ):
            result = await post(gw, "/api/v1/publish", body, auth)
            assert result.status == 400, result.body
            assert result.json()["error"]["code"] in (
                "INVALID_EVENT",
                "UNKNOWN_EVENT",
                "UNKNOWN_TOPIC",
                "INVALID_BATCH",
                "INVALID_JSON",
            )


async def test_deeply_nested_event_types_of_a_webhook_is_a_400(gw: Gateway) -> None:
    key, _ = gw.api_keys.create("acme")
    for deep in (DEEP_LIST, DEEP_OBJECT):
        body = b'{"url":"https://example.com/hook","eventTypes":[' + deep + b"]}"
        result = await post(gw, "/webhooks", body, {"api-key": key})
        assert result.status == 400, result.body
        assert result.json()["success"] is False


# Small-order points of edwards25519 (with an identity-R, zero-S signature these verified
# in OpenSSL for any message: fixed user ids that anyone could log in as).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


async def test_keys_nobody_holds_never_get_a_bearer(gw: Gateway) -> None:
    for n, key in enumerate(SMALL_ORDER):
        body = {
            "public_key": "0x" + key,
            "signature": "0x01" + "00" * 63,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "nonce": f"forged-{n}",
        }
        result = await post(gw, "/api/v1/authorize", orjson.dumps(body), {})
        assert (result.status, result.json()["error_code"]) == (400, 2001), key
