"""``streamgate config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from .helpers import clean_env, streamgate

SECRETS = {
    "STREAMGATE_PRODUCER_KEY": "prod-key-s3cr3t",
    "STREAMGATE_REDIS_URL": "redis://admin:redis-s3cr3t@10.0.0.7:6380/2",
    "STREAMGATE_JWT_HS256_SECRETS": "k1=hs-s3cr3t-one,hs-s3cr3t-two",
    "STREAMGATE_WEBHOOKS_POSTGRES_DSN": "postgresql://sg:pg-s3cr3t@db:5432/sg?sslmode=require",
    "STREAMGATE_JWT_JWKS_URL": "https://idp.example/jwks?token=jwks-s3cr3t",
    "STREAMGATE_ADMIN_KEY": "admin-key-s3cr3t",
}


async def test_secrets_are_masked_and_the_rest_shown(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'port = 9100\n[[markets]]\nmarket_addr = "0xabc"\nsymbol = "ABC-PERP"\n', encoding="utf-8"
    )
    done = await streamgate("config", "show", "--config", str(config), env=clean_env(**SECRETS))
    assert done.code == 0, done.err
    assert "s3cr3t" not in done.out
    shown = tomllib.loads(done.out)  # TOML: it can be kept as a configuration file
    assert shown["port"] == 9100
    assert shown["producer_key"] == "********"
    assert shown["admin_key"] == "********"
    assert shown["redis_url"] == "redis://admin:********@10.0.0.7:6380/2"
    assert shown["jwt_hs256_secrets"] == "k1=********,********"
    assert shown["webhooks_postgres_dsn"] == "postgresql://sg:********@db:5432/sg?sslmode=require"
    assert shown["jwt_jwks_url"] == "https://idp.example/jwks?token=********"
    assert shown["markets"] == [
        {"market_addr": "0xabc", "symbol": "ABC-PERP", "price_decimals": 0, "size_decimals": 0}
    ]
    assert "port = 9100  # set\n" in done.out
    assert 'host = "127.0.0.1"\n' in done.out  # a default, not marked


async def test_json_and_a_key_value_dsn() -> None:
    env = clean_env(STREAMGATE_WEBHOOKS_POSTGRES_DSN="host=db password='p w s3cr3t' dbname=sg")
    done = await streamgate("config", "show", "--json", env=env)
    assert done.code == 0, done.err
    doc = json.loads(done.out)
    assert doc["webhooks_postgres_dsn"] == "host=db password=******** dbname=sg"
    assert doc["producer_key"] == "" and doc["broker"] == "memory"
