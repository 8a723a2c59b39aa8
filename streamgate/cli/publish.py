"""``streamgate publish``: JSON lines from a file or stdin, through the SDK's producer."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from streamgate.cli.common import CliError, Formatter, add_url, http_base, producer_key_of, run
from streamgate.client.producer import Producer, PublishError, PublishUnavailable
from streamgate.config import load_config
from streamgate.core import exact_json
from streamgate.protocol.producer import MAX_EVENTS

__all__ = ["Line", "read_lines", "register"]

MAX_SHOWN = 20  # bad lines listed before "... and N more"

_EPILOG = """\
examples:
  streamgate publish events.jsonl
  echo '{"topic":"trade/BTC-PERP-ADDR","data":{...}}' | streamgate publish
  streamgate publish --url http://10.0.0.5:8080 --key-file /run/secrets/producer.key big.jsonl

One event a line, as in the producer API's "events" array (PROTOCOL.md section 4); blank
lines are skipped. Every line is read first: a line that is not a JSON object is named
(line number) and nothing is published. Events go in order, in batches of --batch; each
is given an idempotency key unless it has one, so retries (503, lost connections) never
deliver an event twice. A refused event is named by its line; the batches before it stay
published, nothing after it is sent. The key: --key, --key-file, the configuration's
producer_key, or DATA_DIR/producer.key (as `streamgate serve` made it).
"""


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, in the file
    event: dict[str, Any]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "publish",
        help="publish JSON lines (a file or stdin) through the producer API",
        description="Publish events, one JSON object a line, through the producer API.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    cmd.add_argument("file", nargs="?", default="-", help="a JSON-lines file (default: stdin)")
    add_url(cmd)
    cmd.add_argument("--key", help="the producer key")
    cmd.add_argument("--key-file", help="a file holding the producer key")
    cmd.add_argument("--config", help="TOML configuration file (producer_key, data_dir)")
    cmd.add_argument(
        "--batch",
        type=int,
        default=MAX_EVENTS,
        help=f"events per request, 1..{MAX_EVENTS} (default {MAX_EVENTS})",
    )
    cmd.add_argument("--retries", type=int, default=5, help="retries per batch (default 5)")
    cmd.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: on a terminal, past one batch)",
    )
    cmd.set_defaults(run=_run)


def read_lines(stream: TextIO) -> tuple[list[Line], list[str]]:
    """The events of a JSON-lines stream, and one message per bad line."""
    lines, bad = [], []
    for number, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            event = exact_json.loads(text.encode())
        except orjson.JSONDecodeError as exc:
            bad.append(f"line {number}: not valid JSON: {exc}")
            continue
        if not isinstance(event, dict):
            bad.append(f"line {number}: an event must be a JSON object, got {type(event).__name__}")
            continue
        lines.append(Line(number, event))
    return lines, bad


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.batch <= MAX_EVENTS:
        raise CliError(f"--batch must be within 1..{MAX_EVENTS}", 2)
    if args.retries < 0:
        raise CliError("--retries must be >= 0", 2)
    config = load_config(args.config)
    key = producer_key_of(config, args.key, args.key_file)
    base = http_base(args.url)
    stream = _open(args.file)
    try:
        lines, bad = read_lines(stream)
    except UnicodeDecodeError as exc:
        raise CliError(f"{args.file}: not UTF-8 text ({exc.reason})", 2) from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    if bad:
        for message in bad[:MAX_SHOWN]:
            print(f"streamgate: {message}", file=sys.stderr)
        more = f" (and {len(bad) - MAX_SHOWN} more)" if len(bad) > MAX_SHOWN else ""
        raise CliError(f"{len(bad)} bad line(s){more}; nothing was published", 2)
    if not lines:
        raise CliError("no events to publish (empty input)", 2)
    show = args.progress == "always" or (
        args.progress == "auto" and sys.stderr.isatty() and len(lines) > args.batch
    )
    return run(_publish(base, key, lines, args.batch, args.retries, show))


async def _publish(
    base: str, key: str, lines: list[Line], batch: int, retries: int, show: bool
) -> int:
    accepted = duplicates = 0
    progress = Progress(
        TextColumn("publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=True,
    )
    async with Producer(base, key, max_batch=batch, retries=retries) as producer:
        with progress:
            task = progress.add_task("publish", total=len(lines))
            for start in range(0, len(lines), batch):
                chunk = lines[start : start + batch]
                try:
                    result = await producer.publish(*(line.event for line in chunk))
                except PublishUnavailable as exc:
                    raise CliError(_unavailable(base, exc, lines, start + exc.published)) from None
                except PublishError as exc:
                    raise CliError(_refused(exc, lines, start)) from None
                accepted += result.accepted
                duplicates += result.duplicates
                progress.advance(task, len(chunk))
    noun = "event" if len(lines) == 1 else "events"
    print(f"published {len(lines)} {noun}: {accepted} accepted, {duplicates} duplicates")
    return 0


def _sent_before(lines: list[Line], start: int) -> str:
    if start == 0:
        return "nothing was published"
    last, first = lines[start - 1].number, lines[start].number
    return f"lines up to {last} were published, none from line {first} on"


def _refused(exc: PublishError, lines: list[Line], start: int) -> str:
    if exc.status == 401:
        return f"the gateway refused the producer key (401 {exc.code}); nothing was published"
    where = "the batch"
    if exc.index is not None and start + exc.index < len(lines):
        where = f"line {lines[start + exc.index].number}"
    field = f" at {exc.field}" if exc.field else ""
    sent = _sent_before(lines, start + exc.published)
    return f"{where}: {exc.code}{field}: {exc.message}; {sent}"


def _unavailable(base: str, exc: PublishUnavailable, lines: list[Line], start: int) -> str:
    if exc.status == 0:
        what = f"cannot reach the gateway at {base} ({exc.code.lower()}: {exc.message})"
    else:
        what = f"the gateway at {base} is unavailable ({exc.status} {exc.code}: {exc.message})"
    return f"{what}; {_sent_before(lines, start)}"
