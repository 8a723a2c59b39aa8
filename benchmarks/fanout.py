#!/usr/bin/env python3
"""Fan-out benchmark driver: streamgate vs a minimal Node.js `ws` server, like for like.

One command takes every figure of issue 14 and judges it against its target:

  python benchmarks/fanout.py --repeat 3 --json results.json

Scenarios (--scenarios, default all, always run in this order):
  single    the headline: one event per publish request (--batch 1), two requests
            in flight (--window 2), streamgate and Node in the same run, N in --n;
  batched   the same with 10 events per request and 4 in flight (labelled, not
            the headline);
  markets   many markets: --markets-topics small topics (trade/BENCH-<i>) with
            N/K subscribers each, plus trade/BENCH that all N subscribe to; one
            event per request, every --markets-big-every-th to the big topic, the
            others round-robin over the small ones; loss checked per topic;
  redis     streamgate on the Redis broker (streamgate-redis), batch 1, window 2,
            N in --n; judged against the single scenario's in-memory figure;
  idle100k  --idle-n (100,000) idle subscribed connections from many 127.0.0.x
            source addresses: RSS per connection, connect rate, and p99 of GET
            /healthz and of a live subscriber's publish-to-receive while held.

Each (scenario, server, N) row is phases on fresh servers pinned to CPU 0, loadgen
on CPU 1: max (closed loop), @50% (open loop at 50% of its own max) and, for
streamgate rows, @node-50% (open loop at the rate of Node's @50% phase at the same
N and scenario). --repeat R runs the whole matrix R times and prints median and
range. At the end every target is printed with its value and met / NOT met.

Exit status: 0 every row ok and every target measured in the run met; 1 a row not
ok (error, loss, duplicates, closed connections, loadgen saturated, rate not
sustained); 2 a target missed; 3 both; 64 bad command line.

Python 3.11 standard library only (py-spy as an external command for --profile).
Everything it starts it stops again (by PID: SIGTERM, then SIGKILL), on errors too.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeGuard
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BUILD_DIR = BENCH_DIR / "build"
LOADGEN_SRC = BENCH_DIR / "loadgen.c"
LOADGEN_BIN = BUILD_DIR / "loadgen"
NODE_DIR = BENCH_DIR / "node"

SERVER_CPU = "0"
LOADGEN_CPU = "1"
CHILD_NOFILE = 65536  # at least; more for large N (nofile_for)
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def log(msg: str) -> None:
    print(f"[fanout] {msg}", file=sys.stderr, flush=True)


def nofile_for(n: int) -> int:
    """Open files a server (or loadgen) needs for n connections, with room to spare:
    streamgate's automatic connection cap keeps a tenth of its limit for itself."""
    return max(CHILD_NOFILE, n * 5 // 4 + 1024)


def raise_nofile(want: int = CHILD_NOFILE) -> None:
    """Raise RLIMIT_NOFILE to ``want``: the hard limit too when that is lower and the
    process may (root / CAP_SYS_RESOURCE), else as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def proc_nofile(pid: int) -> int | None:
    """The soft open-file limit of a running process (/proc/<pid>/limits)."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    v = line.split()[3]
                    return -1 if v == "unlimited" else int(v)
    except (OSError, ValueError, IndexError):
        return None
    return None


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


def start_server(kind: str, workdir: Path, tag: str, nofile: int = CHILD_NOFILE) -> Server:
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
            preexec_fn=lambda: raise_nofile(nofile),
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
# load generator output


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


def redis_reachable() -> str | None:
    """None when something listens at REDIS_URL's host and port, else why not."""
    u = urlsplit(REDIS_URL)
    host, port = u.hostname or "127.0.0.1", u.port or 6379
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return None
    except OSError as e:
        return f"no Redis at {host}:{port} ({e.strerror or e})"


# --------------------------------------------------------------------------
# scenarios


SCENARIOS = ("single", "batched", "markets", "redis", "idle100k")
PER_IP = 1500  # connections per source address: below streamgate's per-address cap (2,000)


@dataclass(frozen=True)
class Scenario:
    name: str
    servers: tuple[str, ...]
    ns: tuple[int, ...]
    batch: int
    window: int
    topics: int = 0
    big_every: int = 2
    # the scenario whose node row gives the @node-50% rate (same N)
    node_from: str | None = None

    def label(self) -> str:
        if self.name == "idle100k":
            return "idle"
        if self.topics:
            return f"{self.topics}+1 topics"
        return "1 topic"


def build_scenarios(args: argparse.Namespace) -> list[Scenario]:
    servers = tuple(args.servers)
    out = []
    for name in SCENARIOS:
        if name not in args.scenarios:
            continue
        if name == "single":
            out.append(Scenario(name, servers, tuple(args.n), args.batch, args.window))
        elif name == "batched":
            out.append(
                Scenario(name, servers, tuple(args.n), args.batched_batch, args.batched_window)
            )
        elif name == "markets":
            topics = args.markets_topics or max(1, args.markets_n // 10)
            out.append(
                Scenario(
                    name,
                    servers,
                    (args.markets_n,),
                    args.batch,
                    args.window,
                    topics=topics,
                    big_every=args.markets_big_every,
                )
            )
        elif name == "redis":
            out.append(
                Scenario(
                    name,
                    tuple(args.redis_servers),
                    tuple(args.n),
                    args.batch,
                    args.window,
                    node_from="single",
                )
            )
        elif name == "idle100k":
            out.append(Scenario(name, tuple(args.idle_servers), (args.idle_n,), 1, 1))
    return out


# --------------------------------------------------------------------------
# load generator


def src_addrs_for(n: int) -> int:
    """Source addresses 127.0.0.2.. for n connections: at most PER_IP each (streamgate
    caps connections per address at 2,000; one address also has only ~28,000 ports)."""
    return max(8, math.ceil((n + 1) / PER_IP))


def run_loadgen(
    srv: Server,
    n: int,
    mode: str,
    sc: Scenario,
    args: argparse.Namespace,
    rate: float | None = None,
    on_measure: Callable[[], None] | None = None,
) -> dict[str, Any]:
    duration = args.idle_duration if mode == "idle" else args.duration
    cmd = [
        str(LOADGEN_BIN),
        "--port",
        str(srv.port),
        "--key",
        srv.key,
        "--n",
        str(n),
        "--batch",
        str(sc.batch),
        "--mode",
        mode,
        "--window",
        str(sc.window),
        "--duration",
        str(duration),
        "--server-pid",
        str(0 if srv.kind == "streamgate-redis-2w" else srv.pid),
        "--drain",
        str(args.drain),
        "--src-addrs",
        str(src_addrs_for(n)),
    ]
    if sc.topics:
        cmd += ["--topics", str(sc.topics), "--big-every", str(sc.big_every)]
    if mode == "idle":
        cmd += ["--probes", str(args.probes)]
    if PIN:
        cmd += ["--cpu", LOADGEN_CPU]
    if rate is not None:
        cmd += ["--rate", f"{rate:.0f}"]
    cmd += args.loadgen_arg
    # budget: connection setup (generous), idle, warm-up, measurement, drain, stall
    timeout = 60 + n / 100 + duration + args.drain + 60
    shown = [c if c != srv.key else "<key>" for c in cmd]
    log(f"loadgen: {' '.join(shown)}")
    cpu0 = proc_cpu_s(srv.pid)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: raise_nofile(nofile_for(n)),
    )
    out_lines: list[str] = []
    err_lines: list[str] = []

    def read_out() -> None:
        assert proc.stdout is not None
        out_lines.extend(proc.stdout)

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            # printed right before the measurement phase starts
            if on_measure is not None and line.startswith("loadgen: warm-up delivered"):
                on_measure()

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)
        for t in readers:
            t.join(timeout=5)
        return {
            "error": f"loadgen timed out after {timeout:.0f} s",
            "stderr": "".join(err_lines)[-2000:],
        }
    for t in readers:
        t.join(timeout=10)
    wall = time.monotonic() - t0
    cpu1 = proc_cpu_s(srv.pid)
    stdout = "".join(out_lines)
    if args.verbose:
        sys.stderr.write(stdout)
    result = parse_result(stdout) or {}
    result["returncode"] = proc.returncode
    result["run_wall_s"] = round(wall, 3)
    if cpu0 is not None and cpu1 is not None:
        # whole loadgen run (setup + idle + measurement); the table uses the
        # measurement-only figure that loadgen reads itself
        result["server_cpu_s_whole_run"] = round(cpu1 - cpu0, 3)
    if proc.returncode != 0 or "msgs_per_s" not in result:
        err = "".join(err_lines).strip().splitlines()
        result.setdefault("error", "none")
        if result["error"] == "none":
            result["error"] = f"loadgen exit {proc.returncode}"
        result["stderr"] = "\n".join(err[-15:])
        log(f"loadgen failed ({result['error']}):\n{result['stderr']}")
        if srv.proc.poll() is not None:
            log(f"{srv.kind} exited with {srv.proc.returncode}; log tail:\n{tail(srv.log_path)}")
    return result


