"""``streamgate config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from streamgate.cli.common import Formatter
from streamgate.config import Config, load_config

__all__ = ["MASK", "mask", "register", "shown"]

MASK = "********"
# Values that are secrets whole, and values that are lists of "kid=secret" or secrets.
_SECRETS = frozenset({"producer_key", "admin_key"})
_SECRET_LISTS = frozenset({"jwt_hs256_secrets"})
# URLs and DSNs whose password is masked (user and host stay: they are what one checks).
_URLS = frozenset({"redis_url", "webhooks_postgres_dsn", "jwt_jwks_url"})
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"((?:password|secret|token|key)=)[^&]*", re.IGNORECASE)

_EPILOG = """\
examples:
  streamgate config show                        defaults and STREAMGATE_* variables
  streamgate config show --config gateway.toml  with a file (the variables win over it)
  streamgate config show --json                 one JSON object, for scripts

Printed as TOML, so it can be kept as a configuration file; `# set` marks the values
that are not the defaults. Secrets are masked: the producer key, the admin key, JWT secrets,
and the passwords in the Redis URL, the PostgreSQL DSN and the JWKS URL.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "config",
        help="show the effective configuration, secrets masked",
        description="The gateway's configuration.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the effective configuration (file, environment, defaults), secrets masked",
        description="Print the configuration `streamgate serve` would run with, secrets masked.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    show.add_argument("--config", help="TOML configuration file")
    show.add_argument("--json", action="store_true", help="one JSON object instead of TOML")
    show.set_defaults(run=_show)


def _mask_url(value: str) -> str:
    if "://" not in value:  # a libpq key=value DSN
        return _DSN_PASSWORD.sub(lambda m: m.group(1) + MASK, value)
    parts = urlsplit(value)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask(name: str, value: Any) -> Any:
    """``value`` of setting ``name`` as it may be shown."""
    if not isinstance(value, str) or not value:
        return value
    if name in _SECRETS:
        return MASK
    if name in _SECRET_LISTS:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return ",".join(p.split("=", 1)[0] + "=" + MASK if "=" in p else MASK for p in parts)
    if name in _URLS:
        return _mask_url(value)
    return value


def shown(config: Config) -> dict[str, Any]:
    """Every setting of ``config``, masked, markets as tables."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "markets":
            out["markets"] = [m.describe() for m in value]
        else:
            out[f.name] = mask(f.name, value)
    return out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()  # a JSON string is a TOML basic string


def _show(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    values = shown(config)
    if args.json:
        print(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode())
        return 0
    defaults = Config()
    for name, value in values.items():
        if name == "markets":
            continue
        note = "" if getattr(defaults, name) == getattr(config, name) else "  # set"
        if config.producer_key == "" and name == "producer_key":
            note = f"  # empty: generated once, kept in {config.data_path / 'producer.key'}"
        print(f"{name} = {_toml(value)}{note}")
    for market in values["markets"]:
        print("\n[[markets]]")
        for key, item in market.items():
            print(f"{key} = {_toml(item)}")
    return 0
