"""StreamClient's frame handling without a socket: replies by req_id, dedupe by offset."""

from __future__ import annotations

import asyncio

from streamgate.client import Event, StreamClient
from streamgate.client.stream import _answer, _collect, _Pending


def frame(topic: str, offset: int, epoch: str = "e", kind: str = "trades") -> dict[str, object]:
    return {
        "op": "event",
        "topic": topic,
        "data": {"type": kind, "seq": offset},
        "offset": offset,
        "epoch": epoch,
    }


async def test_a_partly_refused_subscribe_waits_for_its_error_frame() -> None:
    pending = _Pending(asyncio.get_running_loop().create_future(), asked=2)
    _collect(pending, {"op": "subscribed", "args": ["a"], "req_id": "1"})
    assert not pending.future.done()
    _collect(pending, {"op": "error", "message": "INVALID_TOPIC", "args": ["b"], "req_id": "1"})
    acked, refused, recovered = _answer(pending.future.result(), ["a", "b"])
    assert (acked, refused, recovered) == (["a"], {"b": "INVALID_TOPIC"}, {})
    whole = _Pending(asyncio.get_running_loop().create_future(), asked=1)
    _collect(whole, {"op": "subscribed", "args": ["a"], "recovered": {"a": False}})
    assert _answer(whole.future.result(), ["a"]) == (["a"], {}, {"a": False})


async def test_events_already_seen_are_dropped_by_offset_snapshots_never() -> None:
    client = StreamClient("ws://127.0.0.1:1/ws/public")
    client.positions = {"trade/m": None, "orderbook/m": None}
    seen = [client._dispatch(frame("trade/m", n), b"") for n in (1, 2, 2, 1, 3)]
    assert [e.offset for e in seen if isinstance(e, Event)] == [1, 2, 3]
    assert client._dispatch(frame("trade/m", 1, epoch="new"), b"") is not None  # new epoch
    assert client._dispatch(frame("trade/x", 1), b"") is None  # not subscribed
    book = [
        client._dispatch(frame("orderbook/m", 5, kind=k), b"")
        for k in ("orderbook_snapshot", "orderbook_snapshot")
    ]
    assert all(isinstance(e, Event) for e in book)
    assert client.positions["orderbook/m"] == (5, "e")
