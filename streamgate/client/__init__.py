"""Python client SDK: speaks the gateway's wire protocols; never imports server/ or hub/."""

from streamgate.client.backoff import Backoff
from streamgate.client.book import LocalOrderBook, watch_book
from streamgate.client.errors import (
    AuthError,
    BookGap,
    BookOutOfSync,
    ChecksumMismatch,
    ClientError,
    ClosedError,
    ConnectError,
    MarketNotFound,
    ProtocolError,
    SubscribeError,
)
from streamgate.client.events import Disconnected, Event, Reconnected, StreamItem
from streamgate.client.http import HttpClient, HttpResult
from streamgate.client.markets import list_markets, resolve_market
from streamgate.client.producer import (
    Producer,
    PublishError,
    PublishResult,
    PublishUnavailable,
    SyncProducer,
)
from streamgate.client.push import PushClient, mint_ticket
from streamgate.client.stream import StreamClient

__all__ = [
    "AuthError",
    "Backoff",
    "BookGap",
    "BookOutOfSync",
    "ChecksumMismatch",
    "ClientError",
    "ClosedError",
    "ConnectError",
    "Disconnected",
    "Event",
    "HttpClient",
    "HttpResult",
    "LocalOrderBook",
    "MarketNotFound",
    "Producer",
    "ProtocolError",
    "PublishError",
    "PublishResult",
    "PublishUnavailable",
    "PushClient",
    "Reconnected",
    "StreamClient",
    "StreamItem",
    "SubscribeError",
    "SyncProducer",
    "list_markets",
    "mint_ticket",
    "resolve_market",
    "watch_book",
]
