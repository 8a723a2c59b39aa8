"""``streamgate bench`` against a real gateway: small, bounded, every message counted."""

from __future__ import annotations

import re

from streamgate.server.app import Gateway

from .helpers import error_line, streamgate
from support import PRODUCER_KEY


async def test_bench_reports_deliveries_and_latency(gw: Gateway) -> None:
    url = f"http://127.0.0.1:{gw.port}"
    args = ["bench", "--url", url, "--key", PRODUCER_KEY]
    done = await streamgate(*args, "--subscribers", "3", "--seconds", "1", "--rate", "200")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    published = re.fullmatch(r"published (\d+) events in 1 s to 3 subscribers", lines[0])
    assert published, done.out
    n = int(published.group(1))
    assert 150 <= n <= 200  # 200 a second for one second, in 20 ms ticks
    assert lines[1].startswith(f"delivered {3 * n} of {3 * n} messages (0 missing): ")
    assert re.fullmatch(r"delivered .*: [\d,]+ msgs/s", lines[1])
    latency = re.fullmatch(
        r"latency ms: p50 ([\d.]+)  p90 ([\d.]+)  p99 ([\d.]+)  max ([\d.]+)", lines[2]
    )
    assert latency, done.out
    p50, p90, p99, top = (float(v) for v in latency.groups())
    assert 0 < p50 <= p90 <= p99 <= top


async def test_bench_refuses_silly_arguments() -> None:
    done = await streamgate("bench", "--subscribers", "0", "--key", "k")
    assert error_line(done) == "streamgate: --subscribers must be within 1..10000"
    assert done.code == 2
