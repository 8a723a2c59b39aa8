"""``streamgate tail`` and ``push tail`` as subprocesses against real gateways."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamgate.auth.apikeys import ApiKeyStore
from streamgate.client.http import HttpClient
from streamgate.config import MarketConfig
from streamgate.server.app import Gateway
from streamgate.venue.runner import DEMO_MARKETS

from .helpers import ROOT, clean_env, demo_gateway
from support import UNIT, notice, publish_ok, running_gateway, trade_event
from support.cluster import free_port, until
from support.proxy import DroppingProxy

MARKET = "0x" + "5e" * 32
SYMBOL = "TST-PERP"
MARKETS = (MarketConfig(MARKET, SYMBOL, price_decimals=2, size_decimals=3),)
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} trade/TST-PERP seq=(\d+) offset=(\d+) buy 1 @ (\d+)$")


class Tail:
    """A running ``streamgate ...`` whose stdout and stderr lines are collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._lines(proc.stdout, self.out)),
            asyncio.create_task(self._lines(proc.stderr, self.err)),
        ]

    @staticmethod
    async def _lines(stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode().rstrip("\n"))

    async def wait(self, within: float = 20.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), within * UNIT)
        await asyncio.gather(*self._readers)
        return code

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def start(*args: str) -> Tail:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamgate",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=clean_env(),
    )
    return Tail(proc)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, markets=MARKETS) as gateway:
        yield gateway


async def publish_until(gw: Gateway, tail: Tail, seen: int, first_seq: int = 1) -> int:
    """Publish a trade every 50 ms until ``tail`` printed ``seen`` lines or ended."""
    seq = first_seq
    for _ in range(int(400 * UNIT)):  # 20 s at most
        if len(tail.out) >= seen or tail.proc.returncode is not None:
            break
        await publish_ok(gw, [trade_event(MARKET, seq)])
        seq += 1
        await asyncio.sleep(0.05)
    return seq


async def test_tail_by_symbol_prints_a_line_per_event(gw: Gateway) -> None:
    url = f"http://127.0.0.1:{gw.port}"
    tail = await start("tail", f"trade/{SYMBOL}", "--url", url, "--count", "3")
    try:
        await publish_until(gw, tail, 3)
        assert await tail.wait() == 0, tail.err
    finally:
        await tail.stop()
    matches = [LINE.match(line) for line in tail.out]
    assert all(matches) and len(matches) == 3, tail.out
    offsets = [int(m.group(2)) for m in matches if m]
    seqs = [int(m.group(1)) for m in matches if m]
    assert offsets == list(range(offsets[0], offsets[0] + 3))
    assert seqs == [o for o in offsets]  # one trade per seq, from seq 1 at offset 1
    assert [int(m.group(3)) for m in matches if m] == [100 + s for s in seqs]


async def test_tail_json_lines_of_a_whole_market(gw: Gateway) -> None:
    url = f"http://127.0.0.1:{gw.port}"
    tail = await start("tail", SYMBOL, "--url", url, "--json", "--count", "2")
    try:
        await publish_until(gw, tail, 2)
        assert await tail.wait() == 0, tail.err
    finally:
        await tail.stop()
    docs = [json.loads(line) for line in tail.out]
    assert [d["topic"] for d in docs] == [f"trade/{MARKET}"] * 2
    assert all(isinstance(d["epoch"], str) and d["offset"] >= 1 for d in docs)
    assert docs[0]["data"]["trades"][0]["price"] == 100 + docs[0]["seq"]