# --------------------------------------------------------------------------
# profiles (py-spy)


def py_spy() -> str | None:
    local = REPO / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy record against one server pid for the measurement phase of a max run."""

    def __init__(self, pid: int, out: Path, seconds: float) -> None:
        self.pid, self.out, self.seconds = pid, out, seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self) -> None:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy not found (pip install -e '.[dev]')"
            return
        pin = ["taskset", "-c", LOADGEN_CPU] if PIN else []
        cmd = [
            *pin,
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--duration",
            str(max(1, math.floor(self.seconds))),
            "--rate",
            "100",
            "--format",
            "raw",
            "--function",
            "--nonblocking",
            "-o",
            str(self.out),
        ]
        log(f"profile: {' '.join(cmd)}")
        with open(self.out.with_suffix(".log"), "wb") as lf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)

    def finish(self) -> dict[str, Any]:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                self.error = "py-spy did not finish"
        if self.error:
            return {"error": self.error}
        if not self.out.exists():
            return {"error": "py-spy wrote nothing: " + tail(self.out.with_suffix(".log"), 3)}
        return summarize_profile(self.out)


# entry frames under which the whole server runs: left out of the inclusive list
ENTRY_FRAMES = (
    "<frozen runpy>",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "uvloop/__init__.py",
    "streamgate/__main__.py",
    "streamgate/cli.py",
)


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Top leaf (self) and inclusive functions of a py-spy raw (collapsed) file.

    A leaf in an entry frame (``Runner.run``) is time in uvloop's native loop (epoll,
    callbacks' C parts); entry frames are left out of the inclusive list, where they
    would head it with ~100%."""
    leaf: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
        for fr in set(frames):
            if not any(e in fr for e in ENTRY_FRAMES):
                incl[fr] = incl.get(fr, 0) + count

    def best(d: dict[str, int]) -> list[dict[str, Any]]:
        rows = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [{"function": k, "samples": v, "pct": round(100 * v / total, 1)} for k, v in rows]

    return {"file": str(path), "samples": total, "leaf": best(leaf), "inclusive": best(incl)}


