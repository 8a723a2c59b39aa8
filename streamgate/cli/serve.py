"""``streamgate serve``: the gateway (HTTP and WebSocket on one port)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from streamgate.cli.common import CliError, Formatter, os_error, run
from streamgate.config import Config, load_config
from streamgate.observability.logs import setup_logging
from streamgate.server.workers import WORKER_ENV, Supervisor

__all__ = ["configure_logging", "register"]

_EPILOG = """\
examples:
  streamgate serve                          127.0.0.1:8080, memory broker, data in ./data
  streamgate serve --demo                   with the demo venue publishing market data
  streamgate serve --port 0                 any free port (the first line of stdout says which)
  streamgate serve --config gateway.toml --workers 4   (workers > 1 need broker = "redis")

The first line on stdout is `streamgate listening on http://HOST:PORT` once it serves.
SIGTERM or Ctrl-C drains it: sockets are closed with 1001 and the port released.
Settings: `streamgate config show` prints them all; STREAMGATE_<NAME> variables override
the file, and these flags override both.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gateway (HTTP and WebSocket on one port)",
        description="Run the gateway: HTTP and WebSocket on one port.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0: any)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--demo", action="store_true", help="also run the demo venue")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port with SO_REUSEPORT (default 1; >1 needs broker=redis)",
    )
    serve.set_defaults(run=_run)


def configure_logging(config: Config) -> None:
    setup_logging(config.log_level, config.log_format)


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config, host=args.host, port=args.port, workers=args.workers)
    configure_logging(config)
    if config.workers > 1 and WORKER_ENV not in os.environ:
        supervisor = Supervisor(
            config.workers,
            host=config.host,
            port=config.port,
            config_path=args.config,
            demo=args.demo,
        )
        return run(supervisor.run())
    return run(_serve(config, args.demo))


async def _serve(config: Config, demo: bool) -> int:
    from streamgate.errors import BrokerUnavailable
    from streamgate.server.app import Gateway

    gateway = Gateway(config)
    try:
        await gateway.start()
    except BrokerUnavailable as exc:
        raise CliError(f"the broker cannot be reached: {exc}") from None
    except OSError as exc:
        raise CliError(os_error(exc, f"cannot listen on {config.host}:{config.port}")) from None
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
