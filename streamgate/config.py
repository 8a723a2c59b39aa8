"""Configuration: frozen dataclasses, read from a TOML file and ``STREAMGATE_*`` variables.

Every scalar field ``name`` of :class:`Config` can be set in the file as ``name = value``
and in the environment as ``STREAMGATE_<NAME>``; the environment wins over the file,
and both win over the defaults. Markets are configured in the file only::

    [[markets]]
    market_addr = "0x88a7..."
    symbol = "BTC-PERP"
    price_decimals = 2
    size_decimals = 4

This is the only module that reads the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamgate.auth.settings import AuthSettings
from streamgate.errors import ConfigError

__all__ = ["Config", "MarketConfig", "load_config"]

ENV_PREFIX = "STREAMGATE_"


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """A market the gateway knows before anything is published to it."""

    market_addr: str
    symbol: str
    price_decimals: int = 0
    size_decimals: int = 0

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the gateway can be told. Times are seconds, sizes bytes."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    producer_key: str = ""  # empty: generated once and kept in data_dir/producer.key
    broker: str = "memory"  # "redis": several nodes act as one (docs/cluster.md)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "streamgate:"  # before every Redis key and pub/sub channel
    redis_keep: float = 7 * 86_400.0  # a channel's offsets/epoch/book outlive its last publish
    redis_timeout: float = 5.0  # a Redis connect or command (any client): then 503/UNAVAILABLE
    presence_ttl: float = 15.0  # a node that stops heartbeating counts no sockets after this
    workers: int = 1  # processes serving one port (SO_REUSEPORT); >1 needs broker=redis
    log_level: str = "INFO"  # DEBUG, INFO, WARNING or ERROR
    log_format: str = "text"  # "json": one JSON object per line (time, level, logger, message)
    admin_key: str = ""  # bearer of GET /admin/api; empty: no admin view (404)
    # WebSocket liveness and shutdown
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 5.0
    drain_timeout: float = 5.0
    # per-connection limits (stream protocol)
    max_subscriptions: int = 100
    max_frame_bytes: int = 16_384  # larger text frames are refused with FRAME_TOO_LARGE
    hard_max_frame_bytes: int = 1_048_576  # larger ones close the socket with 1009
    ops_per_second: float = 20.0
    ops_burst: int = 50
    abuse_refusals: int = 200  # refusals within abuse_window close the socket with 1008
    abuse_window: float = 10.0
    outbound_buffer_bytes: int = 1_048_576  # past it: close 4009 Slow consumer
    send_buffer_bytes: int = 0  # SO_SNDBUF of WebSocket sockets; 0 leaves it to the kernel
    # while the loop is saturated, writes wait up to this so queued frames share one write
    write_delay: float = 0.005  # 0: write on the next loop turn always (server/websocket.py)
    write_delay_after: float = 0.01  # a write pass this long means the loop is saturated
    # HTTP timeouts and connection caps (issue 11; docs/protocol-notes.md)
    http_header_timeout: float = 10.0  # a request head must arrive within this
    http_body_timeout: float = 30.0  # and its body within this after the head
    http_idle_timeout: float = 30.0  # a kept-alive connection idle this long is closed
    max_connections: int = 0  # HTTP and WebSocket; 0: from the open-file limit
    max_connections_per_ip: int = 2_000  # 0: none; never more than max_connections / 2
    # history, idempotency, producer API
    history_size: int = 1_000
    history_ttl: float = 300.0
    idempotency_window: float = 300.0
    idempotency_max_keys: int = 1_000_000
    max_publish_bytes: int = 8_388_608
    # private stream: POST /api/v1/authorize and bearer verification
    auth_issuer: str = "streamgate"
    auth_audience: str = "streamgate"
    bearer_ttl: float = 7 * 24 * 3600.0
    jwt_leeway: float = 30.0
    authorize_window: float = 30.0  # timestamp_ms must be this near server time
    authorize_rate_limit: int = 100  # requests per client IP ...
    authorize_rate_window: float = 10.0  # ... per this many seconds
    jwt_trusted_issuers: str = ""  # comma-separated issuers of platform tokens
    jwt_hs256_secrets: str = ""  # comma-separated, each "kid=secret" or a secret
    jwt_public_keys: str = ""  # comma-separated PEM files, each "kid=path" or a path
    jwt_jwks_file: str = ""
    jwt_jwks_url: str = ""
    # push protocol: tickets and sockets
    push_ticket_ttl: float = 3600.0
    max_sockets_per_sub_user: int = 5
    ws_token_rate_limit: int = 60  # tickets per API key ...
    ws_token_rate_window: float = 60.0  # ... per this many seconds
    # webhooks
    webhooks_allow_loopback: int = 0  # 1: deliver to loopback/private targets (tests, dev)
    webhooks_retry_schedule: str = ""  # comma-separated seconds; empty: PROTOCOL.md's
    webhooks_postgres_dsn: str = ""  # a PostgreSQL outbox shared by several nodes
    webhooks_per_endpoint: int = 4  # deliveries in flight per endpoint
    webhooks_timeout: float = 10.0  # per delivery attempt (PROTOCOL.md: 10 s)
    webhooks_lease: float = 10.0  # renewed while in flight; a dead node's work resumes after it
    node_name: str = ""  # this node's name (unique); empty: host-pid, leases: kept in data_dir
    worker_index: int = 0  # set by `serve --workers N` for each worker (0..N-1)
    markets: tuple[MarketConfig, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("port",):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"{name} must be within 0..65535")
        positive = (
            "ping_interval",
            "ping_timeout",
            "close_timeout",
            "drain_timeout",
            "max_subscriptions",
            "max_frame_bytes",
            "hard_max_frame_bytes",
            "ops_per_second",
            "ops_burst",
            "abuse_refusals",
            "abuse_window",
            "outbound_buffer_bytes",
            "history_size",
            "history_ttl",
            "idempotency_window",
            "idempotency_max_keys",
            "max_publish_bytes",
            "bearer_ttl",
            "authorize_window",
            "authorize_rate_limit",
            "authorize_rate_window",
            "push_ticket_ttl",
            "max_sockets_per_sub_user",
            "ws_token_rate_limit",
            "ws_token_rate_window",
            "webhooks_per_endpoint",
            "webhooks_timeout",
            "webhooks_lease",
            "presence_ttl",
            "redis_keep",
            "redis_timeout",
            "workers",
            "http_header_timeout",
            "http_body_timeout",
            "http_idle_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_connections", "max_connections_per_ip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.write_delay <= 0.1:
            raise ConfigError(f"write_delay must be within 0..0.1 s, got {self.write_delay!r}")
        if not 0 < self.write_delay_after <= 1:
            raise ConfigError(
                f"write_delay_after must be within 0..1 s, got {self.write_delay_after!r}"
            )
        if self.hard_max_frame_bytes < self.max_frame_bytes:
            raise ConfigError("hard_max_frame_bytes must be >= max_frame_bytes")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"log_level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be 'text' or 'json', got {self.log_format!r}")
        if self.broker not in ("memory", "redis"):
            raise ConfigError(f"broker must be 'memory' or 'redis', got {self.broker!r}")
        if urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"redis_url must be a redis://, rediss:// or unix:// URL, got {self.redis_url!r}"
            )
        if self.worker_index < 0:
            raise ConfigError(f"worker_index must be >= 0, got {self.worker_index!r}")
        if self.workers > 1 and self.broker != "redis":
            raise ConfigError(
                "workers > 1 needs broker = 'redis': separate processes share nothing else"
            )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def auth_settings(self) -> AuthSettings:
        """The auth package's view of these settings (lists split on commas)."""
        return AuthSettings(
            issuer=self.auth_issuer,
            audience=self.auth_audience,
            bearer_ttl=self.bearer_ttl,
            leeway=self.jwt_leeway,
            authorize_window=self.authorize_window,
            rate_limit=self.authorize_rate_limit,
            rate_window=self.authorize_rate_window,
            trusted_issuers=_split(self.jwt_trusted_issuers),
            hs256_secrets=_split(self.jwt_hs256_secrets),
            public_key_files=_split(self.jwt_public_keys),
            jwks_file=self.jwt_jwks_file,
            jwks_url=self.jwt_jwks_url,
        )


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


