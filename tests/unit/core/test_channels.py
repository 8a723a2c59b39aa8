"""Channel kinds: the bounded label every metric uses instead of a channel's name."""

from __future__ import annotations

import pytest

from streamgate.core.channels import (
    TOPIC_KINDS,
    channel_kind,
    market_channel,
    private_channel,
    push_channel,
)


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        (market_channel("orderbook", "0xabc"), "orderbook"),
        (market_channel("trade", "0xabc"), "trade"),
        (market_channel("ticker", "0xabc"), "ticker"),
        (private_channel("0xuser", "order"), "order"),
        (private_channel("0xuser", "fill"), "fill"),
        (private_channel("0xuser", "position"), "position"),
        (push_channel("acme", "alice"), "push"),
        ("trade", "other"),
        ("candles/0xabc", "other"),
        ("user:0xuser:secret", "other"),
    ],
)
def test_channel_kind(channel: str, kind: str) -> None:
    assert channel_kind(channel) == kind
    assert kind in TOPIC_KINDS
