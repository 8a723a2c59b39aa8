"""server/auth.py: the bearer header and the tenant api-key, read once for every route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamgate.auth.apikeys import ApiKeyError, ApiKeyStore
from streamgate.server.auth import bearer_token, tenant_key, tenant_key_check
from streamgate.server.messages import HttpRequest


def request(*headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest("POST", "/", "/", {}, list(headers), b"", "127.0.0.1")


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),  # RFC 9110 section 11.1: the scheme is case-insensitive
        ("BEARER  abc  ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Basic abc", None),
        ("", None),
        ("abc", None),
    ],
)
def test_bearer_token(value: str, token: str | None) -> None:
    assert bearer_token(request(("authorization", value))) == token


def test_no_authorization_header() -> None:
    assert bearer_token(request(("api-key", "x"))) is None


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[ApiKeyStore]:
    store = ApiKeyStore.in_data_dir(tmp_path)
    try:
        yield store
    finally:
        store.close()


def test_tenant_key(keys: ApiKeyStore) -> None:
    key, info = keys.create("acme")
    revoked, _ = keys.create("acme")
    keys.revoke(revoked)
    assert tenant_key(keys, request(("api-key", f" {key} "))).key_id == info.key_id
    check = tenant_key_check(keys)
    assert check(request(("api-key", key)))
    for headers, expected in [
        ((), "MISSING_API_KEY"),
        ((("api-key", ""),), "MISSING_API_KEY"),
        ((("api-key", "sgk_nope"),), "INVALID_API_KEY"),
        ((("api-key", revoked),), "API_KEY_REVOKED"),
        ((("authorization", f"Bearer {key}"),), "MISSING_API_KEY"),
    ]:
        with pytest.raises(ApiKeyError) as raised:
            tenant_key(keys, request(*headers))
        assert raised.value.key == expected
        assert not check(request(*headers))