async def test_tail_says_it_reconnected_and_recovered(gw: Gateway) -> None:
    """A cut connection (a real TCP proxy drops it): resumed, every event once."""
    proxy = await DroppingProxy(gw.port).start()
    tail = await start("tail", f"trade/{SYMBOL}", "--url", proxy.url, "--json", "--count", "6")
    try:
        seq = await publish_until(gw, tail, 2)
        assert proxy.cut() >= 1
        for n in range(seq, seq + 2):  # published while the tail is away: replayed
            await publish_ok(gw, [trade_event(MARKET, n)])
        await publish_until(gw, tail, 6, seq + 2)
        assert await tail.wait() == 0, tail.err
    finally:
        await tail.stop()
        await proxy.stop()
    offsets = [json.loads(line)["offset"] for line in tail.out]
    assert offsets == list(range(offsets[0], offsets[0] + 6)), offsets
    assert any(line.startswith("-- disconnected") for line in tail.err), tail.err
    assert any("recovered, no event missed" in line for line in tail.err), tail.err


async def test_tail_says_when_events_were_lost(tmp_path: Path) -> None:
    """The gateway restarts (memory broker: history gone, another epoch): not recovered."""
    port = free_port()
    first = running_gateway(tmp_path / "a", port=port, markets=MARKETS)
    gw = await first.__aenter__()
    url = f"http://127.0.0.1:{port}"
    tail = await start("tail", f"trade/{SYMBOL}", "--url", url)
    try:
        await publish_until(gw, tail, 1)
        before = len(tail.out)
        await first.__aexit__(None, None, None)
        async with running_gateway(tmp_path / "b", port=port, markets=MARKETS) as again:
            await publish_until(again, tail, before + 1)
            tail.proc.send_signal(signal.SIGINT)  # Ctrl-C: a quiet end
            assert await tail.wait() == 130, tail.err
    finally:
        await tail.stop()
    said = "\n".join(tail.err)
    assert "-- disconnected" in said
    assert "NOT recovered: events of trade/TST-PERP were lost" in said, said
    assert "Traceback" not in said
    assert len(tail.out) > before


async def test_push_tail_prints_a_sub_users_pushes(gw: Gateway, tmp_path: Path) -> None:
    with ApiKeyStore.in_data_dir(tmp_path) as store:
        key, _ = store.create("acme")
    url = f"http://127.0.0.1:{gw.port}"
    tail = await start(
        "push", "tail", "--api-key", key, "--sub-user", "alice", "--url", url, "--count", "2"
    )
    try:
        for n in range(int(400 * UNIT)):
            if len(tail.out) >= 2 or tail.proc.returncode is not None:
                break
            await publish_ok(gw, [notice("acme", "alice", f"hello {n}")])
            await asyncio.sleep(0.05)
        assert await tail.wait() == 0, tail.err
    finally:
        await tail.stop()
    assert len(tail.out) == 2
    for line in tail.out:
        assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} system\.notice seq=- offset=\d+ ", line), line
        assert "severity=info message=hello " in line, line


async def test_tail_of_the_private_stream_with_a_bearer(tmp_path: Path) -> None:
    """The demo's account: its bearer opens /ws/private; its own order arrives as a line."""
    async with demo_gateway(tmp_path) as port:
        url = f"http://127.0.0.1:{port}"
        http = HttpClient(url)
        try:
            account = (await http.request("POST", "/demo/account")).json()
            tail = await start(
                "tail",
                "order",
                "--bearer",
                account["token"],
                "--url",
                url,
                "--json",
                "--count",
                "1",
            )
            try:
                await until(
                    lambda: any("-- subscribed: order" in line for line in tail.err),
                    lambda: "\n".join(tail.err),
                )
                order = {"market_addr": DEMO_MARKETS[0].market_addr, "side": "buy", "size": 10}
                placed = await http.post_json(
                    "/demo/orders", order, {"authorization": f"Bearer {account['token']}"}
                )
                assert placed.status == 200, placed.body
                assert await tail.wait() == 0, tail.err
            finally:
                await tail.stop()
        finally:
            await http.close()
    [line] = tail.out
    doc = json.loads(line)
    assert doc["topic"] == "order"
    assert all(item["user_addr"] == account["user_id"] for item in doc["data"])
