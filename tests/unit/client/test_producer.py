"""The producer's pure parts: keys, batching by count and bytes, Retry-After."""

from __future__ import annotations

import email.utils
import time

import httpx
import orjson
import pytest

from streamgate.client.producer import MAX_RETRY_AFTER, batches, keyed, retry_after


def test_keys_are_added_where_absent_and_kept_where_given() -> None:
    given = {"topic": "trade/0x1", "data": {}, "idempotency_key": "mine"}
    bare = {"topic": "trade/0x1", "data": {}}
    out = keyed([given, bare, bare])
    assert out[0]["idempotency_key"] == "mine"
    assert out[1]["idempotency_key"] != out[2]["idempotency_key"]
    assert "idempotency_key" not in bare


def test_batches_cut_by_count_and_keep_order() -> None:
    events = [{"n": i} for i in range(7)]
    cut = list(batches(events, 3, 1 << 20))
    assert [(first, n) for first, _, n in cut] == [(0, 3), (3, 3), (6, 1)]
    assert [e["n"] for _, body, _ in cut for e in orjson.loads(body)["events"]] == list(range(7))


def test_batches_cut_by_bytes_and_an_oversized_event_goes_alone() -> None:
    events = [{"pad": "x" * 40}, {"pad": "x" * 40}, {"pad": "x" * 500}, {"pad": "y"}]
    cut = list(batches(events, 1000, 120))
    assert [(first, n) for first, _, n in cut] == [(0, 2), (2, 1), (3, 1)]
    assert all(len(body) <= 120 for first, body, _ in cut if first != 2)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("1", 1.0), (" 2.5 ", 2.5), ("-3", 0.0), ("9999", MAX_RETRY_AFTER), ("soon", None)],
)
def test_retry_after_in_seconds(header: str, expected: float | None) -> None:
    assert retry_after(httpx.Headers({"retry-after": header})) == expected


def test_retry_after_as_a_date_and_absent() -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after(httpx.Headers({"retry-after": date}))
    assert seconds is not None and 25 <= seconds <= 31
    assert retry_after(httpx.Headers()) is None
