"""`serving`: the service over HTTP, measured with wrk beside a hello-world Flask app.

Baseline: a one-route Flask app under gunicorn gthread, 2 workers x 4 threads,
started in the same run. The service is started as the README says: `serve` on
SQLite (embedded), and the scaled topology on PostgreSQL + Redis (`serve` with
the read models and the relay in their own processes) when those servers are
there. wrk sends creates, then cancels of distinct live jobs, at 16 connections
and at 1, then again with 100 event streams open. Figures: throughput as a
ratio to the hello-world, p50 and p99 latency, and the RSS of the server's
processes. wrk and the server share this machine's cores, as a client would.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from application.settings import Settings
from bench.context import Context
from bench.registry import Row, register
from web.auth import mint_token

HOST = "127.0.0.1"
SECONDS = 5
STREAMS = 100
HALF_OPEN = 1000
TARGETS = {"create": 0.35, "cancel": 0.35}
HELLO = "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef hello():\n" \
        "    return 'Hello, World!'\n"
JOB = json.dumps({"type": "HVAC repair", "durationMinutes": 90, "priority": "High",
                  "serviceWindow": {"start": "2030-01-15T09:00:00Z",
                                    "end": "2030-01-15T13:00:00Z"}})
CANCEL = json.dumps({"reason": "Customer called to cancel", "reasonCode": "CustomerRequest"})

SCRIPT = r"""
local counter = 1
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  ids = {}
  local file = os.getenv("BENCH_IDS")
  if file and file ~= "" then
    for line in io.lines(file) do ids[#ids + 1] = line end
  end
  i = tid
  step = tonumber(os.getenv("BENCH_THREADS"))
  wrk.method = "POST"
  wrk.body = os.getenv("BENCH_BODY")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end
function request()
  if #ids == 0 then return wrk.format(nil, "/api/jobs") end
  local id = ids[((i - 1) % #ids) + 1]
  i = i + step
  return wrk.format(nil, "/api/jobs/" .. id .. "/cancel")
end
function done(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: requests per second, latency percentiles (ms), failures."""

    rate: float
    p50: float
    p99: float
    failed: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_healthy(port: int, path: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                if b" 200 " in sock.recv(100):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not come up:\n{log.read_text()[-3000:]}")


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path, *, port: int | None = None,
            health: str = "/healthz") -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        if port is not None:
            wait_healthy(port, health, process, log)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def rss_mib(root: int) -> float:
    """The resident memory of a process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def wrk(port: int, path: str, connections: int, *, workdir: Path, token: str = "",
        ids: list[str] | None = None, body: str = "", seconds: int = SECONDS) -> Load:
    threads = min(2, connections)
    script = workdir / "bench.lua"
    script.write_text(SCRIPT)
    ids_file = ""
    if ids is not None:
        ids_path = workdir / "ids.txt"
        ids_path.write_text("\n".join(ids) + "\n")
        ids_file = str(ids_path)
    env = {**os.environ, "BENCH_IDS": ids_file, "BENCH_THREADS": str(threads),
           "BENCH_TOKEN": token, "BENCH_BODY": body}
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if token:
        command += ["-s", str(script)]
    out = subprocess.run([*command, f"http://{HOST}:{port}{path}"], env=env,
                         capture_output=True, text=True, timeout=seconds + 60, check=True)
    if not token:  # plain wrk: parse its summary
        return _plain(out.stdout)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    requests, micros, status_errors, socket_errors, p50, p99 = map(int, line.split()[1:])
    return Load(requests / (micros / 1e6), p50 / 1000, p99 / 1000,
                status_errors + socket_errors)


def _plain(text: str) -> Load:
    rate = float(next(x for x in text.splitlines() if "Requests/sec" in x).split()[-1])
    return Load(rate, 0.0, 0.0, 0)


def hello_world(workdir: Path) -> Load:
    app_dir = workdir / "hello"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "hello.py").write_text(HELLO)
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    args = [gunicorn, "--chdir", str(app_dir), "-k", "gthread", "-w", "2", "--threads", "4",
            "-b", f"{HOST}:{port}", "--no-control-socket", "hello:app"]
    with started(args, dict(os.environ), workdir / "hello.log", port=port, health="/"):
        wrk(port, "/", 16, workdir=workdir, seconds=2)  # warm up
        return wrk(port, "/", 16, workdir=workdir)


def create_jobs(port: int, token: str, count: int) -> list[str]:
    """Live jobs to cancel, created over HTTP before the timed run."""
    import http.client

    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for _ in range(n):
            connection.request("POST", "/api/jobs", body=JOB, headers=headers)
            response = response_json(connection)
            with lock:
                ids.append(response["id"])
        connection.close()

    per = count // 8 + 1
    threads = [threading.Thread(target=worker, args=(per,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def response_json(connection: Any) -> Any:
    response = connection.getresponse()
    data = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{response.status}: {data[:300]!r}")
    return json.loads(data)


@contextmanager
def open_streams(port: int, token: str, count: int) -> Iterator[None]:
    """`count` event streams held open and read, as dispatcher screens would."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
                      ).encode())
        sockets.append(sock)
    stop = threading.Event()

    def drain() -> None:
        import selectors

        selector = selectors.DefaultSelector()
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in selector.select(0.2):
                try:
                    key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    selector.unregister(key.fileobj)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        time.sleep(1)
        yield
    finally:
        stop.set()
        reader.join(5)
        for sock in sockets:
            sock.close()


def measure_service(name: str, port: int, root: int, token: str, workdir: Path,
                    hello: Load, say: Any) -> list[Row]:
    rows = []
    wrk(port, "/api/jobs", 16, workdir=workdir, token=token, body=JOB, seconds=2)  # warm up
    create = wrk(port, "/api/jobs", 16, workdir=workdir, token=token, body=JOB)
    rows.append(Row(f"{name}: create, 16 conns", create.rate, hello.rate, "req/s",
                    TARGETS["create"], f"p50 {create.p50:.1f} ms, p99 {create.p99:.1f} ms, "
                    f"{create.failed} failed"))
    results: dict[str, Load] = {}
    for label, connections, streams in (("16 conns", 16, 0), ("1 conn", 1, 0),
                                        (f"16 conns, {STREAMS} streams", 16, STREAMS)):
        ids = create_jobs(port, token, int(max(create.rate, 200) * SECONDS * 1.5))
        with open_streams(port, token, streams) if streams else _nothing():
            load = wrk(port, "/api/jobs", connections, workdir=workdir, token=token,
                       ids=ids, body=CANCEL)
        results[label] = load
        rows.append(Row(f"{name}: cancel, {label}", load.rate, hello.rate, "req/s",
                        TARGETS["cancel"] if label == "16 conns" else None,
                        f"p50 {load.p50:.1f} ms, p99 {load.p99:.1f} ms, "
                        f"{load.failed} failed"))
    with_streams = results[f"16 conns, {STREAMS} streams"]
    rows.append(Row(f"{name}: cancel with {STREAMS} streams / without",
                    with_streams.rate, results["16 conns"].rate, "req/s", 0.8))
    rows.append(Row(f"{name}: cancel p99, 16 conns", results["16 conns"].p99, 0, "ms",
                    at_most=40))
    rows.append(Row(f"{name}: cancel p99, 1 conn", results["1 conn"].p99, 0, "ms",
                    at_most=10))
    worst, median = healthz_beside_half_open(port, HALF_OPEN)
    rows.append(Row(f"{name}: /healthz beside {HALF_OPEN:,} half-open conns", worst, 0,
                    "ms", note=f"slowest of 20; median {median:.1f} ms", at_most=100))
    rows.append(Row(f"{name}: server RSS", rss_mib(root), 0, "MiB", None, "all processes"))
    for row in rows:
        say(f"  {row.name}: {row.ours:,.1f} {row.unit} ({row.note})")
    return rows


def healthz_beside_half_open(port: int, count: int) -> tuple[float, float]:
    """/healthz latency (slowest and median of 20, ms) while `count` connections
    hold a request head they never finish."""
    import http.client
    import statistics

    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            held.append(sock)
        time.sleep(0.5)
        times = []
        for _ in range(20):
            began = time.perf_counter()
            connection = http.client.HTTPConnection(HOST, port, timeout=10)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            times.append((time.perf_counter() - began) * 1000)
        return max(times), statistics.median(times)
    finally:
        for sock in held:
            sock.close()


def slot_freed_after(port: int, token: str) -> float:
    """Seconds from a stream's client leaving to its (only) slot taking a new stream."""
    def attempt() -> tuple[socket.socket, bytes]:
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        return sock, sock.recv(200)

    first, head = attempt()
    if b" 200 " not in head:
        raise RuntimeError(f"no stream: {head!r}")
    first.close()
    began = time.monotonic()
    while time.monotonic() - began < 30:
        sock, head = attempt()
        sock.close()
        if b" 200 " in head:
            return time.monotonic() - began
        time.sleep(0.02)
    return float("inf")


def events_per_append(log: Path) -> str | None:
    """The workers' own count, logged as they stop ("... N events in M appends")."""
    events = appends = 0
    for line in log.read_text(errors="replace").splitlines():
        if "events in" in line and "appends" in line:
            words = line.split()
            try:
                at = words.index("events")
                events += int(words[at - 1].replace(",", ""))
                appends += int(words[at + 2].replace(",", ""))
            except (ValueError, IndexError):
                continue
    return f"{events / appends:.2f}" if appends else None


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def service_env(database_url: str, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTSCHEDULER_")}
    env.update({"SMARTSCHEDULER_DATABASE_URL": database_url,
                "SMARTSCHEDULER_JWT_SECRET": secret, **extra})
    return env


def embedded(ctx: Context, hello: Load) -> list[Row]:
    secret = secrets.token_urlsafe(32)
    port = free_port()
    url = f"sqlite:///{ctx.workdir / 'serving.db'}"
    cli = str(Path(sys.executable).with_name("smartscheduler"))
    token = mint_token(Settings(jwt_secret=secret), roles=["Dispatcher"])
    log = ctx.workdir / "embedded.log"
    with started([cli, "serve", "--host", HOST, "--port", str(port)],
                 service_env(url, secret), log, port=port) as process:
        rows = measure_service("embedded", port, process.pid, token, ctx.workdir, hello,
                               ctx.say)
    rows.append(_per_append("embedded", log, ctx.say))
    port = free_port()
    with started([cli, "serve", "--host", HOST, "--port", str(port)],
                 service_env(f"sqlite:///{ctx.workdir / 'slots.db'}", secret,
                             SMARTSCHEDULER_MAX_STREAMS="1"),
                 ctx.workdir / "slots.log", port=port):
        freed = slot_freed_after(port, token)
    ctx.say(f"  embedded: a left stream's slot is free after {freed:.2f} s")
    rows.append(Row("embedded: a left stream's slot free after", freed, 0, "s", at_most=2))
    return rows


def _per_append(name: str, log: Path, say: Any) -> Row:
    per = events_per_append(log)
    say(f"  {name}: events per append under load: {per or 'not logged'}")
    return Row(f"{name}: events per append (all runs)", float(per or 0), 0, "events",
               note="group commit: concurrent commands share one append")


def scaled(ctx: Context, hello: Load, postgres_url: str) -> list[Row]:
    import psycopg

    redis_port = free_port()
    redis_url = f"redis://{HOST}:{redis_port}/0"  # a private one: the relay writes a stream

    secret = secrets.token_urlsafe(32)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}schema={schema}"
    cli = str(Path(sys.executable).with_name("smartscheduler"))
    port = free_port()
    token = mint_token(Settings(jwt_secret=secret), roles=["Dispatcher"])
    env = service_env(url, secret, SMARTSCHEDULER_REDIS_URL=redis_url)
    web = {**env, "SMARTSCHEDULER_EMBEDDED_PROJECTIONS": "false",
           "SMARTSCHEDULER_EMBEDDED_RELAY": "false"}
    log = ctx.workdir / "scaled.log"
    try:
        with started(["redis-server", "--port", str(redis_port), "--bind", HOST,
                      "--save", "", "--appendonly", "no"], dict(os.environ), log), \
                started([cli, "serve", "--host", HOST, "--port", str(port)], web, log,
                        port=port) as server, \
                started([cli, "projections", "run"], env, log), \
                started([cli, "relay"], env, log):
            rows = measure_service("scaled", port, server.pid, token, ctx.workdir, hello,
                                   ctx.say)
        return [*rows, _per_append("scaled", log, ctx.say)]
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _reachable(postgres_url: str) -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import psycopg

        psycopg.connect(postgres_url, connect_timeout=3).close()
    except Exception as error:  # no server: measure the embedded mode only
        return str(error).strip()
    return None


@register("serving", "create and cancel over HTTP (wrk) against a hello-world Flask app")
def serving(ctx: Context) -> list[Row]:
    if shutil.which("wrk") is None:
        ctx.say("  serving: skipped (wrk is not installed: apt-get install wrk)")
        return []
    hello = hello_world(ctx.workdir)
    ctx.say(f"serving: hello-world Flask (gunicorn gthread 2x4): {hello.rate:,.0f} req/s")
    rows = embedded(ctx, hello)
    postgres_url = os.environ.get("SMARTSCHEDULER_TEST_POSTGRES_URL",
                                  "postgresql://postgres@127.0.0.1:5432/test")
    missing = _reachable(postgres_url)
    if missing:
        ctx.say(f"  serving: scaled skipped ({missing})")
        return rows
    return rows + scaled(ctx, hello, postgres_url)
