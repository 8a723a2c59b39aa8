#!/usr/bin/env python3
"""Checks the load generator against selftest_server.py (no gateway needed).

  1. hostile framing (split frames, 16/64-bit lengths, fragmentation with
     pings in between, non-event messages): loadgen must report lost=0 dup=0
     seq_mismatch=0 closed=0, and every ping must have been answered with a
     masked pong carrying the same payload;
  2. injected faults (one subscriber misses every K-th event, gets every J-th
     twice, another gets a close frame): loadgen must count exactly those;
  3. ceiling: a server that frames each batch once and writes it with one
     syscall per subscriber, to show how many msgs/s loadgen itself can take
     (figures only, no pass/fail), once with --writes batch and once with
     --writes frame (one TCP segment per frame, the way ws/Node sends).

Usage: python benchmarks/selftest.py [--quick]
Exit status 0 when checks 1 and 2 pass.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fanout.py is in this directory
import fanout

SERVER = fanout.BENCH_DIR / "selftest_server.py"


def parse_kv(line: str) -> dict[str, str]:
    return dict(kv.partition("=")[::2] for kv in line.split()[1:])


def run(
    server_args: list[str], loadgen_args: list[str], pin: bool
) -> tuple[dict[str, str], dict[str, str], str]:
    """Start selftest_server.py, run loadgen against it, stop the server.
    Returns loadgen's RESULT line, the server's SELFTEST line (both as
    key -> value) and loadgen's whole output."""
    port = fanout.free_port()
    key = secrets.token_hex(8)
    env = dict(os.environ, STREAMGATE_PRODUCER_KEY=key)
    pre = ["taskset", "-c", "0"] if pin else []
    srv = subprocess.Popen(
        [*pre, sys.executable, str(SERVER), "--port", str(port), *server_args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=fanout.raise_nofile,
    )
    try:
        deadline = time.monotonic() + 15
        while not fanout.healthz(port):
            if srv.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "selftest server did not start:\n" + (srv.stdout.read() if srv.stdout else "")
                )
            time.sleep(0.1)
        cmd = [
            str(fanout.LOADGEN_BIN),
            "--port",
            str(port),
            "--key",
            key,
            "--server-pid",
            str(srv.pid),
        ]
        if pin:
            cmd += ["--cpu", "1"]
        res = subprocess.run(
            cmd + loadgen_args,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=fanout.raise_nofile,
        )
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
        try:
            out, _ = srv.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            out, _ = srv.communicate(timeout=10)
    lg = next(
        (parse_kv(x) for x in reversed(res.stdout.splitlines()) if x.startswith("RESULT ")), {}
    )
    st = next((parse_kv(x) for x in reversed(out.splitlines()) if x.startswith("SELFTEST ")), {})
    return lg, st, res.stdout + res.stderr


def check(name: str, cond: bool, detail: str, failures: list[str]) -> None:
    print(f"  {'ok  ' if cond else 'FAIL'} {name}: {detail}")
    if not cond:
        failures.append(name)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="skip the ceiling measurement")
    args = ap.parse_args()
    fanout.ensure_loadgen()
    pin = (os.cpu_count() or 1) >= 2
    failures: list[str] = []

    print("1. hostile framing, N=50, 2 s")
    lg, st, out = run(
        ["--style", "hostile", "--ping-ms", "100"],
        ["--n", "50", "--duration", "2", "--window", "2", "--drain", "5"],
        pin,
    )
    if not lg:
        print(out)
    check(
        "completed",
        lg.get("error") == "none" and lg.get("drained") == "1",
        f"error={lg.get('error')} drained={lg.get('drained')}",
        failures,
    )
    check(
        "integrity",
        all(
            lg.get(k) == "0"
            for k in ("lost", "dup", "seq_mismatch", "unexpected", "closed", "eof", "errors")
        ),
        " ".join(
            f"{k}={lg.get(k)}"
            for k in ("lost", "dup", "seq_mismatch", "unexpected", "closed", "eof", "errors")
        ),
        failures,
    )
    check(
        "all frames",
        lg.get("delivered") == lg.get("expected"),
        f"delivered={lg.get('delivered')} expected={lg.get('expected')}",
        failures,
    )
    check(
        "framing exercised",
        all(int(st.get(k, 0)) > 0 for k in ("len16_sent", "len64_sent", "fragmented_sent")),
        f"len16={st.get('len16_sent')} len64={st.get('len64_sent')} "
        f"fragmented={st.get('fragmented_sent')}",
        failures,
    )
    check(
        "pongs",
        int(st.get("pings_sent", 0)) > 0
        and st.get("pongs_bad") == "0"
        and st.get("unmasked_frames") == "0"
        and int(st.get("pings_sent", 0)) - int(st.get("pongs_ok", 0)) <= 50,
        f"pings={st.get('pings_sent')} pongs_ok={st.get('pongs_ok')} bad={st.get('pongs_bad')} "
        f"unmasked={st.get('unmasked_frames')}",
        failures,
    )
    check(
        "non-event messages skipped",
        lg.get("other_msgs") == "50",
        f"other_msgs={lg.get('other_msgs')}",
        failures,
    )

    print(
        "2. injected faults (drop every 97th, duplicate every 89th, "
        "close one subscriber at offset 300)"
    )
    lg, st, out = run(
        ["--style", "hostile", "--drop-every", "97", "--dup-every", "89", "--close-at", "300"],
        ["--n", "50", "--duration", "2", "--window", "2", "--drain", "3"],
        pin,
    )
    if not lg:
        print(out)
    check(
        "lost counted",
        lg.get("lost") == st.get("dropped", "0") != "0",
        f"lost={lg.get('lost')} dropped={st.get('dropped')}",
        failures,
    )
    check(
        "dup counted",
        lg.get("dup") == st.get("duplicated", "0") != "0",
        f"dup={lg.get('dup')} duplicated={st.get('duplicated')}",
        failures,
    )
    check("close counted", lg.get("closed") == "1", f"closed={lg.get('closed')}", failures)

    if not args.quick:
        print("3. load generator ceiling (fast server, N=2000, 3 s, max mode)")
        for writes, batch in (("batch", "10"), ("batch", "100"), ("frame", "10")):
            lg, st, out = run(
                ["--style", "fast", "--writes", writes],
                ["--n", "2000", "--duration", "3", "--batch", batch],
                pin,
            )
            if not lg:
                print(out)
                failures.append("ceiling run")
                continue
            per_recv = int(lg["delivered"]) / max(1, int(lg["recvs"]))
            print(
                f"  writes={writes:5} batch={batch:3}: {int(lg['msgs_per_s']):>10,} msgs/s  "
                f"loadgen CPU {lg['loadgen_cpu_pct']}% "
                f"(kernel {lg['loadgen_sys_s']} of {lg['loadgen_cpu_s']} s)  "
                f"server CPU {lg['server_cpu_pct']}%  frames/recv {per_recv:.1f}  "
                f"lost={lg['lost']}"
            )

    print("selftest:", "PASS" if not failures else "FAIL: " + ", ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
