"""``streamgate apikey create|revoke|list``: tenants' API keys in the data directory."""

from __future__ import annotations

import argparse
import sqlite3
from datetime import UTC, datetime

from streamgate.auth.apikeys import ApiKeyInfo, ApiKeyStore, check_tenant
from streamgate.cli.common import CliError, Formatter
from streamgate.config import load_config

__all__ = ["register"]

_EPILOG = """\
examples:
  streamgate apikey create --tenant acme      the key alone on the last line (shown once)
  KEY=$(streamgate apikey create --tenant acme | tail -n 1)
  streamgate apikey list --tenant acme        key_id, tenant, prefix, created, status
  streamgate apikey revoke "$KEY"             or its key_id

Keys are kept as hashes in STREAMGATE_DATA_DIR (or the config file's data_dir).
Exit status: 0, 1 (no such key), 2 (bad input or data).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML configuration file (for data_dir)")
    apikey = sub.add_parser(
        "apikey",
        help="manage tenants' API keys (in STREAMGATE_DATA_DIR)",
        description="Tenants' API keys, kept as hashes in the data directory's database.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    actions = apikey.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        parents=[common],
        help="make a new key; it is printed once, on the last line",
        description="Make a new API key for a tenant; it is printed once, on the last line.",
        epilog="example:\n  streamgate apikey create --tenant acme | tail -n 1",
        formatter_class=Formatter,
    )
    create.add_argument("--tenant", required=True, help="tenant name: 1-64 of A-Z a-z 0-9 _ . -")
    revoke = actions.add_parser(
        "revoke",
        parents=[common],
        help="revoke a key at once",
        description="Revoke a key at once: its tickets stop minting, its sockets close.",
        epilog="example:\n  streamgate apikey revoke sgk_0123abcd",
        formatter_class=Formatter,
    )
    revoke.add_argument("key", metavar="KEY", help="the key itself or its key_id")
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="list keys: key_id, tenant, prefix, created, status",
        description="List keys, one a line, tab-separated: key_id tenant prefix created status.",
        epilog="example:\n  streamgate apikey list --tenant acme",
        formatter_class=Formatter,
    )
    listing.add_argument("--tenant", help="only this tenant's keys")
    apikey.set_defaults(run=_run)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(info: ApiKeyInfo) -> str:
    status = "active" if info.revoked_at is None else f"revoked {_iso(info.revoked_at)}"
    return "\t".join((info.key_id, info.tenant, info.prefix, _iso(info.created_at), status))


def _run(args: argparse.Namespace) -> int:
    """Run ``apikey create|revoke|list``: exit 0, 1 (unknown key) or 2 (bad input or data)."""
    config = load_config(args.config)
    tenant: str | None = getattr(args, "tenant", None)
    if tenant is not None:
        try:
            check_tenant(tenant)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
    try:
        with ApiKeyStore.in_data_dir(config.data_path) as store:
            if args.action == "create":
                assert tenant is not None  # required by the parser
                key, info = store.create(tenant)
                # The key alone on the last line, so scripts can take it with `tail -n 1`.
                print(f"created {info.key_id} for tenant {info.tenant} (shown once; keep it now)")
                print(key)
                return 0
            if args.action == "revoke":
                revoked = store.revoke(args.key)
                if revoked is None:
                    raise CliError("no such API key or key_id", 1)
                assert revoked.revoked_at is not None
                print(
                    f"revoked {revoked.key_id} of tenant {revoked.tenant}"
                    f" (since {_iso(revoked.revoked_at)})"
                )
                return 0
            for info in store.list(tenant):
                print(_describe(info))
            return 0
    except sqlite3.Error as exc:  # e.g. the database stayed locked past its busy timeout
        raise CliError(f"database error: {exc}", 1) from None
