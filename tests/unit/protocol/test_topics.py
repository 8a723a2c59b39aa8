"""Topic grammar (PROTOCOL.md section 2).

Public ``^(orderbook|trade|ticker)/[^/\\s]+$``, private ``^(order|fill|position)$``.
"""

from __future__ import annotations

import pytest

from streamgate.protocol.topics import (
    PRIVATE_TOPIC,
    PUBLIC_TOPIC,
    is_private_topic,
    is_public_topic,
)


@pytest.mark.parametrize(
    "topic",
    [
        "orderbook/BTC-PERP",
        "trade/0x88a7f3",
        "ticker/x",
        "orderbook/ü€",  # any character but '/' and whitespace
        "trade/a.b:c|d",
        "ticker/" + "m" * 500,
    ],
)
def test_public_topics_accepted(topic: str) -> None:
    assert is_public_topic(topic)
    assert not is_private_topic(topic)


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
def test_private_topics_accepted(topic: str) -> None:
    assert is_private_topic(topic)
    assert not is_public_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "orderbook",
        "orderbook/",
        "orderbook/x\n",  # re.match with '$' would let this through
        "orderbook/x\r\n",
        "\norderbook/x",
        "orderbook/a/b",
        "orderbook//a",
        "/orderbook/a",
        "orderbook/a b",
        "orderbook/a\tb",
        "orderbook/a\u00a0b",  # no-break space is whitespace in both engines
        " orderbook/a",
        "orderbook/a ",
        "Orderbook/a",
        "ORDERBOOK/A",
        "orderbooks/a",
        "trades/a",
        "candles/a",
        "xorderbook/a",
    ],
)
def test_malformed_public_topics_refused(topic: str) -> None:
    assert not is_public_topic(topic)
    assert not is_private_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "order\n",
        "orders",
        "Order",
        " order",
        "order ",
        "orderfill",
        "fill/x",
        "position/",
        "order/x",
        "",
    ],
)
def test_malformed_private_topics_refused(topic: str) -> None:
    assert not is_private_topic(topic)


def test_patterns_are_whole_topic_patterns() -> None:
    # The exported patterns are meant for fullmatch; a prefix is not a topic.
    assert PUBLIC_TOPIC.fullmatch("orderbook/a") is not None
    assert PUBLIC_TOPIC.fullmatch("orderbook/a/b") is None
    assert PRIVATE_TOPIC.fullmatch("order") is not None
    assert PRIVATE_TOPIC.fullmatch("orders") is None


# JavaScript's \s (the documents' patterns come from a TypeScript SDK) and Python's \s
# differ: JS counts U+FEFF as whitespace, Python does not; Python counts U+001C..U+001F
# and U+0085 as whitespace, JS does not. Expected values checked with node:
# /^(orderbook|trade|ticker)\/[^\/\s]+$/.test(...)
@pytest.mark.parametrize(
    ("topic", "js_result"),
    [
        ("orderbook/a\ufeff", False),
        ("orderbook/a\x1c", True),
        ("orderbook/a\x1d", True),
        ("orderbook/a\x1e", True),
        ("orderbook/a\x1f", True),
        ("orderbook/a\x85", True),
    ],
)
def test_whitespace_class_matches_javascript(topic: str, js_result: bool) -> None:
    assert is_public_topic(topic) is js_result
