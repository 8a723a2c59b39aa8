"""What a real ``streamgate serve`` logs (issue 15): events worth reading, never a secret.

The gateway runs as a subprocess at DEBUG (text and JSON), with known secrets: the
producer key, a tenant's API key, a stream bearer, a push ticket (in the URL too), a
webhook endpoint's signing secret and the admin key, each used right and some wrongly.
Its whole stdout and stderr are then searched for every one of them (and for the
signature part of each JWT). The log must also hold the lines an operator reads (serving,
a slow consumer cut, an endpoint disabled, draining, stopped), and no HTTP client
per-request line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from streamgate.client.http import HttpClient

from support import UNIT, RawClient, notice, recv_json, send_json, trade_event
from support.cluster import SERVE, WAIT, Procs, gateway_env, listening_port
from support.webhook_receiver import Receiver

PRODUCER = "pk-" + secrets.token_urlsafe(24)
ADMIN = "adm-" + secrets.token_urlsafe(24)


def create_api_key(data: Path) -> str:
    env = gateway_env(data, PRODUCER)
    done = subprocess.run(
        [sys.executable, "-m", "streamgate", "apikey", "create", "--tenant", "acme"],
        env=env,
        capture_output=True,
        check=True,
        timeout=WAIT,
    )
    return done.stdout.decode().strip().splitlines()[-1]


def authorize_body() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ts_ms, nonce = time.time_ns() // 1_000_000, secrets.token_hex(8)
    return {
        "public_key": "0x" + public.hex(),
        "signature": key.sign(f"AUTHORIZE|{ts_ms}|{nonce}".encode()).hex(),
        "timestamp_ms": ts_ms,
        "nonce": nonce,
    }


async def traffic(url: str, api_key: str, receiver: Receiver) -> list[str]:
    """Use every secret (and some wrongly); return the secrets the gateway handed out."""
    client = HttpClient(url)
    ws_base = url.replace("http://", "ws://")
    handed: list[str] = []
    try:
        producer = {"authorization": f"Bearer {PRODUCER}"}
        tenant = {"api-key": api_key}
        result = await client.post_json(
            "/api/v1/publish", {"events": [trade_event("M", 1)]}, producer
        )
        assert result.status == 200, result.body
        wrong = {"authorization": f"Bearer {PRODUCER}x"}
        assert (await client.post_json("/api/v1/publish", {"events": []}, wrong)).status == 401
        # A stream bearer, used on /ws/private.
        result = await client.post_json("/api/v1/authorize", authorize_body())
        assert result.status == 200, result.body
        bearer = result.json()["token"]
        handed.append(bearer)
        async with connect(f"{ws_base}/ws/private", ping_interval=None) as ws:
            await send_json(ws, {"op": "auth", "bearer": bearer, "req_id": "a"})
            assert (await recv_json(ws))["success"] is True
            await send_json(ws, {"op": "auth", "bearer": bearer + "x", "req_id": "b"})
            assert (await recv_json(ws))["success"] is False
        # A push ticket, in the URL and as a subprotocol; a wrong one too.
        headers = {**tenant, "on-behalf-of": "alice"}
        result = await client.post_json("/auth/ws-token", {}, headers)
        assert result.status == 200, result.body
        ticket = result.json()["data"]["token"]
        handed.append(ticket)
        async with connect(f"{ws_base}/ws?token={ticket}", ping_interval=None) as ws:
            assert (await recv_json(ws))["event"] == "connected"
        protocols = [Subprotocol(f"bearer.{ticket}")]
        async with connect(f"{ws_base}/ws", subprotocols=protocols, ping_interval=None) as ws:
            assert (await recv_json(ws))["event"] == "connected"
        async with connect(f"{ws_base}/ws?token={ticket}x", ping_interval=None) as ws:
            await ws.wait_closed()
        bad_key = {"api-key": api_key + "x", "on-behalf-of": "alice"}
        assert (await client.post_json("/auth/ws-token", {}, bad_key)).status == 401
        # Webhook endpoints: one answers 500 then 410 (disabled), one 200.
        for name in ("gone", "ok"):
            result = await client.post_json("/webhooks", {"url": receiver.url(name)}, tenant)
            assert result.status == 201, result.body
            handed.append(result.json()["data"]["secret"])
        result = await client.post_json(
            "/api/v1/publish", {"events": [notice("acme", "alice", "hello")]}, producer
        )
        assert result.status == 200, result.body
        await receiver.wait_for("gone", 2, 10 * UNIT)
        await receiver.wait_for("ok", 1, 10 * UNIT)
        # The admin view, with the key and with another.
        admin = {"authorization": f"Bearer {ADMIN}"}
        assert (await client.request("GET", "/admin/api", headers=admin)).status == 200
        other = {"authorization": f"Bearer {ADMIN}x"}
        assert (await client.request("GET", "/admin/api", headers=other)).status == 403
        # A slow consumer: subscribes, never reads, is cut.
        slow = await RawClient.connect(f"{ws_base}/ws/public", rcvbuf=4096)
        slow.send_text({"op": "subscribe", "args": ["trade/S"], "req_id": "s"})
        cut = False
        for batch in range(40):
            events = [trade_event("S", batch * 50 + i) for i in range(50)]
            for e in events:
                e["data"]["trades"][0]["id"] = "x" * 1000 + str(e["data"]["seq"])
            result = await client.post_json("/api/v1/publish", {"events": events}, producer)
            assert result.status == 200, result.body
            stats = await client.request("GET", "/admin/api", headers=admin)
            if orjson.loads(stats.body)["slow_consumers"]["total"]:
                cut = True
                break
        slow.close()
        assert cut, "the slow consumer was not cut"
    finally:
        await client.close()
    return handed


def jwt_signature(token: str) -> str:
    return token.rsplit(".", 1)[-1]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_log_says_what_happened_and_no_secret(
    tmp_path: Path, procs: Procs, receiver: Receiver, log_format: str
) -> None:
    receiver.script = lambda path, n: (
        (500 if n == 0 else 410, {}, 0) if path == "gone" else (200, {}, 0)
    )
    data = tmp_path / "data"
    api_key = create_api_key(data)
    env = gateway_env(
        data,
        PRODUCER,
        STREAMGATE_LOG_LEVEL="DEBUG",
        STREAMGATE_LOG_FORMAT=log_format,
        STREAMGATE_ADMIN_KEY=ADMIN,
        STREAMGATE_WEBHOOKS_ALLOW_LOOPBACK="1",
        STREAMGATE_WEBHOOKS_RETRY_SCHEDULE="0.05,0.05",
        STREAMGATE_OUTBOUND_BUFFER_BYTES="65536",
        STREAMGATE_SEND_BUFFER_BYTES="16384",
    )
    proc = procs.spawn("gateway", SERVE, env)
    port = await listening_port(proc)
    handed = await traffic(f"http://127.0.0.1:{port}", api_key, receiver)
    proc.popen.terminate()
    await asyncio.to_thread(proc.popen.wait, WAIT)
    assert proc.popen.returncode == 0, proc.tail()
    log = proc.out.read_text() + proc.err.read_text()

    secret_values = [PRODUCER, ADMIN, api_key, *handed]
    secret_values += [jwt_signature(t) for t in handed[:2]]
    secret_values += [s.removeprefix("whsec_") for s in handed[2:]]
    for secret in secret_values:
        assert len(secret) >= 16
        assert secret not in log, f"a secret ({secret[:6]}...) is in the log"

    lines = proc.err.read_text().splitlines()
    messages = [json.loads(line)["message"] for line in lines] if log_format == "json" else lines
    said = "\n".join(messages)
    for expected in (
        "= serving on http://127.0.0.1:",
        "! slow consumer cut (4009): public socket from 127.0.0.1",
        "disabled: 410 Gone",
        "= draining:",
        "= stopped",
    ):
        assert expected in said, f"{expected!r} not in the log:\n{said[-3000:]}"
    assert "HTTP Request:" not in said  # httpx's per-request lines are held back
    assert len(messages) < 200, said[-3000:]


async def test_a_bad_log_setting_is_one_line(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "data", PRODUCER, STREAMGATE_LOG_FORMAT="xml")
    done = await asyncio.to_thread(
        subprocess.run, SERVE, env=env, capture_output=True, timeout=WAIT, check=False
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "streamgate: log_format must be 'text' or 'json', got 'xml'"
    )
