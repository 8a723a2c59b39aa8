"""Command line: ``streamgate serve``, ``streamgate apikey create|revoke|list``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import uvloop

from streamgate import __version__
from streamgate.auth.apikeys import ApiKeyInfo, ApiKeyStore, check_tenant
from streamgate.config import Config, load_config
from streamgate.errors import ConfigError
from streamgate.observability.logs import setup_logging
from streamgate.server.workers import WORKER_ENV, Supervisor

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway (HTTP and WebSocket on one port)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0: any)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--demo", action="store_true", help="also run the demo venue")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port with SO_REUSEPORT (default 1; >1 needs broker=redis)",
    )
    _apikey_parser(sub)
    return parser


def _apikey_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML configuration file (for data_dir)")
    apikey = sub.add_parser(
        "apikey",
        help="manage tenants' API keys (in STREAMGATE_DATA_DIR)",
        description="Tenants' API keys, kept as hashes in the data directory's database.",
    )
    actions = apikey.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create",
        parents=[common],
        help="make a new key; it is printed once, on the last line",
    )
    create.add_argument("--tenant", required=True, help="tenant name: 1-64 of A-Z a-z 0-9 _ . -")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key at once")
    revoke.add_argument("key", metavar="KEY", help="the key itself or its key_id")
    listing = actions.add_parser(
        "list", parents=[common], help="list keys: key_id, tenant, prefix, created, status"
    )
    listing.add_argument("--tenant", help="only this tenant's keys")


async def _serve(config: Config, demo: bool) -> int:
    from streamgate.errors import BrokerUnavailable
    from streamgate.server.app import Gateway

    gateway = Gateway(config)
    try:
        await gateway.start()
    except BrokerUnavailable as exc:
        print(f"streamgate: the broker cannot be reached: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(gateway.drain()))
    # One line on stdout that scripts can wait for (the port matters with --port 0).
    print(f"streamgate listening on http://{config.host}:{gateway.port}", flush=True)
    if demo:
        demo_task = asyncio.create_task(gateway.mount_demo().run())
        await gateway.wait_stopped()
        demo_task.cancel()
        await asyncio.gather(demo_task, return_exceptions=True)
    else:
        await gateway.wait_stopped()
    return 0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(info: ApiKeyInfo) -> str:
    status = "active" if info.revoked_at is None else f"revoked {_iso(info.revoked_at)}"
    return "\t".join((info.key_id, info.tenant, info.prefix, _iso(info.created_at), status))


def _apikey(config: Config, args: argparse.Namespace) -> int:
    """Run ``apikey create|revoke|list``: exit 0, 1 (unknown key) or 2 (bad input or data)."""
    tenant: str | None = getattr(args, "tenant", None)
    if tenant is not None:
        try:
            check_tenant(tenant)
        except ValueError as exc:
            print(f"streamgate: {exc}", file=sys.stderr)
            return 2
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
                print("streamgate: no such API key or key_id", file=sys.stderr)
                return 1
            assert revoked.revoked_at is not None
            print(
                f"revoked {revoked.key_id} of tenant {revoked.tenant}"
                f" (since {_iso(revoked.revoked_at)})"
            )
            return 0
        for info in store.list(tenant):
            print(_describe(info))
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(
            args.config,
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
        )
    except ConfigError as exc:
        print(f"streamgate: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    if args.command == "serve":
        if config.workers > 1 and WORKER_ENV not in os.environ:
            supervisor = Supervisor(
                config.workers,
                host=config.host,
                port=config.port,
                config_path=args.config,
                demo=args.demo,
            )
            return uvloop.run(supervisor.run())
        return uvloop.run(_serve(config, args.demo))
    if args.command == "apikey":
        try:
            return _apikey(config, args)
        except ConfigError as exc:
            print(f"streamgate: {exc}", file=sys.stderr)
            return 2
        except sqlite3.Error as exc:  # e.g. the database stayed locked past its busy timeout
            print(f"streamgate: database error: {exc}", file=sys.stderr)
            return 1
    return 2
