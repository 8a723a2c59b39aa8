"""The push protocol's sans-I/O parts (streamgate/protocol/push.py): tickets, resume, frames.

PROTOCOL.md section 1: the ticket comes in the ``bearer.<jwt>`` subprotocol (which the
answer selects) or ``?token=``; a resume is ``?offset=N&epoch=E``, both or neither.
"""

from __future__ import annotations

import orjson
import pytest

from streamgate.core.publication import Publication, StreamPosition
from streamgate.protocol.push import (
    BadResume,
    encode_connected,
    encode_push,
    parse_resume,
    ticket_from,
)


def test_the_bearer_subprotocol_carries_the_ticket_and_is_selected() -> None:
    assert ticket_from(["bearer.abc.def"], None) == ("abc.def", "bearer.abc.def")


def test_the_subprotocol_wins_over_the_query_token() -> None:
    assert ticket_from(["chat", "bearer.from-header"], "from-query") == (
        "from-header",
        "bearer.from-header",
    )


def test_the_query_token_is_used_when_no_bearer_subprotocol_is_offered() -> None:
    # Nothing to select: a browser would refuse an answer naming a protocol it did not offer.
    assert ticket_from(["chat"], "q.token") == ("q.token", None)


@pytest.mark.parametrize(
    ("offered", "query"),
    [([], None), ([], ""), (["bearer."], None), (["Bearer.x"], None), (["chat"], "")],
)
def test_no_ticket_is_none(offered: list[str], query: str | None) -> None:
    """An empty ``bearer.`` or a wrong-case prefix is no ticket (then 4001 Missing token)."""
    assert ticket_from(offered, query) == (None, None)


def test_no_resume_without_offset_and_epoch() -> None:
    assert parse_resume({}) is None
    assert parse_resume({"token": ["t"]}) is None


def test_a_resume_is_an_offset_and_its_epoch() -> None:
    assert parse_resume({"offset": ["42"], "epoch": ["e1"]}) == StreamPosition(42, "e1")
    assert parse_resume({"offset": ["0"], "epoch": ["e1"]}) == StreamPosition(0, "e1")


def test_the_first_of_repeated_values_counts() -> None:
    assert parse_resume({"offset": ["7", "9"], "epoch": ["a", "b"]}) == StreamPosition(7, "a")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"offset": ["1"]}, "offset and epoch go together"),
        ({"epoch": ["e"]}, "offset and epoch go together"),
        ({"offset": ["-1"], "epoch": ["e"]}, "offset must be an integer >= 0"),
        ({"offset": ["1.5"], "epoch": ["e"]}, "offset must be an integer >= 0"),
        ({"offset": [""], "epoch": ["e"]}, "offset must be an integer >= 0"),
        ({"offset": ["9" * 20], "epoch": ["e"]}, "offset must be an integer >= 0"),
    ],
)
def test_a_malformed_resume_is_refused_saying_why(
    query: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(BadResume, match=message):
        parse_resume(query)


@pytest.mark.parametrize("offset", ["\u00b2", "\u0661\u0662"])
def test_an_offset_of_non_ascii_digits_is_refused(offset: str) -> None:
    with pytest.raises(BadResume, match="offset must be an integer >= 0"):
        parse_resume({"offset": [offset], "epoch": ["e"]})


def test_the_largest_offset_fits_nineteen_digits() -> None:
    assert parse_resume({"offset": ["9" * 19], "epoch": ["e"]}) == StreamPosition(
        int("9" * 19), "e"
    )


def test_connected_says_the_user_and_whether_its_resume_recovered() -> None:
    assert orjson.loads(encode_connected("alice", 1_700_000_000_123, None)) == {
        "event": "connected",
        "data": {"userId": "alice"},
        "ts": 1_700_000_000_123,
    }
    for recovered in (True, False):
        doc = orjson.loads(encode_connected("bob", 5, recovered))
        assert doc["data"] == {"userId": "bob", "recovered": recovered}


def test_a_push_is_event_data_ts_offset_epoch() -> None:
    pub = Publication(
        channel="push/acme/alice",
        offset=3,
        epoch="ep-1",
        data={"event": "deposit.completed", "data": {"amount": "1.50", "asset": "USDC"}},
        ts_ms=1_700_000_000_999,
    )
    raw = encode_push(pub)
    assert orjson.loads(raw) == {
        "event": "deposit.completed",
        "data": {"amount": "1.50", "asset": "USDC"},
        "ts": 1_700_000_000_999,
        "offset": 3,
        "epoch": "ep-1",
    }
    assert list(orjson.loads(raw)) == ["event", "data", "ts", "offset", "epoch"]
