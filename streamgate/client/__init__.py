"""Python client SDK: speaks the gateway's wire protocols; never imports server/ or hub/."""

from streamgate.client.http import HttpClient, HttpResult
from streamgate.client.producer import (
    Producer,
    PublishError,
    PublishResult,
    PublishUnavailable,
    SyncProducer,
)

__all__ = [
    "HttpClient",
    "HttpResult",
    "Producer",
    "PublishError",
    "PublishResult",
    "PublishUnavailable",
    "SyncProducer",
]