# --------------------------------------------------------------------------
# rows


@dataclass
class Row:
    scenario: str
    server: str
    n: int
    batch: int
    window: int
    topics: int
    repeat: int
    max: dict[str, Any] = field(default_factory=dict)
    half: dict[str, Any] = field(default_factory=dict)
    half_rate: float | None = None
    # streamgate rows only, when Node is in the run too: open loop at the rate
    # of Node's half-rate phase at the same N (Node's `half_rate`)
    at_node_half: dict[str, Any] = field(default_factory=dict)
    at_node_half_rate: float | None = None
    idle: dict[str, Any] = field(default_factory=dict)  # idle100k rows only
    server_nofile: int | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def phases(self) -> tuple[dict[str, Any], ...]:
        if self.scenario == "idle100k":
            return (self.idle,)
        return (self.max, self.half, self.at_node_half)

    def key(self) -> tuple[str, str, int]:
        return (self.scenario, self.server, self.n)


def phase_error(r: dict[str, Any]) -> str | None:
    err = r.get("error")
    return None if err in (None, "none") else str(err)


def first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else repr(e)


def run_phase(
    kind: str,
    n: int,
    mode: str,
    sc: Scenario,
    args: argparse.Namespace,
    workdir: Path,
    tag: str,
    row: Row,
    rate: float | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One loadgen run against a fresh server, which is stopped afterwards."""
    srv = start_server(kind, workdir, f"r{row.repeat}-{sc.name}-{kind}-n{n}-{tag}", nofile_for(n))
    row.server_nofile = proc_nofile(srv.pid)
    prof = None
    if profile is not None and kind in STREAMGATE_KINDS and kind != "streamgate-redis-2w":
        prof = Profiler(srv.pid, profile, args.duration)
    try:
        res = run_loadgen(
            srv, n, mode, sc, args, rate=rate, on_measure=prof.start if prof else None
        )
        if prof is not None:
            row.profile = prof.finish()
        return res
    finally:
        stop_server(srv)


def bench_one(
    sc: Scenario, kind: str, n: int, args: argparse.Namespace, workdir: Path, rep: int
) -> Row:
    row = Row(sc.name, kind, n, sc.batch, sc.window, sc.topics, rep)
    why = nofile_problem(n)
    if why:
        row.error = why
        return row
    if kind.startswith("streamgate-redis"):
        why = redis_reachable()
        if why:
            row.error = why
            return row
    if sc.name == "idle100k":
        row.idle = run_phase(kind, n, "idle", sc, args, workdir, "idle", row)
        row.error = phase_error(row.idle)
        return row
    prof = None
    if args.profile:
        prof = Path(args.profile) / f"r{rep}-{sc.name}-{kind}-n{n}-max.txt"
    # phase 1: max (fresh server)
    row.max = run_phase(kind, n, "max", sc, args, workdir, "max", row, profile=prof)
    if not row.max.get("msgs_per_s"):
        row.error = phase_error(row.max) or "max phase measured no throughput"
        return row
    # phase 2: open loop at a fraction of the measured max (fresh server again,
    # so the second phase starts from the same state as the first)
    row.half_rate = args.half_fraction * float(row.max["msgs_per_s"])
    row.half = run_phase(kind, n, "rate", sc, args, workdir, "half", row, rate=row.half_rate)
    errs = [e for e in (phase_error(row.max), phase_error(row.half)) if e]
    if errs:
        row.error = "; ".join(errs)
    return row


def bench_at_node_half(
    row: Row, node: Row, sc: Scenario, args: argparse.Namespace, workdir: Path
) -> None:
    """Phase 3 (streamgate kinds): open loop at the rate of Node's half-rate phase at
    the same N, on a fresh server, so the two p99s are at one rate."""
    if node.half_rate is None:
        return
    row.at_node_half_rate = node.half_rate
    try:
        row.at_node_half = run_phase(
            row.server,
            row.n,
            "rate",
            sc,
            args,
            workdir,
            "at-node-half",
            row,
            rate=node.half_rate,
        )
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log(f"{row.server} N={row.n} at node's half rate failed: {e}")
        row.at_node_half = {"error": first_line(e)}
    err = phase_error(row.at_node_half)
    if err:
        row.error = f"{row.error}; @node-half: {err}" if row.error else f"@node-half: {err}"


def find_row(rows: Iterable[Row], scenario: str, server: str, n: int) -> Row | None:
    for r in rows:
        if r.key() == (scenario, server, n):
            return r
    return None


def run_matrix(
    scenarios: list[Scenario], args: argparse.Namespace, workdir: Path, rep: int
) -> list[Row]:
    rows: list[Row] = []
    for sc in scenarios:
        mine: list[Row] = []
        for kind in sc.servers:
            for n in sc.ns:
                log(f"=== run {rep + 1}/{args.repeat}: {sc.name} {kind} N={n} ===")
                try:
                    mine.append(bench_one(sc, kind, n, args, workdir, rep))
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"{sc.name} {kind} N={n} failed: {e}")
                    row = Row(sc.name, kind, n, sc.batch, sc.window, sc.topics, rep)
                    row.error = first_line(e)
                    mine.append(row)
        rows += mine
        if sc.name == "idle100k":
            continue
        # phase 3 needs node's max at each N, so it runs after the scenario's rows
        for row in mine:
            if row.server == "node" or row.error:
                continue
            node = find_row(rows, sc.node_from or sc.name, "node", row.n)
            if node is None:
                continue
            if node.half_rate is None:
                log(f"=== {sc.name} {row.server} N={row.n} at node's rate: skipped (no node max)")
                continue
            log(
                f"=== run {rep + 1}/{args.repeat}: {sc.name} {row.server} N={row.n} at node's "
                f"{args.half_fraction:.0%} rate ({node.half_rate:,.0f} msgs/s) ==="
            )
            bench_at_node_half(row, node, sc, args, workdir)
    return rows


# --------------------------------------------------------------------------
# figures


def is_num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def num(d: dict[str, Any], k: str) -> float | None:
    v = d.get(k)
    return float(v) if is_num(v) and v >= 0 else None


def integrity(r: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(r.get("lost", 0) or 0),
        int(r.get("dup", 0) or 0),
        int(r.get("closed", 0) or 0) + int(r.get("eof", 0) or 0) + int(r.get("errors", 0) or 0),
    )


def per_delivery_us(r: dict[str, Any], part: str) -> float | None:
    """Server CPU (user or sys, measurement phase) per delivered frame, in us."""
    cpu, delivered = num(r, f"server_{part}_s"), num(r, "delivered")
    if cpu is None or not delivered:
        return None
    return 1e6 * cpu / delivered


def figures(r: Row) -> dict[str, float | None]:
    """The row's figures that the tables and targets use (None: not measured)."""
    if r.scenario == "idle100k":
        x = r.idle
        rss = num(x, "rss_per_conn_bytes")
        return {
            "connected": float(r.n) if x.get("error") == "none" else None,
            "connect_s": num(x, "connect_s"),
            "conns_per_s": num(x, "conns_per_s"),
            "kb_per_conn": rss / 1024 if rss is not None else None,
            "hz_p50_ms": ms(num(x, "hz_p50_us")),
            "hz_p99_ms": ms(num(x, "hz_p99_us")),
            "hz_failed": num(x, "hz_failed"),
            "live_p50_ms": ms(num(x, "p50_us")),
            "live_p99_ms": ms(num(x, "p99_us")),
            "lost": float(sum(integrity(x)[:2])) if x else None,
        }
    rss = num(r.max, "rss_per_conn_bytes")
    return {
        "msgs_s": num(r.max, "msgs_per_s"),
        "p50_max_ms": ms(num(r.max, "p50_us")),
        "p99_max_ms": ms(num(r.max, "p99_us")),
        "p50_half_ms": ms(num(r.half, "p50_us")),
        "p99_half_ms": ms(num(r.half, "p99_us")),
        # node's own @50% phase is, by definition, at node's half rate
        "p50_node_ms": ms(num(r.half if r.server == "node" else r.at_node_half, "p50_us")),
        "p99_node_ms": ms(num(r.half if r.server == "node" else r.at_node_half, "p99_us")),
        "kb_per_conn": rss / 1024 if rss is not None else None,
        "lost": float(sum(integrity(p)[0] for p in r.phases())) if r.max else None,
        "dup": float(sum(integrity(p)[1] for p in r.phases())) if r.max else None,
        "user_us": per_delivery_us(r.max, "user"),
        "sys_us": per_delivery_us(r.max, "sys"),
    }


def ms(us: float | None) -> float | None:
    return us / 1000 if us is not None else None


LOADGEN_SATURATED_PCT = 90.0
PROBE_FAILED_OK = 0  # failed /healthz probes allowed in an idle row


def status(r: Row) -> str:
    """'ok', or what makes the row doubtful."""
    if r.error:
        return f"ERROR: {r.error}"
    phases = [p for p in r.phases() if p]
    notes = []
    if any(integrity(x) != (0, 0, 0) for x in phases):
        notes.append("LOSS/DUP/CLOSE")
    if any(
        x.get("seq_mismatch") or x.get("unexpected") or x.get("accept_mismatch") for x in phases
    ):
        notes.append("BAD-DATA")
    if r.scenario == "idle100k":
        if (num(r.idle, "hz_failed") or 0) > PROBE_FAILED_OK:
            notes.append("HEALTHZ-FAILED")
        return " ".join(notes) or "ok"
    if any((x.get("loadgen_cpu_pct") or 0) > LOADGEN_SATURATED_PCT for x in phases):
        notes.append("LOADGEN-BUSY")
    for got, want, note in (
        (r.half.get("msgs_per_s"), r.half_rate, "HALF-RATE-NOT-SUSTAINED"),
        (r.at_node_half.get("msgs_per_s"), r.at_node_half_rate, "NODE-RATE-NOT-SUSTAINED"),
    ):
        if is_num(got) and want and got < 0.9 * want:
            notes.append(note)
    return " ".join(notes) or "ok"


def median_range(vals: list[float]) -> tuple[float, float, float] | None:
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def fmt_v(v: float | None, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.1f}" if v < 100 else f"{v:.0f}"
    if kind == "us":
        return f"{v:.2f}"
    return f"{v:.1f}"


def fmt_agg(vals: list[float | None], kind: str) -> str:
    got = [v for v in vals if v is not None]
    mr = median_range(got)
    if mr is None:
        return "-"
    med, lo, hi = mr
    if len(vals) == 1:
        return fmt_v(med, kind)
    text = f"{fmt_v(med, kind)} [{fmt_v(lo, kind)}-{fmt_v(hi, kind)}]"
    return text + ("" if len(got) == len(vals) else f" ({len(got)}/{len(vals)})")


def print_columns(hdr: list[str], table: list[list[str]]) -> None:
    widths = [max(len(x) for x in col) for col in zip(hdr, *table, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(hdr, widths, strict=True))
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))


