"""The hooks of tests/conftest.py and tests/support/__init__.py record what breaks the documents."""

from __future__ import annotations

import orjson
import pytest

import streamgate.protocol.stream as stream_protocol
from streamgate.server.app import Gateway

from support import RawClient, open_ws, recv_json, schemas, send_json, ws_url


def _pong_with_null(server_ts: int, client_ts: int | None, req_id: str | None) -> bytes:
    """A pong as the gateway sent it before issue 10's protocol change."""
    return orjson.dumps({"op": "pong", "server_ts": server_ts, "client_ts": client_ts})


@pytest.fixture
def drifted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's pong drifts from the document."""
    monkeypatch.setattr(stream_protocol, "encode_pong", _pong_with_null)


def recorded() -> list[str]:
    """What the hooks recorded, forgotten (so that the test itself does not fail for it)."""
    found = list(schemas.VIOLATIONS)
    schemas.VIOLATIONS.clear()
    return found


async def test_a_drifted_frame_received_by_a_websockets_client_is_recorded(
    gw: Gateway, drifted: None
) -> None:
    async with open_ws(gw) as ws:
        await send_json(ws, {"op": "ping"})
        assert (await recv_json(ws))["client_ts"] is None
    found = recorded()
    assert len(found) == 1
    assert "client_ts: None is not of type 'integer'" in found[0]


async def test_a_drifted_frame_read_by_the_raw_client_is_recorded(
    gw: Gateway, drifted: None
) -> None:
    raw = await RawClient.connect(ws_url(gw))
    try:
        raw.send_text({"op": "ping", "req_id": "r"})
        frames = await raw.read_frames(0.5)
    finally:
        raw.close()
    assert frames
    found = recorded()
    assert len(found) == 1
    assert found[0].startswith("/ws/public:")


def test_an_accepted_publish_outside_the_document_is_recorded() -> None:
    events = [{"topic": "trade/M", "data": {"seq": 1, "trades": [], "colour": "red"}}]
    schemas.publish_checked(events, 200, b'{"accepted": 1, "duplicates": 0}')
    found = recorded()
    assert len(found) == 1
    assert "request accepted (200)" in found[0]
