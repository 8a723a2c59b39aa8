"""Configuration: TOML file, STREAMGATE_* environment, overrides, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamgate.config import Config, MarketConfig, load_config
from streamgate.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = load_config(env={})
    assert config == Config()
    assert (config.host, config.port, config.broker) == ("127.0.0.1", 8080, "memory")
    assert config.markets == ()
    assert config.data_path == Path("data")


def test_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
host = "0.0.0.0"
port = 9000
ping_interval = 5
history_ttl = 12.5
producer_key = "secret"
broker = "redis"

[[markets]]
market_addr = "0x88a7"
symbol = "BTC-PERP"
price_decimals = 2
size_decimals = 4

[[markets]]
market_addr = "0x99"
symbol = "ETH-PERP"
""",
    )
    config = load_config(path, env={})
    assert (config.host, config.port, config.producer_key, config.broker) == (
        "0.0.0.0",
        9000,
        "secret",
        "redis",
    )
    assert config.ping_interval == 5.0 and isinstance(config.ping_interval, float)
    assert config.history_ttl == 12.5
    assert config.markets == (
        MarketConfig("0x88a7", "BTC-PERP", 2, 4),
        MarketConfig("0x99", "ETH-PERP"),
    )
    assert config.markets[0].describe() == {
        "market_addr": "0x88a7",
        "symbol": "BTC-PERP",
        "price_decimals": 2,
        "size_decimals": 4,
    }
    assert config.max_subscriptions == Config().max_subscriptions  # untouched default


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 9000\nhost = "h"\nhistory_ttl = 5\n')
    env = {
        "STREAMGATE_PORT": "9100",
        "STREAMGATE_HISTORY_TTL": "0.25",
        "STREAMGATE_HOST": "",  # empty: not set
        "STREAMGATE_DATA_DIR": "/var/lib/sg",
        "OTHER_PORT": "1",
    }
    config = load_config(path, env=env)
    assert (config.port, config.history_ttl, config.host) == (9100, 0.25, "h")
    assert config.data_path == Path("/var/lib/sg")


def test_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 9000\n")
    config = load_config(path, env={"STREAMGATE_PORT": "9100"}, port=9200, host=None)
    assert (config.port, config.host) == (9200, "127.0.0.1")


def test_os_environ_is_read_when_no_env_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMGATE_OPS_BURST", "7")
    monkeypatch.setenv("STREAMGATE_LOG_LEVEL", "DEBUG")
    config = load_config()
    assert (config.ops_burst, config.log_level) == (7, "DEBUG")


def test_port_zero_means_any() -> None:
    assert load_config(env={"STREAMGATE_PORT": "0"}).port == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "1.5"),
        ("PORT", "65536"),
        ("PORT", "-1"),
        ("PING_INTERVAL", "soon"),
        ("PING_INTERVAL", "0"),
        ("PING_TIMEOUT", "-1"),
        ("MAX_SUBSCRIPTIONS", "0"),
        ("OPS_BURST", "-5"),
        ("OPS_PER_SECOND", "0"),
        ("ABUSE_WINDOW", "0.0"),
        ("HISTORY_SIZE", "0"),
        ("HISTORY_TTL", "-0.1"),
        ("OUTBOUND_BUFFER_BYTES", "0"),
        ("MAX_PUBLISH_BYTES", "x"),
        ("BROKER", "kafka"),
        ("MAX_FRAME_BYTES", "2000000"),  # above hard_max_frame_bytes
    ],
)
def test_bad_env_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        load_config(env={f"STREAMGATE_{name}": value})


@pytest.mark.parametrize(
    "text",
    [
        "port = true",
        "port = 70000",
        'port = "eighty"',
        "ping_interval = false",
        "ping_interval = 0",
        "max_subscriptions = -1",
        'broker = "Memory"',
        "hard_max_frame_bytes = 100\nmax_frame_bytes = 200",
        "markets = 1",
        'markets = "BTC"',
        "markets = [1]",
        'markets = [{market_addr = "0x1", symbol = "A", tick = 1}]',
        'markets = [{market_addr = "0x1"}]',
        "port = ",  # not TOML
    ],
)
def test_bad_file_values(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text + "\n"), env={})


def test_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_subscription"):
        load_config(write(tmp_path, "max_subscription = 5\n"), env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path / "absent.toml", env={})


def test_config_validates_direct_construction() -> None:
    with pytest.raises(ConfigError):
        Config(port=65536)
    with pytest.raises(ConfigError):
        Config(history_size=0)
    assert Config(port=65535).port == 65535


@pytest.mark.parametrize("name", ["PING_INTERVAL", "HISTORY_TTL", "OPS_PER_SECOND"])
def test_nan_is_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        load_config(env={f"STREAMGATE_{name}": "nan"})


def test_fractional_integer_in_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "port = 8080.7\n"), env={})


@pytest.mark.parametrize("value", ['["a", 1]', "{ a = 1 }"])
def test_non_string_for_string_field_is_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, f"host = {value}\n"), env={})