FLOW_COLS: tuple[tuple[str, str, str], ...] = (
    ("msgs_s", "msgs/s max", "int"),
    ("p50_max_ms", "p50 max", "ms"),
    ("p99_max_ms", "p99 max", "ms"),
    ("p50_half_ms", "p50 @50%", "ms"),
    ("p99_half_ms", "p99 @50%", "ms"),
    ("p50_node_ms", "p50 @node50%", "ms"),
    ("p99_node_ms", "p99 @node50%", "ms"),
    ("kb_per_conn", "idle KiB/conn", "kb"),
    ("lost", "lost", "int"),
    ("dup", "dup", "int"),
    ("user_us", "srv user us/msg", "us"),
    ("sys_us", "srv sys us/msg", "us"),
)
IDLE_COLS: tuple[tuple[str, str, str], ...] = (
    ("connected", "held", "int"),
    ("connect_s", "connect s", "kb"),
    ("conns_per_s", "conns/s", "int"),
    ("kb_per_conn", "RSS KiB/conn", "kb"),
    ("hz_p50_ms", "healthz p50", "ms"),
    ("hz_p99_ms", "healthz p99", "ms"),
    ("hz_failed", "healthz failed", "int"),
    ("live_p50_ms", "live p50", "ms"),
    ("live_p99_ms", "live p99", "ms"),
    ("lost", "live lost/dup", "int"),
)


