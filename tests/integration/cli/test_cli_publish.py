"""``streamgate publish`` against a real gateway: files, stdin, bad lines, refusals."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pexpect

from streamgate.server.app import Gateway

from .helpers import ROOT, clean_env, error_line, streamgate
from support import PRODUCER_KEY, UNIT, topic_history, trade_event


def lines(events: list[dict[str, object]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


async def test_a_large_file_is_published_in_batches_each_event_once(
    gw: Gateway, tmp_path: Path
) -> None:
    market = "0x" + "1a" * 32
    path = tmp_path / "events.jsonl"
    path.write_text(lines([trade_event(market, n) for n in range(1, 2501)]), encoding="utf-8")
    url = f"http://127.0.0.1:{gw.port}"
    done = await streamgate("publish", str(path), "--url", url, "--key", PRODUCER_KEY)
    assert done.code == 0, done.err
    assert done.out == "published 2500 events: 2500 accepted, 0 duplicates\n"
    offset, events = await topic_history(gw.port, f"trade/{market}")
    assert offset == 2500
    assert events[-1]["data"]["trades"][0]["id"] == "t2500"


async def test_stdin_the_data_dir_key_and_given_idempotency_keys(
    gw: Gateway, tmp_path: Path
) -> None:
    """No --key: the key is DATA_DIR/producer.key, as ``streamgate serve`` leaves it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "producer.key").write_text(PRODUCER_KEY + "\n", encoding="utf-8")
    market = "0x" + "2b" * 32
    body = lines([trade_event(market, n, idempotency_key=f"k{n}") for n in (1, 2, 3)])
    url = f"http://127.0.0.1:{gw.port}"
    first = await streamgate("publish", "--url", url, stdin=b"\n" + body.encode(), cwd=tmp_path)
    again = await streamgate("publish", "-", "--url", url, stdin=body.encode(), cwd=tmp_path)
    assert first.out == "published 3 events: 3 accepted, 0 duplicates\n", first.err
    assert again.out == "published 3 events: 0 accepted, 3 duplicates\n", again.err
    assert (await topic_history(gw.port, f"trade/{market}"))[0] == 3


async def test_bad_lines_are_named_and_nothing_is_published(gw: Gateway, tmp_path: Path) -> None:
    market = "0x" + "3c" * 32
    good = json.dumps(trade_event(market, 1))
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{{not json\n[1, 2]\n{good}\n", encoding="utf-8")
    url = f"http://127.0.0.1:{gw.port}"
    done = await streamgate("publish", str(path), "--url", url, "--key", PRODUCER_KEY)
    assert done.code == 2 and "Traceback" not in done.err
    said = done.err.splitlines()
    assert said[0].startswith("streamgate: line 3: not valid JSON")
    assert said[1] == "streamgate: line 4: an event must be a JSON object, got list"
    assert said[2] == "streamgate: 2 bad line(s); nothing was published"
    assert len(said) == 3
    assert (await topic_history(gw.port, f"trade/{market}"))[0] == 0


async def test_a_refused_event_is_named_by_its_line(gw: Gateway, tmp_path: Path) -> None:
    market = "0x" + "4d" * 32
    events = [trade_event(market, n) for n in range(1, 31)]
    events[24]["data"]["trades"][0]["price"] = "cheap"
    path = tmp_path / "events.jsonl"
    path.write_text("\n" + lines(events), encoding="utf-8")  # so event i is on line i + 2
    url = f"http://127.0.0.1:{gw.port}"
    args = ["publish", str(path), "--url", url, "--key", PRODUCER_KEY, "--batch", "10"]
    line = error_line(await streamgate(*args))
    assert line.startswith("streamgate: line 26: INVALID_EVENT at data.trades[0].price: "), line
    assert line.endswith("; lines up to 21 were published, none from line 22 on"), line
    assert (await topic_history(gw.port, f"trade/{market}"))[0] == 20


async def test_no_key_anywhere(tmp_path: Path) -> None:
    done = await streamgate("publish", stdin=b"{}\n", cwd=tmp_path)
    assert error_line(done).startswith("streamgate: no producer key: cannot read data/producer.key")
    assert done.code == 2


async def test_an_empty_input_and_a_missing_file(tmp_path: Path) -> None:
    empty = await streamgate("publish", "--key", "k", stdin=b"\n\n")
    assert error_line(empty) == "streamgate: no events to publish (empty input)"
    missing = await streamgate("publish", str(tmp_path / "none.jsonl"), "--key", "k")
    assert error_line(missing).startswith("streamgate: cannot read ")


async def test_a_large_file_shows_a_progress_bar_on_a_terminal(gw: Gateway, tmp_path: Path) -> None:
    """In a real pty (pexpect): the bar is drawn on stderr while batches go, then cleared."""
    market = "0x" + "5f" * 32
    path = tmp_path / "big.jsonl"
    path.write_text(lines([trade_event(market, n) for n in range(1, 5001)]), encoding="utf-8")
    argv = ["-m", "streamgate", "publish", str(path), "--batch", "100"]
    argv += ["--url", f"http://127.0.0.1:{gw.port}", "--key", PRODUCER_KEY]

    def run() -> tuple[str, int]:
        child = pexpect.spawn(
            sys.executable,
            argv,
            cwd=str(ROOT),
            env=clean_env(TERM="xterm"),
            encoding="utf-8",
            dimensions=(24, 100),
            timeout=30 * UNIT,
        )
        child.expect(r"publishing.*\d+/5000")  # the bar, with its count
        child.expect("published 5000 events: 5000 accepted, 0 duplicates")
        child.expect(pexpect.EOF)
        child.close()
        return str(child.before), int(child.exitstatus or 0)

    rest, code = await asyncio.to_thread(run)
    assert code == 0 and "Traceback" not in rest
    assert (await topic_history(gw.port, f"trade/{market}"))[0] == 5000
