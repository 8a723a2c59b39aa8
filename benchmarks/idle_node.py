#!/usr/bin/env python3
"""Idle connections on one node past one process's open-file limit (issue 14).

``fanout.py --scenarios idle100k`` holds N connections on one gateway process, which
needs an open-file limit above N. Where the hard limit cannot be raised (this
machine: 20,000 and no CAP_SYS_RESOURCE, so not even root may raise it), one node
holds N with ``streamgate serve --workers W`` (SO_REUSEPORT, the Redis broker), each
worker under the limit, and P loadgen processes (``--mode idle``) hold N/P
connections each. Every loadgen connects, then waits ``--hold`` seconds (long enough
for all of them to have connected), then probes ``GET /healthz`` and a live
subscriber (its own topic) while all N are held.

    python benchmarks/idle_node.py --n 100000

Printed: the limit per process, workers and loadgens, connections held, connect rate
(N over the slowest loadgen's setup), RSS per connection (all workers' RSS after,
less before, over N), and the worse loadgen's healthz and live-subscriber p50/p99.
Exit status: 0 when every connection was held, no probe failed and the worse p99 is
under 50 ms; 2 when the p99 target was missed; 1 on any failure.

Python 3.11 standard library only; everything it starts it stops (by PID).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout  # the sibling driver: loadgen build, result parsing, Redis cleanup

REPO = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 50.0
SPARE_FILES = 1_500  # per process: listener, Redis, logs, databases, and the cap's reserve


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(p) for p in task.read_text().split()]
    return out


def wait_healthz(port: int, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        if fanout.healthz(port):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no /healthz answer within {within:.0f} s")


def start_gateway(
    workers: int, port: int, key: str, prefix: str, data: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        STREAMGATE_PRODUCER_KEY=key,
        STREAMGATE_DATA_DIR=str(data),
        STREAMGATE_MAX_CONNECTIONS_PER_IP="0",
        STREAMGATE_LOG_LEVEL="WARNING",
    )
    if workers > 1:
        env.update(
            STREAMGATE_BROKER="redis",
            STREAMGATE_REDIS_URL=fanout.REDIS_URL,
            STREAMGATE_REDIS_PREFIX=prefix,
        )
    py = REPO / ".venv" / "bin" / "python"
    cmd = [str(py if py.exists() else sys.executable), "-m", "streamgate", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def run_loadgens(
    port: int,
    key: str,
    n: int,
    args: argparse.Namespace,
    limit: int,
    subscribed: list[float],
) -> list[dict[str, Any]]:
    """Start ``len(subscribed)`` idle loadgens at once; return their results. Each sets
    its slot of ``subscribed`` (seconds since the start) once all its connections are."""
    procs = len(subscribed)
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    t0 = time.monotonic()
    running: list[tuple[subprocess.Popen[str], list[str], list[str]]] = []

    def reader(i: int, proc: subprocess.Popen[str], out: list[str], err: list[str]) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        stdout = proc.stdout
        drain = threading.Thread(target=lambda: out.extend(stdout), daemon=True)
        drain.start()
        for line in proc.stderr:
            err.append(line)
            if "connections subscribed in" in line:
                subscribed[i] = time.monotonic() - t0
        drain.join(timeout=10)

    threads = []
    for i, count in enumerate(share):
        cmd = [str(fanout.LOADGEN_BIN), "--port", str(port), "--key", key, "--n", str(count)]
        cmd += ["--mode", "idle", "--batch", "1", "--idle", str(args.hold)]
        cmd += ["--duration", str(args.probe_s)]
        cmd += ["--probes", str(args.probes), "--probe-topic", f"trade/PROBE-{i}"]
        cmd += ["--src-addrs", str(fanout.src_addrs_for(count)), "--server-pid", "0"]
        cmd += ["--connect-timeout", str(args.connect_timeout)]

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limits
        )
        out: list[str] = []
        err: list[str] = []
        running.append((proc, out, err))
        t = threading.Thread(target=reader, args=(i, proc, out, err), daemon=True)
        t.start()
        threads.append(t)
    results: list[dict[str, Any]] = []
    budget = args.connect_timeout + args.hold + args.probe_s + 120
    for proc, _, _ in running:
        try:
            proc.wait(timeout=max(1.0, budget - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for t in threads:
        t.join(timeout=10)
    for proc, out, err in running:
        result = fanout.parse_result("".join(out)) or {"error": "no RESULT line"}
        result["returncode"] = proc.returncode
        if proc.returncode != 0:
            result.setdefault("stderr", "".join(err)[-800:])
        results.append(result)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="connections (default 100000)")
    ap.add_argument("--workers", type=int, default=0, help="gateway processes (0: from the limit)")
    ap.add_argument("--procs", type=int, default=0, help="loadgen processes (0: from the limit)")
    ap.add_argument("--hold", type=float, default=30.0, help="s between connecting and probing")
    ap.add_argument("--probes", type=int, default=200, help="probes of each kind per loadgen")
    ap.add_argument("--probe-s", type=float, default=5.0, help="seconds of probing")
    ap.add_argument("--connect-timeout", type=float, default=180.0)
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    per_process = limit - SPARE_FILES
    workers = args.workers or math.ceil(args.n * 1.15 / per_process)  # SO_REUSEPORT is uneven
    procs = args.procs or math.ceil(args.n / per_process)
    print(
        f"open-file limit per process: {limit:,} (hard; this process may "
        f"{'' if fanout.can_raise_hard_limit(limit + 1) else 'not '}raise it): "
        f"{workers} gateway worker(s), {procs} loadgen process(es) for {args.n:,} connections"
    )
    fanout.ensure_loadgen()
    key = secrets.token_hex(16)
    prefix = f"bench-idle-{secrets.token_hex(4)}:"
    port = fanout.free_port()
    with tempfile.TemporaryDirectory(prefix="streamgate-idle-") as tmp:
        log = Path(tmp) / "gateway.log"
        gateway = start_gateway(workers, port, key, prefix, Path(tmp) / "data", log)
        try:
            wait_healthz(port, gateway)
            time.sleep(1.0)
            pids = [gateway.pid, *children(gateway.pid)]
            before = sum(rss_kb(p) for p in pids)
            subscribed = [math.inf] * procs
            rss_after: list[int] = []

            def sample_when_held() -> None:
                """The workers' RSS once every loadgen is subscribed, before the probes."""
                deadline = time.monotonic() + args.connect_timeout + args.hold
                while time.monotonic() < deadline:
                    if all(t < math.inf for t in subscribed):
                        time.sleep(min(2.0, args.hold / 4))
                        rss_after.append(sum(rss_kb(p) for p in pids))
                        return
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample_when_held, daemon=True)
            sampler.start()
            results = run_loadgens(port, key, args.n, args, limit, subscribed)
            sampler.join(timeout=1)
        finally:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
            if workers > 1:
                fanout.delete_redis_prefix(prefix)
        return report(args, results, subscribed, before, rss_after, log)