def groups(rows: list[Row]) -> list[list[Row]]:
    """Rows of all repeats grouped by (scenario, server, N), in run order."""
    out: dict[tuple[str, str, int], list[Row]] = {}
    for r in rows:
        out.setdefault(r.key(), []).append(r)
    return list(out.values())


def print_tables(rows: list[Row]) -> None:
    flow = [g for g in groups(rows) if g[0].scenario != "idle100k"]
    idle = [g for g in groups(rows) if g[0].scenario == "idle100k"]
    if flow:
        hdr = ["scenario", "server", "topics", "batch", "window", "N"]
        hdr += [c[1] for c in FLOW_COLS] + ["status"]
        table = []
        for g in flow:
            r0 = g[0]
            cells = [r0.scenario, r0.server, r0_label(r0), str(r0.batch), str(r0.window)]
            cells.append(f"{r0.n:,}")
            figs = [figures(r) for r in g]
            cells += [fmt_agg([f[k] for f in figs], kind) for k, _, kind in FLOW_COLS]
            cells.append(statuses(g))
            table.append(cells)
        print_columns(hdr, table)
        print_errors(flow)
        print("(latencies in ms; @node50%: at the rate of Node's @50% phase, same scenario and N)")
    if idle:
        print()
        hdr = ["scenario", "server", "N", *[c[1] for c in IDLE_COLS], "server nofile", "status"]
        table = []
        for g in idle:
            r0 = g[0]
            figs = [figures(r) for r in g]
            cells = [r0.scenario, r0.server, f"{r0.n:,}"]
            cells += [fmt_agg([f[k] for f in figs], kind) for k, _, kind in IDLE_COLS]
            cells.append(",".join(sorted({str(r.server_nofile or "-") for r in g})))
            cells.append(statuses(g))
            table.append(cells)
        print_columns(hdr, table)
        print_errors(idle)
        print("(latencies in ms: healthz = GET /healthz on a fresh connection; live = publish to")
        print(" receive on one subscriber of its own topic, both while the N connections are held)")


def r0_label(r: Row) -> str:
    return f"{r.topics}+1" if r.topics else "1"


STATUS_WIDTH = 60  # longer statuses are cut in the table and printed in full below it


def statuses(g: list[Row]) -> str:
    st = [status(r) for r in g]
    if all(s == "ok" for s in st):
        return "ok"
    text = "; ".join(f"run {r.repeat + 1}: {s}" for r, s in zip(g, st, strict=True) if s != "ok")
    return text if len(text) <= STATUS_WIDTH else text[: STATUS_WIDTH - 3] + "..."


def print_errors(gs: list[list[Row]]) -> None:
    for g in gs:
        for r in g:
            st = status(r)
            if st != "ok" and len(statuses(g)) >= STATUS_WIDTH:
                print(f"  run {r.repeat + 1} {r.scenario} {r.server} N={r.n:,}: {st}")


# --------------------------------------------------------------------------
# targets


@dataclass
class Target:
    name: str
    verdict: str  # "met", "NOT met", "not run", "no figure"
    value: str = ""

    def line(self) -> str:
        v = f": {self.value}" if self.value else ""
        return f"  [{self.verdict}] {self.name}{v}"


def per_repeat(
    rows: list[Row], repeats: int, f: Callable[[list[Row]], float | None]
) -> list[float | None]:
    return [f([r for r in rows if r.repeat == k]) for k in range(repeats)]


