"""What the commands share: the one-line error, URLs, the producer key, the async runner."""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

from streamgate.config import Config

__all__ = [
    "DEFAULT_URL",
    "CliError",
    "Formatter",
    "add_url",
    "http_base",
    "os_error",
    "producer_key_of",
    "run",
    "ws_base",
]

DEFAULT_URL = "http://127.0.0.1:8080"


class CliError(Exception):
    """A failure the command line reports as one line on stderr, with ``code`` as exit."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples of each epilog as written."""


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the gateway's base URL, http:// or ws:// (default {DEFAULT_URL})",
    )


def _parts(url: str) -> tuple[str, str]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise CliError(f"bad gateway URL {url!r}: need http://host:port", 2)
    try:
        port = parts.port
    except ValueError:
        raise CliError(f"bad gateway URL {url!r}: the port is not a number", 2) from None
    if not parts.hostname:
        raise CliError(f"bad gateway URL {url!r}: no host", 2)
    secure = parts.scheme in ("https", "wss")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    return ("s" if secure else ""), netloc


def http_base(url: str) -> str:
    """``url`` as ``http(s)://host:port`` (a ws:// URL or a bare host:port accepted)."""
    secure, netloc = _parts(url)
    return f"http{secure}://{netloc}"


def ws_base(url: str) -> str:
    """``url`` as ``ws(s)://host:port``."""
    secure, netloc = _parts(url)
    return f"ws{secure}://{netloc}"


def producer_key_of(config: Config, key: str | None, key_file: str | None) -> str:
    """The producer key: ``--key``, ``--key-file``, the configured one, or the data dir's."""
    if key:
        return key
    path = Path(key_file) if key_file else None
    if path is None and config.producer_key:
        return config.producer_key
    path = path or config.data_path / "producer.key"
    try:
        found = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(
            f"no producer key: cannot read {path} ({exc.strerror}); give --key or --key-file", 2
        ) from None
    if not found:
        raise CliError(f"no producer key: {path} is empty", 2)
    return found


def os_error(exc: OSError, what: str) -> str:
    """One line for a socket error while doing ``what``."""
    if isinstance(exc, socket.gaierror):
        return f"{what}: unknown host ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return f"{what}: the address is already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{what}: the address is not one of this machine's"
    if exc.errno == errno.EACCES:
        return f"{what}: permission denied (a port below 1024 needs privileges)"
    if exc.errno == errno.ECONNREFUSED:
        return f"{what}: connection refused (is the gateway running?)"
    return f"{what}: {exc.strerror or exc}"


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on uvloop; Ctrl-C ends it quietly with 130."""
    try:
        return uvloop.run(main)
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        return 130
