#!/usr/bin/env python3
"""Fan-out benchmark driver: streamgate vs a minimal Node.js `ws` server.

Servers (--servers): `streamgate` (embedded in-memory broker), `node`, and the
Redis backplane modes `streamgate-redis` (one gateway on the Redis broker) and
`streamgate-redis-2w` (`serve --workers 2`: two processes on one SO_REUSEPORT
port, subscribers spread over both, every publish crossing Redis). The Redis
modes use the Redis on 127.0.0.1:6379 (STREAMGATE_REDIS_URL to change it) under a
key prefix of their own, deleted after each run with redis-cli. For the 2-worker
mode the server's CPU and memory columns are not measured (two processes).

For each server and each subscriber count N:
  1. start a fresh server pinned to CPU 0 (taskset -c 0), wait for /healthz;
  2. run the compiled load generator pinned to CPU 1 in closed-loop "max" mode;
  3. stop the server, start a fresh one, run the load generator in open-loop
     "rate" mode at --half-fraction (default 50%) of the max rate measured in 2;
  4. stop the server.
When both servers are in the run, after all of that, for each N: a fresh
streamgate in open-loop "rate" mode at the SAME rate as Node's phase 3
(--half-fraction of Node's max at that N), so the two p99s are at one rate.
Prints a table and, with --json FILE, saves every figure.

Python 3.11 standard library only.  Everything it starts it stops again
(by PID: SIGTERM, then SIGKILL after a timeout), on errors too.

Usage:
  python benchmarks/fanout.py [--n 1000,10000] [--duration 10] [--batch 10]
                              [--servers streamgate,node] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BUILD_DIR = BENCH_DIR / "build"
LOADGEN_SRC = BENCH_DIR / "loadgen.c"
LOADGEN_BIN = BUILD_DIR / "loadgen"
NODE_DIR = BENCH_DIR / "node"

SERVER_CPU = "0"
LOADGEN_CPU = "1"
CHILD_NOFILE = 65536
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def log(msg: str) -> None:
    print(f"[fanout] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> None:
    """preexec_fn for children: raise RLIMIT_NOFILE as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = CHILD_NOFILE
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def proc_cpu_s(pid: int) -> float | None:
    """utime+stime of /proc/<pid>/stat, seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def tail(path: Path, n: int = 20) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# build steps


def ensure_loadgen() -> Path:
    if LOADGEN_BIN.exists() and LOADGEN_BIN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return LOADGEN_BIN
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise SystemExit("fanout: no C compiler (gcc) found")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [cc, "-O2", "-Wall", "-o", str(LOADGEN_BIN), str(LOADGEN_SRC)]
    log("building load generator: " + " ".join(cmd))
    subprocess.run(cmd, check=True, timeout=120)
    return LOADGEN_BIN


def ensure_node_modules() -> None:
    if (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("fanout: npm not found (needed for the Node baseline)")
    log("installing the Node baseline's dependencies: npm ci")
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        check=True,
        timeout=300,
    )


# --------------------------------------------------------------------------
# servers


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    port: int
    key: str
    log_path: Path
    data_dir: str | None = None
    redis_prefix: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


STREAMGATE_KINDS = ("streamgate", "streamgate-redis", "streamgate-redis-2w")
REDIS_URL = os.environ.get("STREAMGATE_REDIS_URL", "redis://127.0.0.1:6379/0")


def server_command(kind: str, port: int) -> list[str]:
    # Two workers on one CPU would measure contention, not the backplane: unpinned.
    pin = ["taskset", "-c", SERVER_CPU] if PIN and kind != "streamgate-redis-2w" else []
    if kind in STREAMGATE_KINDS:
        py = REPO / ".venv" / "bin" / "python"
        python = str(py) if py.exists() else sys.executable
        return [
            *pin,
            python,
            "-m",
            "streamgate",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *(["--workers", "2"] if kind == "streamgate-redis-2w" else []),
        ]
    if kind == "node":
        node = shutil.which("node")
        if not node:
            raise RuntimeError("node not found")
        return [*pin, node, str(NODE_DIR / "server.js"), str(port), "127.0.0.1"]
    raise ValueError(f"unknown server {kind!r}")


def healthz(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


def start_server(kind: str, workdir: Path, tag: str) -> Server:
    port = free_port()
    key = secrets.token_hex(16)
    env = dict(os.environ)
    env["STREAMGATE_PRODUCER_KEY"] = key
    data_dir = None
    redis_prefix = None
    if kind in STREAMGATE_KINDS:
        data_dir = tempfile.mkdtemp(prefix="sg-data-", dir=workdir)
        env["STREAMGATE_DATA_DIR"] = data_dir
    if kind.startswith("streamgate-redis"):
        redis_prefix = f"sgbench-{secrets.token_hex(4)}:"
        env.update(
            STREAMGATE_BROKER="redis",
            STREAMGATE_REDIS_URL=REDIS_URL,
            STREAMGATE_REDIS_PREFIX=redis_prefix,
        )
    log_path = workdir / f"{tag}.log"
    cmd = server_command(kind, port)
    log(f"starting {kind}: {' '.join(cmd)}")
    with open(log_path, "wb") as lf:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=lf,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
            start_new_session=True,
        )
    srv = Server(kind, proc, port, key, log_path, data_dir, redis_prefix)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{kind} exited with code {proc.returncode} before becoming ready:\n"
                + tail(log_path)
            )
        # With workers, the supervisor's line says that every one of them listens.
        if healthz(port) and (kind != "streamgate-redis-2w" or b"workers)" in log_bytes(log_path)):
            return srv
        if time.monotonic() > deadline:
            stop_server(srv)
            raise RuntimeError(f"{kind} not ready after {READY_TIMEOUT_S:.0f} s:\n{tail(log_path)}")
        time.sleep(0.1)


def stop_server(srv: Server) -> None:
    proc = srv.proc
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"{srv.kind} (pid {proc.pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; SIGKILL")
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
    # anything the server itself spawned lives in the session we created for it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if srv.data_dir:
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    if srv.redis_prefix:
        delete_redis_prefix(srv.redis_prefix)


def log_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def delete_redis_prefix(prefix: str) -> None:
    """Delete the run's Redis keys with redis-cli (skipped, with a note, without it)."""
    cli = shutil.which("redis-cli")
    if cli is None:
        log(f"redis-cli not found: keys under {prefix!r} left in Redis")
        return
    scan = subprocess.run(
        [cli, "-u", REDIS_URL, "--scan", "--pattern", f"{prefix}*"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    keys = scan.stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(
            [cli, "-u", REDIS_URL, "del", *keys[start : start + 500]],
            capture_output=True,
            timeout=30,
            check=False,
        )


# --------------------------------------------------------------------------
# load generator


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            out: dict[str, Any] = {}
            for kv in line[len("RESULT ") :].split():
                k, _, v = kv.partition("=")
                try:
                    out[k] = int(v)
                except ValueError:
                    try:
                        out[k] = float(v)
                    except ValueError:
                        out[k] = v
            return out
    return None


def run_loadgen(
    srv: Server, n: int, mode: str, args: argparse.Namespace, rate: float | None = None
) -> dict[str, Any]:
    cmd = [
        str(LOADGEN_BIN),
        "--port",
        str(srv.port),
        "--key",
        srv.key,
        "--n",
        str(n),
        "--batch",
        str(args.batch),
        "--mode",
        mode,
        "--window",
        str(args.window),
        "--duration",
        str(args.duration),
        "--server-pid",
        str(0 if srv.kind == "streamgate-redis-2w" else srv.pid),
        "--drain",
        str(args.drain),
    ]
    if PIN:
        cmd += ["--cpu", LOADGEN_CPU]
    if rate is not None:
        cmd += ["--rate", f"{rate:.0f}"]
    cmd += args.loadgen_arg
    # budget: connection setup (generous), idle, warm-up, measurement, drain, stall
    timeout = 60 + n / 100 + args.duration + args.drain + 60
    shown = [c if c != srv.key else "<key>" for c in cmd]
    log(f"loadgen: {' '.join(shown)}")
    cpu0 = proc_cpu_s(srv.pid)
    t0 = time.monotonic()
    try:
        res = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=raise_nofile,
        )
    except subprocess.TimeoutExpired as e:
        return {
            "error": f"loadgen timed out after {timeout:.0f} s",
            "stderr": str(e.stderr or "")[-2000:],
        }
    wall = time.monotonic() - t0
    cpu1 = proc_cpu_s(srv.pid)
    if args.verbose:
        sys.stderr.write(res.stdout)
    result = parse_result(res.stdout) or {}
    result["returncode"] = res.returncode
    result["run_wall_s"] = round(wall, 3)
    if cpu0 is not None and cpu1 is not None:
        # whole loadgen run (setup + idle + measurement); the table uses the
        # measurement-only figure that loadgen reads itself
        result["server_cpu_s_whole_run"] = round(cpu1 - cpu0, 3)
    if res.returncode != 0 or "msgs_per_s" not in result:
        err = res.stderr.strip().splitlines()
        result.setdefault("error", "none")
        if result["error"] == "none":
            result["error"] = f"loadgen exit {res.returncode}"
        result["stderr"] = "\n".join(err[-15:])
        log(f"loadgen failed ({result['error']}):\n{result['stderr']}")
        if srv.proc.poll() is not None:
            log(f"{srv.kind} exited with {srv.proc.returncode}; log tail:\n{tail(srv.log_path)}")
    return result


# --------------------------------------------------------------------------


@dataclass
class Row:
    server: str
    n: int
    max: dict[str, Any] = field(default_factory=dict)
    half: dict[str, Any] = field(default_factory=dict)
    half_rate: float | None = None
    # streamgate rows only, when Node is in the run too: open loop at the rate
    # of Node's half-rate phase at the same N (Node's `half_rate`)
    at_node_half: dict[str, Any] = field(default_factory=dict)
    at_node_half_rate: float | None = None
    error: str | None = None

    def phases(self) -> tuple[dict[str, Any], ...]:
        return (self.max, self.half, self.at_node_half)


def phase_error(r: dict[str, Any]) -> str | None:
    err = r.get("error")
    return None if err in (None, "none") else str(err)


def first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else repr(e)


def run_phase(
    kind: str,
    n: int,
    mode: str,
    args: argparse.Namespace,
    workdir: Path,
    tag: str,
    rate: float | None = None,
) -> dict[str, Any]:
    """One loadgen run against a fresh server, which is stopped afterwards."""
    srv = start_server(kind, workdir, f"{kind}-n{n}-{tag}")
    try:
        return run_loadgen(srv, n, mode, args, rate=rate)
    finally:
        stop_server(srv)


def bench_one(kind: str, n: int, args: argparse.Namespace, workdir: Path) -> Row:
    row = Row(kind, n)
    # phase 1: max (fresh server)
    row.max = run_phase(kind, n, "max", args, workdir, "max")
    if not row.max.get("msgs_per_s"):
        row.error = phase_error(row.max) or "max phase measured no throughput"
        return row
    # phase 2: open loop at a fraction of the measured max (fresh server again,
    # so the second phase starts from the same state as the first)
    row.half_rate = args.half_fraction * float(row.max["msgs_per_s"])
    row.half = run_phase(kind, n, "rate", args, workdir, "half", rate=row.half_rate)
    errs = [e for e in (phase_error(row.max), phase_error(row.half)) if e]
    if errs:
        row.error = "; ".join(errs)
    return row


def bench_at_node_half(sg: Row, node: Row, args: argparse.Namespace, workdir: Path) -> None:
    """Phase 3 (streamgate only): open loop at the rate of Node's half-rate
    phase at the same N, on a fresh server, so the two p99s are at one rate."""
    if node.half_rate is None:
        return
    sg.at_node_half_rate = node.half_rate
    try:
        sg.at_node_half = run_phase(
            "streamgate", sg.n, "rate", args, workdir, "at-node-half", rate=node.half_rate
        )
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log(f"streamgate N={sg.n} at node's half rate failed: {e}")
        sg.at_node_half = {"error": first_line(e)}
    err = phase_error(sg.at_node_half)
    if err:
        sg.error = f"{sg.error}; @node-half: {err}" if sg.error else f"@node-half: {err}"


def pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(streamgate row, node row) for each N that both servers ran, in run order."""
    sg = [r for r in rows if r.server == "streamgate"]
    nd = [r for r in rows if r.server == "node"]
    return [(a, b) for a, b in zip(sg, nd, strict=False) if a.n == b.n]


def is_num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt_ms(us: Any) -> str:
    if not is_num(us):
        return "-"
    return f"{us / 1000:.1f}" if us < 100_000 else f"{us / 1000:.0f}"


def fmt_num(v: Any) -> str:
    if not is_num(v):
        return "-"
    return f"{v:,.0f}"


def fmt_pct(v: Any) -> str:
    if not is_num(v) or v < 0:
        return "-"
    return f"{v:.0f}"


def fmt_p50_p99(r: dict[str, Any]) -> str:
    return f"{fmt_ms(r.get('p50_us'))}/{fmt_ms(r.get('p99_us'))}"


def integrity(r: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(r.get("lost", 0) or 0),
        int(r.get("dup", 0) or 0),
        int(r.get("closed", 0) or 0) + int(r.get("eof", 0) or 0) + int(r.get("errors", 0) or 0),
    )


LOADGEN_SATURATED_PCT = 90.0


def status(r: Row) -> str:
    """'ok', or what makes the row doubtful."""
    if r.error:
        return f"ERROR: {r.error}"
    phases = r.phases()
    notes = []
    if any(integrity(x) != (0, 0, 0) for x in phases):
        notes.append("LOSS/DUP/CLOSE")
    if any(
        x.get("seq_mismatch") or x.get("unexpected") or x.get("accept_mismatch") for x in phases
    ):
        notes.append("BAD-DATA")
    if any((x.get("loadgen_cpu_pct") or 0) > LOADGEN_SATURATED_PCT for x in phases):
        notes.append("LOADGEN-BUSY")
    for got, want, note in (
        (r.half.get("msgs_per_s"), r.half_rate, "HALF-RATE-NOT-SUSTAINED"),
        (r.at_node_half.get("msgs_per_s"), r.at_node_half_rate, "NODE-RATE-NOT-SUSTAINED"),
    ):
        if is_num(got) and want and got < 0.9 * want:
            notes.append(note)
    return " ".join(notes) or "ok"


def node_half_comparison(rows: list[Row]) -> list[dict[str, Any]]:
    """Per N: p99 of streamgate and of node at node's half rate."""
    out = []
    for sg, nd in pairs(rows):
        x, y = sg.at_node_half.get("p99_us"), nd.half.get("p99_us")
        out.append(
            {
                "n": sg.n,
                "rate_msgs_per_s": sg.at_node_half_rate,
                "streamgate_p99_us": x if is_num(x) else None,
                "node_p99_us": y if is_num(y) else None,
                "ratio": round(x / y, 3) if is_num(x) and is_num(y) and y > 0 else None,
            }
        )
    return out


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    hf = args.half_fraction
    # the extra column only when both servers are in the run
    node_col = bool(pairs(rows))
    hdr = ["server", "N", "msgs/s max", "p50/p99 max ms", f"p50/p99 @{hf:.0%} ms"]
    if node_col:
        hdr.append(f"p50/p99 @node-{hf:.0%} ms")
    hdr += ["mem/conn", "lost/dup/closed", "srv CPU% max/half", "lg CPU% max/half", "status"]
    table = []
    for r in rows:
        m, h = r.max, r.half
        lost = [sum(x) for x in zip(*(integrity(p) for p in r.phases()), strict=True)]
        mem = m.get("rss_per_conn_bytes")
        cells = [r.server, str(r.n), fmt_num(m.get("msgs_per_s")), fmt_p50_p99(m), fmt_p50_p99(h)]
        if node_col:
            # node's own half-rate phase is, by definition, at node's half rate
            cells.append(fmt_p50_p99(h if r.server == "node" else r.at_node_half))
        cells += [
            f"{mem / 1024:.1f} KiB" if is_num(mem) and mem >= 0 else "-",
            "/".join(str(x) for x in lost),
            f"{fmt_pct(m.get('server_cpu_pct'))}/{fmt_pct(h.get('server_cpu_pct'))}",
            f"{fmt_pct(m.get('loadgen_cpu_pct'))}/{fmt_pct(h.get('loadgen_cpu_pct'))}",
            status(r),
        ]
        table.append(cells)
    widths = [max(len(x) for x in col) for col in zip(hdr, *table, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(hdr, widths, strict=True))
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
    # ratios
    by = {(r.server, r.n): r for r in rows}
    ns = sorted({r.n for r in rows})
    ratios = []
    for n in ns:
        a, b = by.get(("streamgate", n)), by.get(("node", n))
        if a and b:
            x, y = a.max.get("msgs_per_s"), b.max.get("msgs_per_s")
            if is_num(x) and is_num(y) and y > 0:
                ratios.append(f"N={n}: {x / y:.2f}x")
            else:
                ratios.append(f"N={n}: -")
    if ratios:
        print("streamgate/node msgs/s at max: " + ", ".join(ratios))
    # the latency target: p99 at node's half rate, same N and rate
    for c in node_half_comparison(rows):
        x, y, ratio = c["streamgate_p99_us"], c["node_p99_us"], c["ratio"]
        text = f"p99 at node's {hf:.0%} rate, N={c['n']}"
        if c["rate_msgs_per_s"] is None:
            print(f"{text}: not measured (node has no max at this N)")
            continue
        text += (
            f" ({fmt_num(c['rate_msgs_per_s'])} msgs/s): "
            f"streamgate {fmt_ms(x) + ' ms' if x is not None else '-'} vs "
            f"node {fmt_ms(y) + ' ms' if y is not None else '-'}"
        )
        if ratio is not None:
            verdict = "no worse than node" if x <= y else "WORSE than node"
            text += f" ({ratio:.2f}x): {verdict}"
        else:
            text += ": no comparison"
        print(text)


def main() -> int:
    global PIN
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", default="1000,10000", help="comma-separated subscriber counts (default 1000,10000)"
    )
    ap.add_argument(
        "--duration", type=float, default=10.0, help="seconds of sending per phase (default 10)"
    )
    ap.add_argument("--batch", type=int, default=10, help="events per publish request (default 10)")
    ap.add_argument("--window", type=int, default=4, help="max mode: batches in flight (default 4)")
    ap.add_argument(
        "--servers",
        default="streamgate,node",
        help="comma-separated: streamgate, node, streamgate-redis, streamgate-redis-2w",
    )
    ap.add_argument(
        "--half-fraction",
        type=float,
        default=0.5,
        help="open-loop rate as a fraction of max (default 0.5); with both servers, "
        "streamgate also runs at this fraction of node's max",
    )
    ap.add_argument(
        "--drain", type=float, default=5.0, help="seconds to wait for the tail (default 5)"
    )
    ap.add_argument("--json", metavar="FILE", help="save all results as JSON")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server/loadgen to CPUs 0/1")
    ap.add_argument(
        "--loadgen-arg",
        action="append",
        default=[],
        help="extra argument passed to loadgen (repeatable)",
    )
    ap.add_argument("--keep-logs", action="store_true", help="keep server logs (printed path)")
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="echo loadgen's human-readable output"
    )
    args = ap.parse_args()

    ns = [int(x) for x in args.n.split(",") if x.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in (*STREAMGATE_KINDS, "node"):
            ap.error(f"unknown server {s!r}")
    if any(n < 1 for n in ns) or args.duration <= 0 or args.batch < 1:
        ap.error("bad --n/--duration/--batch")
    PIN = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if not PIN and not args.no_pin:
        log("fewer than 2 CPUs or no taskset: running unpinned")

    ensure_loadgen()
    if "node" in servers:
        ensure_node_modules()

    workdir = Path(tempfile.mkdtemp(prefix="fanout-"))
    rows: list[Row] = []
    try:
        for kind in servers:
            for n in ns:
                log(f"=== {kind} N={n} ===")
                try:
                    rows.append(bench_one(kind, n, args, workdir))
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"{kind} N={n} failed: {e}")
                    rows.append(Row(kind, n, error=first_line(e)))
        # phase 3 needs node's max at each N, so it runs after both servers' rows
        for sg, nd in pairs(rows):
            if nd.half_rate is None:
                log(f"=== streamgate N={sg.n} at node's half rate: skipped (node has no max) ===")
                continue
            log(
                f"=== streamgate N={sg.n} at node's {args.half_fraction:.0%} rate "
                f"({nd.half_rate:,.0f} msgs/s) ==="
            )
            bench_at_node_half(sg, nd, args, workdir)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        if args.keep_logs:
            log(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(
        f"fan-out benchmark: batch={args.batch} events/request, "
        f"duration={args.duration:g} s/phase, window={args.window}, "
        f"server on CPU {SERVER_CPU if PIN else '-'}, loadgen on CPU {LOADGEN_CPU if PIN else '-'}"
    )
    print_table(rows, args)

    if args.json:
        out = {
            "config": {
                "n": ns,
                "duration": args.duration,
                "batch": args.batch,
                "window": args.window,
                "servers": servers,
                "half_fraction": args.half_fraction,
                "pinned": PIN,
            },
            "results": [
                {
                    "server": r.server,
                    "n": r.n,
                    "max": r.max,
                    "half": r.half,
                    "half_rate": r.half_rate,
                    "at_node_half": r.at_node_half,
                    "at_node_half_rate": r.at_node_half_rate,
                    "error": r.error,
                }
                for r in rows
            ],
            "p99_at_node_half": node_half_comparison(rows),
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 0 if rows and all(status(r) == "ok" for r in rows) else 1


PIN = True

if __name__ == "__main__":
    sys.exit(main())