def fig(rows: list[Row], scenario: str, server: str, n: int, key: str) -> float | None:
    r = find_row(rows, scenario, server, n)
    return figures(r)[key] if r is not None else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def judge(
    name: str,
    vals: list[float | None],
    ran: bool,
    ok: Callable[[float], bool],
    show: Callable[[float], str],
    extra: str = "",
) -> Target:
    """Median of the per-run values against the target."""
    if not ran:
        return Target(name, "not run", extra.strip())
    got = [v for v in vals if v is not None]
    if not got:
        return Target(name, "no figure", "the rows it needs failed" + extra)
    med = statistics.median(got)
    text = show(med)
    if len(vals) > 1:
        text += f" (median of {len(got)}; range {show(min(got))} to {show(max(got))})"
    return Target(name, "met" if ok(med) else "NOT met", text + extra)


def targets(rows: list[Row], repeats: int, args: argparse.Namespace) -> list[Target]:
    have = {r.key() for r in rows}

    def ran(*keys: tuple[str, str, int]) -> bool:
        return all(k in have for k in keys)

    big, small = 10_000, 1_000
    out = []
    out.append(
        judge(
            f"delivered msgs/s at N={big:,} (single): streamgate >= 1.5x Node, same run",
            per_repeat(
                rows,
                repeats,
                lambda rr: ratio(
                    fig(rr, "single", "streamgate", big, "msgs_s"),
                    fig(rr, "single", "node", big, "msgs_s"),
                ),
            ),
            ran(("single", "streamgate", big), ("single", "node", big)),
            lambda v: v >= 1.5,
            lambda v: f"{v:.2f}x",
        )
    )
    out.append(
        judge(
            f"p99 at 50% of its max at N={small:,} (single): streamgate <= 10 ms",
            per_repeat(
                rows, repeats, lambda rr: fig(rr, "single", "streamgate", small, "p99_half_ms")
            ),
            ran(("single", "streamgate", small)),
            lambda v: v <= 10.0,
            lambda v: f"{v:.1f} ms",
        )
    )
    out.append(
        judge(
            f"p99 at Node's 50% rate at N={big:,} (single): streamgate/Node p99 <= 1.00x",
            per_repeat(
                rows,
                repeats,
                lambda rr: ratio(
                    fig(rr, "single", "streamgate", big, "p99_node_ms"),
                    fig(rr, "single", "node", big, "p99_node_ms"),
                ),
            ),
            ran(("single", "streamgate", big), ("single", "node", big)),
            lambda v: v <= 1.0,
            lambda v: f"{v:.2f}x",
            extra=p99_pair(rows, big),
        )
    )
    out.append(
        judge(
            f"idle memory at N={big:,} (single): streamgate <= 4 KiB per connection",
            per_repeat(
                rows, repeats, lambda rr: fig(rr, "single", "streamgate", big, "kb_per_conn")
            ),
            ran(("single", "streamgate", big)),
            lambda v: v <= 4.0,
            lambda v: f"{v:.2f} KiB",
        )
    )
    idle_n = args.idle_n
    at_target = idle_n >= 100_000
    out.append(
        judge(
            "100,000 connections held (idle100k): worse of healthz and live p99 < 50 ms",
            per_repeat(rows, repeats, lambda rr: idle_probe_p99(rr, idle_n)),
            ran(("idle100k", "streamgate", idle_n)) and at_target,
            lambda v: v < 50.0,
            lambda v: f"{v:.1f} ms",
            extra="" if at_target else f" (this run: --idle-n {idle_n:,}, below 100,000)",
        )
    )
    out.append(
        judge(
            f"Redis mode at N={big:,}: streamgate-redis >= 80% of in-memory msgs/s (single)",
            per_repeat(
                rows,
                repeats,
                lambda rr: ratio(
                    fig(rr, "redis", "streamgate-redis", big, "msgs_s"),
                    fig(rr, "single", "streamgate", big, "msgs_s"),
                ),
            ),
            ran(("redis", "streamgate-redis", big), ("single", "streamgate", big)),
            lambda v: v >= 0.8,
            lambda v: f"{100 * v:.0f}%",
        )
    )
    return out


def p99_pair(rows: list[Row], n: int) -> str:
    a = [
        x
        for x in (figures(r)["p99_node_ms"] for r in rows if r.key() == ("single", "streamgate", n))
        if x is not None
    ]
    b = [
        x
        for x in (figures(r)["p99_node_ms"] for r in rows if r.key() == ("single", "node", n))
        if x is not None
    ]
    if not a or not b:
        return ""
    sg, nd = statistics.median(a), statistics.median(b)
    return f"; streamgate {sg:.1f} ms vs node {nd:.1f} ms (medians)"


def idle_probe_p99(rows: list[Row], n: int) -> float | None:
    r = find_row(rows, "idle100k", "streamgate", n)
    if r is None or status(r) != "ok":
        return None
    f = figures(r)
    a, b = f["hz_p99_ms"], f["live_p99_ms"]
    return max(a, b) if a is not None and b is not None else None


# --------------------------------------------------------------------------
# kernel limits for many connections


