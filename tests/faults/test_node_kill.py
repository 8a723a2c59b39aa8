"""``kill -9`` of a node while producers publish at full speed: resuming clients lose nothing.

Three gateway processes on one Redis (the machine's, under a prefix of the test's own).
Producers publish through b and c as fast as they answer; clients on a follow every
topic. a is killed with SIGKILL; its clients reconnect to b and c with their offsets and
epochs. Each must end with exactly the accepted events, in order: zero lost, zero twice.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fault_support import (
    Producer,
    Resumer,
    cancel,
    gateways,
    lost_and_duplicated,
    new_prefix,
)

from support.cluster import WAIT, Procs, until
from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

pytestmark = [pytest.mark.faults, pytest.mark.redis]

CLIENTS = 8
TOPICS = [f"trade/0xk{i}" for i in range(2)]
BATCH = 2  # events per publish; the producers still go as fast as the nodes answer


async def test_kill_9_of_a_node_loses_nothing_for_resuming_clients(procs: Procs) -> None:
    await ensure_redis()
    prefix = new_prefix()
    running: list[asyncio.Task[None]] = []
    try:
        a, b, c = await gateways(
            procs,
            ["a", "b", "c"],
            STREAMGATE_BROKER="redis",
            STREAMGATE_REDIS_URL=REDIS_URL,
            STREAMGATE_REDIS_PREFIX=prefix,
        )
        clients = [Resumer([a, b, c] if i % 2 else [a, c, b], TOPICS) for i in range(CLIENTS)]
        running += [r.task for r in clients]
        await until(lambda: all(r.sockets == 1 for r in clients), "every client subscribed on a")
        producers = [Producer((b, c)[i % 2].url, t, BATCH) for i, t in enumerate(TOPICS)]
        producing = [asyncio.create_task(p.run()) for p in producers]
        running += producing
        started = time.monotonic()

        def each_has(count: int) -> bool:
            return all(len(r.ids[t]) >= count for r in clients for t in TOPICS)

        await until(lambda: each_has(100), "100 events per topic on every client")
        a.proc.popen.kill()  # SIGKILL: no drain, no close frame
        killed_at = time.monotonic()
        at_kill = sum(len(p.accepted) for p in producers)
        await until(lambda: all(r.sockets >= 2 for r in clients), "every client resumed")
        resumed_in = time.monotonic() - killed_at
        floor = min(len(r.ids[t]) for r in clients for t in TOPICS)
        await until(lambda: each_has(floor + 100), "100 more events per topic after the kill")
        for p in producers:
            p.stop.set()
        await asyncio.wait_for(asyncio.gather(*producing), WAIT)
        for p in producers:
            last = p.accepted[-1]
            await until(lambda p=p, last=last: all(r.has(p.topic, last) for r in clients), last)  # type: ignore[misc]
        await asyncio.sleep(0.2)  # anything late would show now
        for r in clients:
            await r.finish()
        took = time.monotonic() - started

        lost = dup = 0
        for r in clients:
            for p in producers:
                got_lost, got_dup = lost_and_duplicated(r.ids[p.topic], p.accepted)
                lost += got_lost
                dup += got_dup
        published = sum(len(p.accepted) for p in producers)
        print(
            f"\nkill -9: {published} events accepted ({at_kill} before the kill) on "
            f"{len(TOPICS)} topics, {CLIENTS} clients resumed on b/c in {resumed_in:.2f} s; "
            f"lost {lost}, duplicated {dup}; {took:.1f} s; statuses "
            f"{[p.statuses for p in producers]}"
        )
        for i, r in enumerate(clients):
            for p in producers:
                missing = [x for x in p.accepted if x not in set(r.ids[p.topic])]
                if missing:
                    at = [p.accepted.index(x) for x in missing]
                    print(
                        f"client {i} {p.topic}: lacks {missing} (accepted #{at}); "
                        f"recovered {r.recovered}, closes {r.closes}, got {len(r.ids[p.topic])}"
                    )
        assert [r.recovered[1:] for r in clients] == [[dict.fromkeys(TOPICS, True)]] * CLIENTS
        assert [v for r in clients for v in r.violations] == []
        assert (lost, dup) == (0, 0)
        for r in clients:
            for p in producers:
                assert r.ids[p.topic] == p.accepted  # the order too
        assert all(set(p.statuses) == {"200"} for p in producers)
    finally:
        await cancel(running)
        await procs.stop_all()
        await delete_prefix(prefix)
