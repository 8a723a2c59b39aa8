"""Python client SDK: speaks the gateway's wire protocols; never imports server/ or hub/."""

from streamgate.client.http import HttpClient, HttpResult
from streamgate.client.producer import ProducerClient, PublishError

__all__ = ["HttpClient", "HttpResult", "ProducerClient", "PublishError"]