def read_int_file(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def min_nofile(n: int) -> int:
    """The fewest open files a server needs to hold n connections (plus producer and
    probes): streamgate's automatic cap keeps a tenth of the limit for its own files."""
    return math.ceil((n + 200) / 0.9) + 128


def max_n_for(nofile: int) -> int:
    """The largest N that min_nofile() allows under an open-file limit."""
    return max(0, math.floor((nofile - 128) * 0.9) - 200)


def can_raise_hard_limit(want: int) -> bool:
    """Whether a child may raise its hard RLIMIT_NOFILE to want (CAP_SYS_RESOURCE)."""
    code = (
        "import resource, sys\n"
        f"try: resource.setrlimit(resource.RLIMIT_NOFILE, ({want}, {want}))\n"
        "except (ValueError, OSError): sys.exit(1)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    return r.returncode == 0


def nofile_problem(n: int) -> str | None:
    """None when processes here can get the open files for n connections, else what
    must be raised (checked once per n)."""
    if n in _NOFILE_CHECKED:
        return _NOFILE_CHECKED[n]
    need = min_nofile(n)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    why = None
    if hard != resource.RLIM_INFINITY and hard < need and not can_raise_hard_limit(need):
        why = (
            f"N={n:,} needs {need:,} open files per process but the hard RLIMIT_NOFILE is "
            f"{hard:,} and cannot be raised here (no CAP_SYS_RESOURCE): raise it before "
            f"running (with CAP_SYS_RESOURCE: ulimit -Hn {2 * need}; a container: docker run "
            f"--ulimit nofile={2 * need}:{2 * need}; systemd: LimitNOFILE={2 * need}); "
            f"under this limit N <= {max_n_for(hard):,}"
        )
    _NOFILE_CHECKED[n] = why
    return why


_NOFILE_CHECKED: dict[int, str | None] = {}


def check_limits(n: int) -> list[str]:
    """What the machine allows for n connections from loadgen to a server on one host;
    lines starting with '!' name a limit that must be raised."""
    out = []
    file_max = read_int_file("/proc/sys/fs/file-max")
    nr_open = read_int_file("/proc/sys/fs/nr_open")
    ports = read_int_file("/proc/sys/net/ipv4/ip_local_port_range").split()
    conntrack = read_int_file("/proc/sys/net/netfilter/nf_conntrack_max")
    somax = read_int_file("/proc/sys/net/core/somaxconn")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = nofile_for(n)
    out.append(
        f"limits: fs.file-max={file_max} fs.nr_open={nr_open} "
        f"ip_local_port_range={'-'.join(ports)} "
        f"nf_conntrack_max={conntrack} somaxconn={somax} RLIMIT_NOFILE={soft}/{hard} "
        f"(root: {os.geteuid() == 0}); for N={n:,}: at least {min_nofile(n):,} files per "
        f"process (asked for {need:,}), "
        f"{src_addrs_for(n)} source addresses"
    )
    if file_max.isdigit() and int(file_max) < 2 * need:
        out.append(f"! fs.file-max {file_max} < {2 * need}: sysctl -w fs.file-max={4 * need}")
    if nr_open.isdigit() and int(nr_open) < need:
        out.append(f"! fs.nr_open {nr_open} < {need}: sysctl -w fs.nr_open={2 * need}")
    why = nofile_problem(n)
    if why:
        out.append("! " + why)
    if len(ports) == 2 and all(p.isdigit() for p in ports):
        per_src = int(ports[1]) - int(ports[0]) + 1
        if per_src * src_addrs_for(n) < n:
            out.append(f"! {per_src} ports per source address x {src_addrs_for(n)} < {n}")
    if conntrack.isdigit() and int(conntrack) < n + 1000:
        out.append(
            f"! nf_conntrack_max {conntrack} < {n + 1000}: "
            f"sysctl -w net.netfilter.nf_conntrack_max={2 * n}"
        )
    return out


# --------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


EXIT_ROW, EXIT_TARGET, EXIT_USAGE = 1, 2, 64


def csv_ints(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from e
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return vals


def csv_of(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        vals = [x.strip() for x in text.split(",") if x.strip()]
        bad = [v for v in vals if v not in choices]
        if bad or not vals:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(choices)}"
            )
        return vals

    return parse


SERVER_KINDS = (*STREAMGATE_KINDS, "node")


def parse_args() -> argparse.Namespace:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scenarios",
        type=csv_of(SCENARIOS),
        default=list(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)} (default all)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of the whole matrix (default 1)")
    ap.add_argument(
        "--n", type=csv_ints, default=[1000, 10000], help="subscriber counts (default 1000,10000)"
    )
    ap.add_argument(
        "--duration", type=float, default=10.0, help="seconds of sending per phase (default 10)"
    )
    ap.add_argument("--batch", type=int, default=1, help="events per request (default 1)")
    ap.add_argument("--window", type=int, default=2, help="requests in flight (default 2)")
    ap.add_argument("--batched-batch", type=int, default=10, help="batched: events/request (10)")
    ap.add_argument("--batched-window", type=int, default=4, help="batched: in flight (4)")
    ap.add_argument(
        "--servers",
        type=csv_of(SERVER_KINDS),
        default=["streamgate", "node"],
        help="servers of single, batched, markets (default streamgate,node)",
    )
    ap.add_argument(
        "--redis-servers",
        type=csv_of(STREAMGATE_KINDS),
        default=["streamgate-redis"],
        help="servers of the redis scenario (default streamgate-redis; also streamgate-redis-2w)",
    )
    ap.add_argument("--markets-n", type=int, default=10_000, help="markets: N (default 10000)")
    ap.add_argument(
        "--markets-topics", type=int, default=0, help="markets: small topics (default N/10)"
    )
    ap.add_argument(
        "--markets-big-every",
        type=int,
        default=2,
        help="markets: every M-th event to the big topic, the rest round-robin to the small "
        "ones (default 2: alternate)",
    )
    ap.add_argument("--idle-n", type=int, default=100_000, help="idle100k: N (default 100000)")
    ap.add_argument(
        "--idle-servers",
        type=csv_of(SERVER_KINDS),
        default=["streamgate"],
        help="servers of idle100k (default streamgate)",
    )
    ap.add_argument("--probes", type=int, default=200, help="idle100k: probes of each kind (200)")
    ap.add_argument(
        "--idle-duration", type=float, default=5.0, help="idle100k: seconds of probing (default 5)"
    )
    ap.add_argument(
        "--half-fraction",
        type=float,
        default=0.5,
        help="open-loop rate as a fraction of max (default 0.5); streamgate also runs at this "
        "fraction of node's max",
    )
    ap.add_argument(
        "--drain", type=float, default=5.0, help="seconds to wait for the tail (default 5)"
    )
    ap.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy record each streamgate max phase into DIR and print the top functions",
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
    if args.duration <= 0 or args.idle_duration <= 0 or args.drain < 0:
        ap.error("--duration, --idle-duration must be > 0 and --drain >= 0")
    if min(args.batch, args.window, args.batched_batch, args.batched_window, args.repeat) < 1:
        ap.error("--batch, --window, --batched-batch, --batched-window, --repeat must be >= 1")
    if args.markets_n < 2 or args.markets_big_every < 1 or args.markets_topics < 0:
        ap.error("--markets-n must be >= 2, --markets-big-every >= 1, --markets-topics >= 0")
    if args.markets_topics > args.markets_n:
        ap.error("--markets-topics cannot exceed --markets-n")
    if args.idle_n < 1 or not 1 <= args.probes <= 100_000:
        ap.error("--idle-n must be >= 1 and --probes 1..100000")
    if not 0 < args.half_fraction <= 1:
        ap.error("--half-fraction must be in (0, 1]")
    return args


def print_profiles(rows: list[Row]) -> None:
    for r in rows:
        if not r.profile:
            continue
        p = r.profile
        print()
        head = f"profile run {r.repeat + 1} {r.scenario} {r.server} N={r.n:,} (max phase)"
        if "error" in p:
            print(f"{head}: {p['error']}")
            continue
        print(f"{head}: {p['samples']} samples, {p['file']}")
        for kind in ("leaf", "inclusive"):
            print(
                f"  top {len(p[kind])} {kind} (own time)"
                if kind == "leaf"
                else f"  top {len(p[kind])} inclusive"
            )
            for e in p[kind]:
                print(f"    {e['pct']:5.1f}%  {e['function']}")


def main() -> int:
    global PIN
    args = parse_args()
    scenarios = build_scenarios(args)
    PIN = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if not PIN and not args.no_pin:
        log("fewer than 2 CPUs or no taskset: running unpinned")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        if py_spy() is None:
            raise SystemExit("fanout: --profile needs py-spy (.venv/bin/pip install -e '.[dev]')")

    ensure_loadgen()
    if any("node" in sc.servers for sc in scenarios):
        ensure_node_modules()
    limit_lines = check_limits(max(max(sc.ns) for sc in scenarios)) if scenarios else []
    for line in limit_lines:
        log(line)

    workdir = Path(tempfile.mkdtemp(prefix="fanout-"))
    rows: list[Row] = []
    interrupted = False
    try:
        for rep in range(args.repeat):
            rows += run_matrix(scenarios, args, workdir, rep)
            if args.repeat > 1:
                print(f"\nrun {rep + 1} of {args.repeat}:")
                print_tables([r for r in rows if r.repeat == rep])
    except KeyboardInterrupt:
        log("interrupted")
        interrupted = True
    finally:
        if args.keep_logs:
            log(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(
        f"fan-out benchmark: {args.repeat} run(s)"
        f"{' (median [min-max])' if args.repeat > 1 else ''}, "
        f"duration={args.duration:g} s/phase, server on CPU {SERVER_CPU if PIN else '-'}, "
        f"loadgen on CPU {LOADGEN_CPU if PIN else '-'}; the headline is scenario single "
        f"(batch {args.batch}, window {args.window})"
    )
    for line in limit_lines:
        print(line)
    print_tables(rows)
    print_profiles(rows)
    tgs = targets(rows, args.repeat, args)
    print()
    print("targets (issue 14; like for like, both servers in the same run):")
    for t in tgs:
        print(t.line())
    rows_ok = bool(rows) and not interrupted and all(status(r) == "ok" for r in rows)
    missed = any(t.verdict == "NOT met" for t in tgs)
    code = (0 if rows_ok else EXIT_ROW) | (EXIT_TARGET if missed else 0)
    print(f"rows: {'all ok' if rows_ok else 'NOT all ok'}; exit status {code}")

    if args.json:
        out = {
            "config": {
                k: v for k, v in vars(args).items() if k not in ("json", "verbose", "keep_logs")
            }
            | {"pinned": PIN},
            "limits": limit_lines,
            "results": [
                {
                    "repeat": r.repeat,
                    "scenario": r.scenario,
                    "server": r.server,
                    "n": r.n,
                    "batch": r.batch,
                    "window": r.window,
                    "topics": r.topics,
                    "figures": figures(r),
                    "status": status(r),
                    "max": r.max,
                    "half": r.half,
                    "half_rate": r.half_rate,
                    "at_node_half": r.at_node_half,
                    "at_node_half_rate": r.at_node_half_rate,
                    "idle": r.idle,
                    "server_nofile": r.server_nofile,
                    "profile": r.profile,
                    "error": r.error,
                }
                for r in rows
            ],
            "targets": [t.__dict__ for t in tgs],
            "exit_status": code,
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        log(f"results written to {args.json}")
    return code


PIN = True

if __name__ == "__main__":
    sys.exit(main())
