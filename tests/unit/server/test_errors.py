"""The one error map (server/errors.py): each body shape, byte for byte, and each close."""

from __future__ import annotations

import orjson
import pytest

from streamgate.auth.apikeys import INVALID_API_KEY, ApiKeyError
from streamgate.auth.authorize import RATE_LIMIT_EXCEEDED, AuthorizeError
from streamgate.auth.tokens import InvalidToken, TokenExpired
from streamgate.errors import (
    BrokerUnavailable,
    ConfigError,
    HttpRefusal,
    NodeDraining,
    OutboxUnavailable,
    ProducerRefusal,
    TenantRefusal,
)
from streamgate.protocol import close
from streamgate.server.errors import (
    PRODUCER_UNAUTHORIZED,
    authorize_error,
    envelope_error,
    http_error,
    producer_error,
    push_close,
    refusal_response,
)


def test_rest_body() -> None:
    response = http_error(404, "NOT_FOUND", "no route for /x")
    assert (response.status, response.headers) == (404, [])
    assert response.body == b'{"error":{"code":"NOT_FOUND","message":"no route for /x"}}'
    refused = HttpRefusal("UNAVAILABLE", "retry", status=503, headers=(("retry-after", "1"),))
    response = refusal_response(refused)
    assert (response.status, response.headers) == (503, [("retry-after", "1")])
    assert response.body == b'{"error":{"code":"UNAVAILABLE","message":"retry"}}'


def test_producer_body_carries_index_and_field() -> None:
    response = refusal_response(ProducerRefusal("INVALID_FIELD", "bad", index=2, field="data.seq"))
    assert response.status == 400
    assert response.body == (
        b'{"error":{"code":"INVALID_FIELD","message":"bad","index":2,"field":"data.seq"}}'
    )
    response = producer_error(PRODUCER_UNAUTHORIZED)
    assert (response.status, response.headers) == (401, [("www-authenticate", "Bearer")])
    assert orjson.loads(response.body) == {
        "error": {
            "code": "UNAUTHORIZED",
            "message": "a valid producer key is required",
            "index": None,
            "field": None,
        }
    }


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (BrokerUnavailable(), "broker unavailable"),
        (BrokerUnavailable("redis down"), "redis down"),
        (OutboxUnavailable("published, outbox down"), "published, outbox down"),
        (NodeDraining("shutting down"), "shutting down"),
    ],
)
def test_producer_unavailable_is_503(exc: Exception, message: str) -> None:
    assert isinstance(exc, BrokerUnavailable | OutboxUnavailable | NodeDraining)
    response = producer_error(exc)
    assert (response.status, response.headers) == (503, [("retry-after", "1")])
    error = {"code": "UNAVAILABLE", "message": message, "index": None, "field": None}
    assert orjson.loads(response.body) == {"error": error}


def test_producer_error_refuses_what_it_does_not_map() -> None:
    with pytest.raises(TypeError, match="ConfigError"):
        producer_error(ConfigError("nope"))


def test_tenant_envelope() -> None:
    refused = TenantRefusal(
        "RATE_LIMITED", "slow down", status=429, headers=(("retry-after", "3"),)
    )
    response = envelope_error("req_1", refused)
    assert (response.status, response.headers) == (429, [("retry-after", "3")])
    assert response.body == (
        b'{"requestId":"req_1","success":false,'
        b'"error":{"code":429,"key":"RATE_LIMITED","message":"slow down"}}'
    )
    response = envelope_error("req_2", ApiKeyError(INVALID_API_KEY))
    assert (response.status, response.headers) == (401, [])
    assert orjson.loads(response.body) == {
        "requestId": "req_2",
        "success": False,
        "error": {"code": 401, "key": "INVALID_API_KEY", "message": "Invalid API key"},
    }


def test_authorize_body() -> None:
    response = authorize_error(AuthorizeError(RATE_LIMIT_EXCEEDED, "rate limit", retry_after=7))
    assert (response.status, response.headers) == (429, [("retry-after", "7")])
    assert response.body == b'{"error_code":2003,"error_message":"rate limit"}'
    response = authorize_error(AuthorizeError(2001, "authentication failed"))
    assert (response.status, response.headers) == (400, [])


def test_push_closes() -> None:
    assert (
        push_close(InvalidToken("bad signature")) == close.INVALID_TOKEN == (4001, "Invalid token")
    )
    assert push_close(TokenExpired("expired")) == close.INVALID_TOKEN
    assert push_close(BrokerUnavailable()) == close.TRY_AGAIN == (1013, "Try again later")
    assert push_close(RuntimeError("bug")) == close.INTERNAL_ERROR == (1011, "Internal error")
