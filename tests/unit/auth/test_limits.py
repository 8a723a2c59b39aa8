"""Authorize's bounded memory: the per-client window limiter and the nonce registry."""

from __future__ import annotations

import pytest

from streamgate.auth.limits import NonceRegistry, WindowLimiter
from streamgate.auth.settings import AuthSettings
from streamgate.errors import ConfigError


def test_limiter_allows_limit_then_waits_for_the_window() -> None:
    limiter = WindowLimiter(3, 10.0)
    assert [limiter.hit("a", 100.0) for _ in range(3)] == [None, None, None]
    assert limiter.hit("a", 100.0) == 10
    assert limiter.hit("a", 104.2) == 6  # ceil(110 - 104.2)
    assert limiter.hit("a", 109.9) == 1  # never 0
    assert limiter.hit("a", 110.0) is None  # a new window
    assert limiter.hit("b", 110.0) is None  # clients are independent


def test_limiter_refusals_do_not_extend_the_window() -> None:
    limiter = WindowLimiter(1, 10.0)
    assert limiter.hit("a", 0.0) is None
    for t in range(1, 10):
        assert limiter.hit("a", float(t)) is not None
    assert limiter.hit("a", 10.0) is None


def test_limiter_forgets_idle_clients() -> None:
    limiter = WindowLimiter(5, 10.0)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limiter) == 1000
    limiter.hit("192.0.2.1", 10.0)
    assert len(limiter) == 1


def test_limiter_caps_clients_dropping_the_oldest() -> None:
    limiter = WindowLimiter(1, 10.0, max_clients=2)
    assert limiter.hit("a", 0.0) is None
    assert limiter.hit("b", 1.0) is None
    assert limiter.hit("c", 2.0) is None
    assert len(limiter) == 2
    assert limiter.hit("b", 3.0) is not None  # still tracked
    assert limiter.hit("a", 3.0) is None  # forgotten: starts afresh


def test_limiter_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        WindowLimiter(0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        WindowLimiter(1, 0.0)


def test_registry_remembers_until_expiry() -> None:
    registry = NonceRegistry(10)
    registry.add(b"k1", 5.0)
    registry.add(b"k2", 3.0)
    assert b"k1" in registry and len(registry) == 2
    assert registry.next_expiry() == 3.0
    registry.expire(3.0)  # expiry is inclusive: still remembered at 3.0
    assert len(registry) == 2
    registry.expire(3.5)
    assert b"k2" not in registry and b"k1" in registry
    registry.expire(100.0)
    assert len(registry) == 0 and registry.next_expiry() is None


def test_registry_full_and_duplicate() -> None:
    registry = NonceRegistry(2)
    registry.add(b"a", 1.0)
    assert not registry.full()
    registry.add(b"b", 1.0)
    assert registry.full()
    with pytest.raises(ValueError, match="already"):
        registry.add(b"a", 2.0)


@pytest.mark.parametrize(
    "field",
    [
        {"bearer_ttl": 0.0},
        {"authorize_window": -1.0},
        {"rate_window": float("nan")},
        {"leeway": -1.0},
        {"leeway": float("inf")},
        {"rate_limit": 0},
        {"issuer": ""},
        {"audience": ""},
        {"trusted_issuers": ("",)},
        {"hs256_secrets": ["x" * 40]},
    ],
)
def test_settings_validation(field: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        AuthSettings(**field)  # type: ignore[arg-type]


def test_settings_defaults() -> None:
    settings = AuthSettings()
    assert settings.bearer_ttl == 7 * 24 * 3600
    assert (settings.rate_limit, settings.rate_window, settings.authorize_window) == (100, 10, 30)