_SCALARS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "markets"}


def _coerce(name: str, raw: Any) -> Any:
    """Turn a file value or an environment string into the field's type, strictly."""
    kind = _SCALARS[name]
    try:
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError(f"expected an integer, got {raw!r}")
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"expected an integer, got {raw!r}") from None
        if kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError(f"expected a number, got {raw!r}")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"expected a number, got {raw!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {raw!r}")
            return value
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {raw!r}")
        return raw
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _markets(raw: Any) -> tuple[MarketConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("markets must be an array of tables")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(f"markets[{i}] must be a table")
        try:
            out.append(MarketConfig(**item))
        except TypeError as exc:
            raise ConfigError(f"markets[{i}]: {exc}") from None
    return tuple(out)


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Build a :class:`Config` from a TOML file, the environment and explicit overrides.

    Args:
        path: a TOML file, or None for none.
        env: the environment to read (``os.environ`` when None).
        overrides: values that win over everything (command-line flags); None is ignored.

    Raises:
        ConfigError: an unknown key, a malformed value or a value out of range.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        for key, raw in data.items():
            if key == "markets":
                values["markets"] = _markets(raw)
            elif key in _SCALARS:
                values[key] = _coerce(key, raw)
            else:
                raise ConfigError(f"unknown configuration key {key!r} in {path}")
    environ = os.environ if env is None else env
    for name in _SCALARS:
        raw_env = environ.get(ENV_PREFIX + name.upper())
        if raw_env is not None and raw_env != "":
            values[name] = _coerce(name, raw_env)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value) if name in _SCALARS else value
    return Config(**values)
