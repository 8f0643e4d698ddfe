"""`realtime`: from sending a cancel to an SSE client receiving its JobCancelled.

Real processes over real sockets, measured from this process:

(a) embedded: one `smartscheduler serve` on a fresh SQLite file, no Redis; the
    SSE client and the cancels go to the same server.
(b) Redis: two `smartscheduler serve` processes on one fresh PostgreSQL schema
    (A runs the read models, B none), a `smartscheduler relay` process and a
    private `redis-server`; the cancels go to A, the SSE client listens on B.

Each scenario creates its jobs (one assignment each) first, then sends
WARMUP + CANCELS cancels one at a time, each after the previous JobCancelled
arrived. Latency: `perf_counter()` before the request is sent to the moment
the client's reader thread has parsed the JobCancelled of that job. The
baseline column is the cancel's own HTTP round trip (request sent, response
read) in the same run. Targets, on p99: 50 ms embedded, 100 ms through Redis.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from application.settings import Settings
from bench.context import Context
from bench.registry import Row, register
from web.auth import mint_token

CANCELS = 200
WARMUP = 20
EMBEDDED_LIMIT_MS = 50.0
REDIS_LIMIT_MS = 100.0
POSTGRES_URL = os.environ.get("SMARTSCHEDULER_BENCH_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-realtime-secret-" + "b" * 32
STARTUP = 60.0
ROOT = Path(__file__).resolve().parents[1]
JOB = {"type": "HVAC repair", "durationMinutes": 120, "priority": "High",
       "region": "North", "requiredSkills": ["hvac"],
       "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"}}


@dataclass(frozen=True)
class LatencyRow(Row):
    """A latency (lower is better) against an absolute limit, in the row's unit."""

    limit: float | None = None

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return "info"
        return "ok" if self.ours <= self.limit else "MISS"

    @property
    def target_text(self) -> str:
        return f"<= {self.limit:,.0f} {self.unit}" if self.limit is not None else "-"


# Processes -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


