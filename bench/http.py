"""`http`: cancels per second over HTTP, under the real server, against /healthz.

The server is `smartscheduler serve` in its own process, configured as by
`make run` (gunicorn gthread; one worker on SQLite, several on PostgreSQL), on
the measured store. Sixteen client threads, each with its own keep-alive
connection, send `POST /api/jobs/{id}/cancel` (a Dispatcher token, a reason and
a reason code) to seeded jobs that are all still live, with one Pending
assignment each, so every request really cancels a job.

Baseline: `GET /healthz` from the same server in the same run, at the same
concurrency: what a request costs through gunicorn, Flask and our request
hooks, with no auth, no store and no domain work. For context (not part of the
ratio), `GET /api/jobs/{id}` of the jobs just cancelled: auth, one aggregate
read and the Job document, without a write. Timed runs alternate between the
three; the best run of each is reported, with p50 and p99 latency over all
timed requests. The load generator runs on the same machine as the server.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from uuid import UUID

from bench.context import Context
from bench.registry import Row, Timing, percentile, register, render
from bench.services import CANCEL, call, connect, serve, token
from smartscheduler.launch import HOST, Launched

TARGET = 0.5
CONNECTIONS = 16
CATCH_UP_TIMEOUT = 900.0
BODY = json.dumps(CANCEL).encode()

# One request: (method, path, body, headers); the answer's status must be `expected`.
Call = tuple[str, str, bytes | None, dict[str, str]]


@dataclass
class Run:
    """The outcome of one timed run over CONNECTIONS connections."""

    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    unexpected: Counter[int] = field(default_factory=Counter)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wait_for_read_models(port: int, say: Callable[[str], None]) -> None:
    """Until the server's embedded read models have caught up with the seeded log."""
    deadline, shown = time.monotonic() + CATCH_UP_TIMEOUT, 0.0
    while True:
        connection = connect(port, timeout=10)
        try:
            status, body = call(connection, "GET", "/readyz")
        finally:
            connection.close()
        lag = ((body or {}).get("checks", {}).get("readModels") or {}).get("lag")
        if status == 200 and not lag:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"The read models did not catch up (lag {lag})")
        if time.monotonic() - shown > 10:
            say(f"  waiting for the server's read models to catch up (lag {lag})")
            shown = time.monotonic()
        time.sleep(0.5)


def load(port: int, calls: Sequence[Call], expected: int) -> Run:
    """Send `calls` over CONNECTIONS keep-alive connections at once, one thread each."""
    shares = [calls[i::CONNECTIONS] for i in range(CONNECTIONS)]
    connections = [http.client.HTTPConnection(HOST, port, timeout=60)
                   for _ in range(CONNECTIONS)]
    for connection in connections:
        connection.connect()
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    unexpected: list[Counter[int]] = [Counter() for _ in range(CONNECTIONS)]
    errors: list[str] = []
    barrier = threading.Barrier(CONNECTIONS + 1)
    clock = time.perf_counter

    def client(index: int) -> None:
        connection, mine, bad = connections[index], latencies[index], unexpected[index]
        barrier.wait()
        try:
            for method, path, body, headers in shares[index]:
                began = clock()
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                mine.append(clock() - began)
                if response.status != expected:
                    bad[response.status] += 1
                    if not errors:
                        errors.append(f"{method} {path}: {response.status} {data[:300]!r}")
        except Exception as error:  # reported with the run
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = clock()
    for thread in threads:
        thread.join()
    seconds = clock() - began
    for connection in connections:
        connection.close()
    done = [latency for share in latencies for latency in share]
    total: Counter[int] = Counter()
    for counter in unexpected:
        total.update(counter)
    if len(done) < len(calls) and not errors:
        errors.append(f"only {len(done)} of {len(calls)} requests answered")
    return Run(len(done), seconds, done, total, errors[0] if errors else "")


def cancels(job_ids: Sequence[UUID], token: str) -> list[Call]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return [("POST", f"/api/jobs/{job_id}/cancel", BODY, headers) for job_id in job_ids]


def reads(job_ids: Sequence[UUID], token: str) -> list[Call]:
    headers = {"Authorization": f"Bearer {token}"}
    return [("GET", f"/api/jobs/{job_id}", None, headers) for job_id in job_ids]


