"""``streamgate serve`` as a real process: config file + environment, health, SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from streamgate.client.http import HttpClient

from support import UNIT, open_ws, recv_json, subscribe


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'host = "127.0.0.1"\nport = 0\n'
        '[[markets]]\nmarket_addr = "0xfeed"\nsymbol = "SOL-PERP"\nprice_decimals = 3\n'
    )
    env = {
        **os.environ,
        "STREAMGATE_DATA_DIR": str(tmp_path / "data"),
        "STREAMGATE_DRAIN_TIMEOUT": "3",
    }
    env.pop("STREAMGATE_PRODUCER_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamgate", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("streamgate listening on http://127.0.0.1:"), line
        yield proc, int(line.rsplit(":", 1)[1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def test_serve_answers_health_and_drains_on_sigterm(
    served: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    proc, port = served
    key_file = tmp_path / "data" / "producer.key"
    assert key_file.stat().st_mode & 0o777 == 0o600  # generated once, private
    client = HttpClient(f"http://127.0.0.1:{port}")
    try:
        assert (await client.request("GET", "/healthz")).status == 200
        assert (await client.request("GET", "/readyz")).json() == {"status": "ready"}
        markets = (await client.request("GET", "/api/v1/markets")).json()
        assert markets == [
            {"market_addr": "0xfeed", "symbol": "SOL-PERP", "price_decimals": 3, "size_decimals": 0}
        ]
    finally:
        await client.close()

    async with open_ws(port) as ws:
        await subscribe(ws, ["trade/0xfeed"])
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as info:
            await recv_json(ws, within=5)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1012
    code = await asyncio.to_thread(proc.wait, 10 * UNIT)
    assert code == 0


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("ping_interval = -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "streamgate", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ping_interval must be positive" in result.stderr