def report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    subscribed: list[float],
    before_kb: int,
    after_kb: list[int],
    log: Path,
) -> int:
    failed = [r for r in results if r.get("returncode") != 0 or r.get("error") != "none"]
    held = sum(int(r.get("n", 0)) for r in results if r not in failed)
    setup = max((float(r.get("connect_s", 0)) for r in results), default=0.0)
    hz_p99 = max((int(r.get("hz_p99_us", 0)) for r in results), default=0) / 1000
    hz_p50 = max((int(r.get("hz_p50_us", 0)) for r in results), default=0) / 1000
    live_p99 = max((int(r.get("p99_us", 0)) for r in results), default=0) / 1000
    live_p50 = max((int(r.get("p50_us", 0)) for r in results), default=0) / 1000
    hz_failed = sum(int(r.get("hz_failed", 0)) for r in results)
    lost = sum(int(r.get("probe_sent", 0)) - int(r.get("probe_rx", 0)) for r in results)
    print(f"connections held: {held:,} of {args.n:,} ({len(failed)} loadgen(s) failed)")
    # Each loadgen probes ``hold`` s after its own setup: all N were held while any probed
    # only if the last one was subscribed before the first one's probes began.
    overlap = max(subscribed) < min(subscribed) + args.hold
    print(
        f"loadgens subscribed between {min(subscribed):.1f} s and {max(subscribed):.1f} s: "
        f"{'all held during every probe' if overlap else '! NOT all held during the probes'}"
    )
    if setup > 0:
        print(f"connect rate: {held / setup:,.0f} connections/s ({setup:.1f} s, slowest loadgen)")
    if after_kb:
        per_conn = (after_kb[0] - before_kb) * 1024 / max(1, held)
        print(
            f"gateway RSS: {before_kb / 1024:,.0f} MiB before, {after_kb[0] / 1024:,.0f} MiB held"
            f" -> {per_conn:,.0f} bytes/connection"
        )
    print(f"GET /healthz while held: p50 {hz_p50:.1f} ms, p99 {hz_p99:.1f} ms ({hz_failed} failed)")
    print(f"live subscriber while held: p50 {live_p50:.1f} ms, p99 {live_p99:.1f} ms ({lost} lost)")
    worst = max(hz_p99, live_p99)
    met = overlap and not failed and hz_failed == 0 and lost == 0 and worst < TARGET_P99_MS
    print(
        f"target: {args.n:,} held, worse p99 {worst:.1f} ms < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if met else 'NOT met'}"
    )
    for r in failed:
        print(f"! loadgen failed: {r.get('error')} {str(r.get('stderr', ''))[-400:]}")
    if failed or hz_failed or lost:
        print(f"gateway log tail:\n{fanout.tail(log)}")
        return 1
    return 0 if met else 2


if __name__ == "__main__":
    sys.exit(main())
