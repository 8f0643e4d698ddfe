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
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from bench.context import Context
from bench.registry import Row, percentile, register
from bench.schemas import missing, schemas_of
from bench.services import call, command, connect, redis, serve, token

CANCELS = 200
WARMUP = 20
EMBEDDED_LIMIT_MS = 50.0
REDIS_LIMIT_MS = 100.0
JOB = {"type": "HVAC repair", "durationMinutes": 120, "priority": "High",
       "region": "North", "requiredSkills": ["hvac"],
       "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"}}


class Listener:
    """An SSE client that notes when each job's JobCancelled arrived."""

    def __init__(self, port: int) -> None:
        self.connection = connect(port, timeout=60)
        self.connection.request("GET", "/api/events",
                                headers={"Authorization": f"Bearer {token()}"})
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
    listener = Listener(stream_port)
    try:
        return cancel_latencies(command_port, listener.wait, count)
    finally:
        listener.close()


def cancel_latencies(port: int, arrived: Callable[[str], float], count: int) -> Latencies:
    """`count` cancels one at a time, each of a job with one assignment: from the
    cancel sent until its JobCancelled arrived (`arrived(job_id)`, a perf_counter
    time), and until the cancel's answer was read."""
    api, bearer = connect(port), token()
    try:
        jobs = []
        for _ in range(count):
            status, job = call(api, "POST", "/api/jobs", JOB, bearer)
            assert status == 201, job
            status, job = call(api, "POST", f"/api/jobs/{job['id']}/assignments", {
                "contractorId": str(uuid.uuid4()), "startUtc": "2030-01-15T09:00:00Z",
                "endUtc": "2030-01-15T11:00:00Z"}, bearer)
            assert status == 201, job
            jobs.append(job["id"])
        delivered, answered = [], []
        for job_id in jobs:
            sent = time.perf_counter()
            status, body = call(api, "POST", f"/api/jobs/{job_id}/cancel",
                                {"reasonCode": "CustomerRequest"}, bearer)
            replied = time.perf_counter()
            assert status == 200, body
            delivered.append(arrived(job_id) - sent)
            answered.append(replied - sent)
        return Latencies(delivered, answered)
    finally:
        api.close()


def latency_rows(kind: str, label: str, latencies: Latencies, limit_ms: float, note: str,
                 warmup: int = 20) -> list[Row]:
    """p50 and p99 after the warm-up (µs); the p99 against `limit_ms`."""
    note = f"{note}; 1-min load average {os.getloadavg()[0]:.1f} at the end"
    delivered, answered = latencies.delivered[warmup:], latencies.answered[warmup:]
    return [Row(f"{kind}: {label} p{p:.0f}", percentile(delivered, p / 100) * 1e6,
                percentile(answered, p / 100) * 1e6, "µs",
                at_most=limit_ms * 1000 if p == 99 else None, note=note if p == 99 else "")
            for p in (50, 99)]


def rows(label: str, latencies: Latencies, limit_ms: float, note: str) -> list[Row]:
    return latency_rows("realtime", label, latencies, limit_ms, note, WARMUP)


def embedded(ctx: Context) -> list[Row]:
    workdir = ctx.workdir / "realtime-embedded"
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        port = serve(stack, workdir, "server", f"sqlite:///{workdir / 'rt.db'}",
                     sse_heartbeat="5").port
        latencies = measure(port, port, WARMUP + CANCELS)
    return rows("embedded", latencies, EMBEDDED_LIMIT_MS,
                f"one server, SQLite, no Redis; {CANCELS} cancels; baseline: the "
                "cancel's HTTP round trip")


def through_redis(ctx: Context) -> list[Row]:
    workdir = ctx.workdir / "realtime-redis"
    workdir.mkdir(parents=True, exist_ok=True)
    with schemas_of() as schemas, ExitStack() as stack:
        database_url = schemas.new()
        common = {"redis_url": redis(stack, workdir), "embedded_relay": "false",
                  "sse_heartbeat": "5"}
        port_a = serve(stack, workdir, "server-a", database_url,
                       embedded_projections="true", **common).port
        port_b = serve(stack, workdir, "server-b", database_url,
                       embedded_projections="false", **common).port
        command(stack, workdir, ["relay"], database_url, "Relay: publishing from position",
                redis_url=common["redis_url"])
        latencies = measure(port_a, port_b, WARMUP + CANCELS)
    return rows("redis", latencies, REDIS_LIMIT_MS,
                f"cancel on A, SSE on B, PostgreSQL, relay process; {CANCELS} cancels; "
                "baseline: the cancel's HTTP round trip on A")


@register("realtime", "cancel sent -> JobCancelled on an SSE client (p50, p99 latency)")
def realtime(ctx: Context) -> list[Row]:
    ctx.say(f"realtime: {WARMUP} warm-up + {CANCELS} cancels per scenario, one at a time")
    found = embedded(ctx)
    reason = missing(redis=True)
    if reason:
        ctx.say(f"  realtime: redis: skipped ({reason})")
    else:
        found += through_redis(ctx)
    for row in found:
        ctx.say(f"  {row.name}: {row.ours / 1000:.1f} ms (cancel round trip "
                f"{row.baseline / 1000:.1f} ms)")
    return found
