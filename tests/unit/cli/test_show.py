"""The CLI's pure parts: event gists, masking, URLs, number formats, percentiles."""

from __future__ import annotations

import pytest

from streamgate.cli.bench import percentile
from streamgate.cli.book import Scale
from streamgate.cli.common import CliError, http_base, ws_base
from streamgate.cli.config import MASK, mask
from streamgate.cli.show import gist


def test_gist_of_trades_books_tickers_and_private_items() -> None:
    trades = {"seq": 3, "trades": [{"side": "buy", "size": 5, "price": 650, "id": "t"}]}
    assert gist(trades) == "buy 5 @ 650"
    snapshot = {
        "type": "orderbook_snapshot",
        "seq": 1,
        "asks": [[11, 2], [12, 1]],
        "bids": [[9, 4], [10, 3]],
    }
    assert gist(snapshot) == "snapshot: 2 asks, 2 bids, best ask 2 @ 11, best bid 3 @ 10"
    delta = {"type": "orderbook_delta", "seq": 2, "asks": [[11, 0]], "bids": [[10, 7]]}
    assert gist(delta) == "delta: ask @ 11 removed, bid 7 @ 10"
    ticker = {"type": "ticker", "symbol": "X", "market_addr": "0x1", "last_price": 5, "ts": 1}
    assert gist(ticker) == "last_price=5"
    assert gist([{"status": "filled", "size": 1}]) == "status=filled size=1"
    assert gist({"message": "x" * 500}).endswith("…")


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("producer_key", "abc", MASK),
        ("producer_key", "", ""),
        ("redis_url", "redis://:pw@h:1/0", f"redis://:{MASK}@h:1/0"),
        ("redis_url", "redis://h:1/0", "redis://h:1/0"),
        ("jwt_hs256_secrets", "a=1, 2", f"a={MASK},{MASK}"),
        ("webhooks_postgres_dsn", "dbname=x password=y", f"dbname=x password={MASK}"),
        ("host", "127.0.0.1", "127.0.0.1"),
    ],
)
def test_mask(name: str, value: str, shown: str) -> None:
    assert mask(name, value) == shown


def test_urls() -> None:
    assert http_base("ws://h:1/ws/public") == "http://h:1"
    assert ws_base("https://h") == "wss://h"
    assert http_base("127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(CliError):
        http_base("ftp://h")


def test_scale_and_percentile() -> None:
    assert Scale(price=2, size=4).price_text(6_500_050) == "65,000.50"
    assert Scale(price=2, size=4).size_text(5) == "0.0005"
    assert Scale(price=2).price_text(-7) == "-0.07"
    assert Scale().size_text(1234) == "1,234"
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