class Processes:
    """Every process a scenario started, stopped in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Process] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None
              ) -> Process:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1",
                                          **(env or {})},
                                     start_new_session=True)
        process = Process(name, popen, log_path)
        self.started.append(process)
        return process

    def wait(self, process: Process, ready: Any) -> None:
        deadline = time.monotonic() + STARTUP
        while not ready():
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not start:\n{process.log()}")
            time.sleep(0.05)

    def redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("no redis-server binary on PATH")
        port = _free_port()
        process = self.spawn("redis", [binary, "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no",
                                       "--dir", str(self.workdir)])
        self.wait(process, lambda: _answers(port, b"PING\r\n", b"+PONG"))
        return f"redis://127.0.0.1:{port}/0"

    def serve(self, name: str, database_url: str, **settings: str) -> int:
        port = _free_port()
        env = {"SMARTSCHEDULER_DATABASE_URL": database_url,
               "SMARTSCHEDULER_JWT_SECRET": SECRET, "SMARTSCHEDULER_SSE_HEARTBEAT": "5",
               **{f"SMARTSCHEDULER_{key.upper()}": value for key, value in settings.items()}}
        if "redis_url" not in settings:
            env["SMARTSCHEDULER_REDIS_URL"] = ""
        process = self.spawn(name, [sys.executable, "-m", "smartscheduler", "serve",
                                    "--host", "127.0.0.1", "--port", str(port)], env)
        self.wait(process, lambda: _healthy(port))
        return port

    def relay(self, database_url: str, redis_url: str) -> None:
        process = self.spawn("relay", [sys.executable, "-m", "smartscheduler", "relay"], {
            "SMARTSCHEDULER_DATABASE_URL": database_url,
            "SMARTSCHEDULER_REDIS_URL": redis_url, "SMARTSCHEDULER_JWT_SECRET": SECRET})
        self.wait(process, lambda: "Relay: publishing from position" in process.log())

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        self.started.clear()


def _answers(port: int, send: bytes, expect: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            probe.sendall(send)
            return probe.recv(64).startswith(expect)
    except OSError:
        return False


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


# HTTP and SSE ----------------------------------------------------------------------


def _token() -> str:
    return mint_token(Settings(jwt_secret=SECRET), roles=["Dispatcher"], ttl=3600)


class Api:
    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {_token()}",
                        "Content-Type": "application/json"}

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        self.connection.request("POST", path, body=json.dumps(body).encode(),
                                headers=self.headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.connection.close()


class Listener:
    """An SSE client that notes when each job's JobCancelled arrived."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.connection.request("GET", "/api/events",
                                headers={"Authorization": f"Bearer {_token()}"})
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"GET /api/events answered {self.response.status}")
        self.arrived: dict[str, float] = {}
        self._changed = threading.Condition()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._connected.wait(30):
            raise RuntimeError("The event stream sent nothing")

    def _read(self) -> None:
        event = ""
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            while True:
                line = self.response.readline()
                if not line:
                    return
                if line.startswith(b": connected"):
                    self._connected.set()
                elif line.startswith(b"event: "):
                    event = line[7:].strip().decode()
                elif line.startswith(b"data: ") and event == "JobCancelled":
                    now = time.perf_counter()
                    subject = json.loads(line[6:])["subject"]
                    with self._changed:
                        self.arrived[subject] = now
                        self._changed.notify_all()

    def wait(self, job_id: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while job_id not in self.arrived:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JobCancelled of {job_id} never arrived")
                self._changed.wait(0.5)
            return self.arrived[job_id]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.connection.sock is not None:
                self.connection.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self.response.close()
        self.connection.close()


@dataclass(frozen=True)
class Latencies:
    delivered: list[float]  # seconds, cancel sent -> JobCancelled parsed
    answered: list[float]  # seconds, cancel sent -> response read


def measure(command_port: int, stream_port: int, count: int) -> Latencies:
    api = Api(command_port)
    listener = Listener(stream_port)
    try:
        jobs = []
        for _ in range(count):
            status, job = api.post("/api/jobs", JOB)
            assert status == 201, job
            status, job = api.post(f"/api/jobs/{job['id']}/assignments", {
                "contractorId": str(uuid.uuid4()), "startUtc": "2030-01-15T09:00:00Z",
                "endUtc": "2030-01-15T11:00:00Z"})
            assert status == 201, job
            jobs.append(job["id"])
        delivered, answered = [], []
        for job_id in jobs:
            sent = time.perf_counter()
            status, body = api.post(f"/api/jobs/{job_id}/cancel",
                                    {"reasonCode": "CustomerRequest"})
            replied = time.perf_counter()
            assert status == 200, body
            delivered.append(listener.wait(job_id) - sent)
            answered.append(replied - sent)
        return Latencies(delivered, answered)
    finally:
        listener.close()
        api.close()


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def rows(label: str, latencies: Latencies, limit_ms: float, note: str) -> list[Row]:
    note = f"{note}; 1-min load average {os.getloadavg()[0]:.1f} at the end"
    measured = Latencies(latencies.delivered[WARMUP:], latencies.answered[WARMUP:])
    found = []
    for p in (50, 99):
        ours = percentile(measured.delivered, p) * 1e6
        baseline = percentile(measured.answered, p) * 1e6
        found.append(LatencyRow(f"realtime: {label} p{p}", ours, baseline, "µs",
                                limit=limit_ms * 1000 if p == 99 else None,
                                note=note if p == 99 else ""))
    return found


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    import psycopg

    schema = f"bench_rt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as connection:
        try:
            separator = "&" if "?" in POSTGRES_URL else "?"
            yield f"{POSTGRES_URL}{separator}schema={schema}"
        finally:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def embedded(ctx: Context) -> list[Row]:
    processes = Processes(ctx.workdir / "realtime-embedded")
    processes.workdir.mkdir(parents=True, exist_ok=True)
    try:
        port = processes.serve("server", f"sqlite:///{processes.workdir / 'rt.db'}")
        latencies = measure(port, port, WARMUP + CANCELS)
    finally:
        processes.stop()
    return rows("embedded", latencies, EMBEDDED_LIMIT_MS,
                f"one server, SQLite, no Redis; {CANCELS} cancels; baseline: the "
                "cancel's HTTP round trip")


def through_redis(ctx: Context) -> list[Row]:
    processes = Processes(ctx.workdir / "realtime-redis")
    processes.workdir.mkdir(parents=True, exist_ok=True)
    try:
        with postgres_schema() as database_url:
            redis_url = processes.redis()
            common = {"redis_url": redis_url, "embedded_relay": "false"}
            port_a = processes.serve("server-a", database_url, embedded_projections="true",
                                     **common)
            port_b = processes.serve("server-b", database_url,
                                     embedded_projections="false", **common)
            processes.relay(database_url, redis_url)
            latencies = measure(port_a, port_b, WARMUP + CANCELS)
            processes.stop()
    finally:
        processes.stop()
    return rows("redis", latencies, REDIS_LIMIT_MS,
                f"cancel on A, SSE on B, PostgreSQL, relay process; {CANCELS} cancels; "
                "baseline: the cancel's HTTP round trip on A")


def _missing_for_redis() -> str | None:
    """Why scenario (b) cannot run here, or None."""
    import psycopg

    if shutil.which("redis-server") is None:
        return "no redis-server binary on PATH"
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        return f"PostgreSQL at {POSTGRES_URL}: {str(error).strip()}"
    return None


@register("realtime", "cancel sent -> JobCancelled on an SSE client (p50, p99 latency)")
def realtime(ctx: Context) -> list[Row]:
    ctx.say(f"realtime: {WARMUP} warm-up + {CANCELS} cancels per scenario, one at a time")
    found = embedded(ctx)
    for row in found:
        ctx.say(f"  {row.name}: {row.ours / 1000:.1f} ms (cancel round trip "
                f"{row.baseline / 1000:.1f} ms)")
    missing = _missing_for_redis()
    if missing:
        ctx.say(f"  realtime: redis: skipped ({missing})")
        return found
    redis_rows = through_redis(ctx)
    for row in redis_rows:
        ctx.say(f"  {row.name}: {row.ours / 1000:.1f} ms (cancel round trip "
                f"{row.baseline / 1000:.1f} ms)")
    return found + redis_rows
