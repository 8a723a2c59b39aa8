"""The ``streamgate`` command: one console script, a module per command group.

Every error is one line on stderr (``streamgate: ...``) and a non-zero exit status:
1 when something failed, 2 for bad input (arguments, configuration, files), 130 after
Ctrl-C. ``--traceback`` shows where an unexpected error came from.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamgate import __version__
from streamgate.cli import apikey, bench, book, config, markets, publish, push, serve, tail
from streamgate.cli.common import CliError, Formatter
from streamgate.client.errors import ClientError
from streamgate.errors import ConfigError

__all__ = ["main", "parser"]

_EPILOG = """\
examples:
  streamgate serve --demo                      the gateway and its demo venue on :8080
  streamgate markets                           symbols and addresses
  streamgate tail trade/BTC-PERP ticker/ETH-PERP
  streamgate book BTC-PERP                     a live top of book
  streamgate publish events.jsonl              JSON lines through the producer API
  streamgate push tail --api-key K --sub-user alice
  streamgate config show                       the effective configuration, secrets masked

`streamgate COMMAND --help` tells each command's options.
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="streamgate",
        description="streamgate: a real-time WebSocket event gateway, and its clients.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    top.add_argument("--version", action="version", version=f"streamgate {__version__}")
    top.add_argument(
        "--traceback", action="store_true", help="on an unexpected error, show the traceback"
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (serve, apikey, markets, tail, push, book, publish, bench, config):
        group.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except ClientError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        sys.stderr.close()
        return 0
    except Exception as exc:
        if args.traceback:
            raise
        return _fail(f"unexpected error: {type(exc).__name__}: {exc} (--traceback shows where)", 1)


def _fail(message: str, code: int) -> int:
    print(f"streamgate: {message}", file=sys.stderr)
    return code