def healthz(count: int) -> list[Call]:
    return [("GET", "/healthz", None, {})] * count


def ms(latencies: Sequence[float], fraction: float) -> float:
    return percentile(latencies, fraction) * 1000


def checked(run: Run, what: str, server: Launched) -> Run:
    if run.unexpected or run.first_error:
        raise RuntimeError(f"{what}: unexpected answers {dict(run.unexpected)}; first: "
                           f"{run.first_error}\nserver log (tail):\n{server.log()[-3000:]}")
    return run


@register("http", "HTTP cancels/s at 16 connections under gunicorn, against /healthz")
def http_cancel(ctx: Context) -> list[Row]:
    ops, repeat = ctx.args.commands, ctx.args.repeat
    store = ctx.ours()  # seeded first: the server opens a store that is already full
    warmup = max(CONNECTIONS, min(200, ops // 10))
    ctx.say(f"http: {ops:,} requests per run over {CONNECTIONS} keep-alive connections, "
            f"best of {repeat}, after {warmup} warm-up requests each; the store holds "
            f"{store.head():,} events")
    with ExitStack() as stack:
        server = serve(stack, ctx.workdir, "http-server", ctx.database_url)
        wait_for_read_models(server.port, ctx.say)
        bearer = token("bench-http")
        checked(load(server.port, cancels(store.take_live_jobs(warmup), bearer), 200),
                "warm-up cancels", server)
        checked(load(server.port, healthz(warmup), 200), "warm-up /healthz", server)
        cancel_runs, health_runs, read_runs = [], [], []
        for run in range(1, repeat + 1):
            jobs = store.take_live_jobs(ops)
            cancel_runs.append(checked(load(server.port, cancels(jobs, bearer), 200),
                                       "cancels", server))
            health_runs.append(checked(load(server.port, healthz(ops), 200),
                                       "/healthz", server))
            read_runs.append(checked(load(server.port, reads(jobs, bearer), 200),
                                     "job reads", server))
            ctx.say(f"  run {run}: cancel {cancel_runs[-1].rate:,.0f} req/s, "
                    f"/healthz {health_runs[-1].rate:,.0f} req/s, "
                    f"job read {read_runs[-1].rate:,.0f} req/s")

    cancel_t = Timing(tuple(run.rate for run in cancel_runs))
    health_t = Timing(tuple(run.rate for run in health_runs))
    read_t = Timing(tuple(run.rate for run in read_runs))
    cancel_lat = [latency for run in cancel_runs for latency in run.latencies]
    health_lat = [latency for run in health_runs for latency in run.latencies]
    read_lat = [latency for run in read_runs for latency in run.latencies]
    ratio = cancel_t.best / health_t.best if health_t.best else 0.0
    ctx.say(f"  cancel:   {cancel_t.describe('req/s')}")
    ctx.say(f"  /healthz: {health_t.describe('req/s')}")
    ctx.say("")
    lines = [("POST /api/jobs/{id}/cancel", cancel_lat, cancel_t.best, f"{ratio:.2f}"),
             ("GET /healthz", health_lat, health_t.best, "1.00"),
             ("GET /api/jobs/{id} (info)", read_lat, read_t.best,
              f"{read_t.best / health_t.best:.2f}" if health_t.best else "-")]
    ctx.say(render(("endpoint", "requests", "req/s", "p50 ms", "p99 ms", "ratio"),
                   [(name, f"{len(lat):,}", f"{rate:,.0f}", f"{ms(lat, 0.5):.2f}",
                     f"{ms(lat, 0.99):.2f}", text) for name, lat, rate, text in lines],
                   right=range(1, 6)))
    ctx.say(f"  (req/s: best of {repeat} runs; latencies over all {repeat} timed runs; "
            f"mean cancel {statistics.fmean(cancel_lat) * 1000:.2f} ms)")
    return [Row("http: cancel vs /healthz", cancel_t.best, health_t.best, "req/s", TARGET,
                note=f"{CONNECTIONS} keep-alive connections to `smartscheduler serve`; "
                     f"cancel p50 {ms(cancel_lat, 0.5):.1f} ms, "
                     f"p99 {ms(cancel_lat, 0.99):.1f} ms")]
