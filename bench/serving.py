"""`serving`: the service over HTTP, measured with wrk beside a hello-world Flask app.

Baseline: a one-route Flask app under gunicorn gthread, 2 workers x 4 threads,
started in the same run. The service is started as the README says: `serve` on
SQLite (embedded), and the scaled topology on PostgreSQL + Redis (`serve` with
the read models and the relay in their own processes) when those servers are
there. wrk (`bench.wrk`) sends creates, then cancels of distinct live jobs, at
16 connections and at 1, then again with 100 event streams open. Figures:
throughput as a ratio to the hello-world, p50 and p99 latency, and what
`bench.probes` measures. wrk and the server share this machine's cores, as a
client would.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from bench.context import Context
from bench.probes import (
    events_per_append,
    healthz_beside_half_open,
    open_streams,
    rss_mib,
    slot_freed_after,
)
from bench.registry import Row, register
from bench.schemas import missing, schemas_of
from bench.services import CANCEL, call, command, connect, redis, serve, token
from bench.wrk import SECONDS, Load, wrk
from smartscheduler.launch import HOST, Launched, answers, free_port, launch

STREAMS = 100
HALF_OPEN = 1000
TARGETS = {"create": 0.35, "cancel": 0.35}
HELLO = "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef hello():\n" \
        "    return 'Hello, World!'\n"
JOB = {"type": "HVAC repair", "durationMinutes": 90, "priority": "High",
       "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"}}


def hello_world(workdir: Path) -> Load:
    app_dir = workdir / "hello"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "hello.py").write_text(HELLO)
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with ExitStack() as stack:
        stack.callback(launch(
            [gunicorn, "--chdir", str(app_dir), "-k", "gthread", "-w", "2", "--threads",
             "4", "-b", f"{HOST}:{port}", "--no-control-socket", "hello:app"],
            workdir / "hello.log", port=port, ready=answers("/")).stop)
        wrk(port, "/", 16, workdir=workdir, seconds=2)  # warm up
        return wrk(port, "/", 16, workdir=workdir)


def create_jobs(port: int, bearer: str, count: int) -> list[str]:
    """Live jobs to cancel, created over HTTP (8 connections) before the timed run."""
    ids: list[str] = []

    def worker(n: int) -> None:
        connection = connect(port)
        for _ in range(n):
            status, job = call(connection, "POST", "/api/jobs", JOB, bearer)
            if status >= 300:
                raise RuntimeError(f"{status}: {job!r:.300}")
            ids.append(job["id"])
        connection.close()

    threads = [threading.Thread(target=worker, args=(count // 8 + 1,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def measure_service(ctx: Context, name: str, server: Launched, hello: Load) -> list[Row]:
    port, workdir, bearer = server.port, ctx.workdir, token()
    body = json.dumps(JOB)
    rows = []
    wrk(port, "/api/jobs", 16, workdir=workdir, token=bearer, body=body, seconds=2)  # warm
    create = wrk(port, "/api/jobs", 16, workdir=workdir, token=bearer, body=body)
    rows.append(Row(f"{name}: create, 16 conns", create.rate, hello.rate, "req/s",
                    TARGETS["create"], f"p50 {create.p50:.1f} ms, p99 {create.p99:.1f} ms, "
                    f"{create.failed} failed"))
    results: dict[str, Load] = {}
    for label, connections, streams in (("16 conns", 16, 0), ("1 conn", 1, 0),
                                        (f"16 conns, {STREAMS} streams", 16, STREAMS)):
        ids = create_jobs(port, bearer, int(max(create.rate, 200) * SECONDS * 1.5))
        with open_streams(port, bearer, streams):
            load = wrk(port, "/api/jobs", connections, workdir=workdir, token=bearer,
                       ids=ids, body=json.dumps(CANCEL))
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
    rows.append(Row(f"{name}: server RSS", rss_mib(server.pid), 0, "MiB", None,
                    "all processes"))
    for row in rows:
        ctx.say(f"  {row.name}: {row.ours:,.1f} {row.unit} ({row.note})")
    return rows


def per_append(ctx: Context, name: str, log: Path) -> Row:
    per = events_per_append(log)
    ctx.say(f"  {name}: events per append under load: {per or 'not logged'}")
    return Row(f"{name}: events per append (all runs)", float(per or 0), 0, "events",
               note="group commit: concurrent commands share one append")


def embedded(ctx: Context, hello: Load) -> list[Row]:
    with ExitStack() as stack:
        server = serve(stack, ctx.workdir, "embedded",
                       f"sqlite:///{ctx.workdir / 'serving.db'}")
        rows = measure_service(ctx, "embedded", server, hello)
    rows.append(per_append(ctx, "embedded", server.log_path))
    with ExitStack() as stack:
        server = serve(stack, ctx.workdir, "slots", f"sqlite:///{ctx.workdir / 'slots.db'}",
                       max_streams="1")
        freed = slot_freed_after(server.port, token())
    ctx.say(f"  embedded: a left stream's slot is free after {freed:.2f} s")
    rows.append(Row("embedded: a left stream's slot free after", freed, 0, "s", at_most=2))
    return rows


def scaled(ctx: Context, hello: Load) -> list[Row]:
    workdir = ctx.workdir / "scaled"
    workdir.mkdir(exist_ok=True)
    with schemas_of() as schemas, ExitStack() as stack:
        url = schemas.new()
        redis_url = redis(stack, workdir)  # a private one: the relay writes a stream
        server = serve(stack, workdir, "server", url, redis_url=redis_url,
                       embedded_projections="false", embedded_relay="false")
        command(stack, workdir, ["projections", "run"], url,
                "Read models: following the log", redis_url=redis_url)
        command(stack, workdir, ["relay"], url, "Relay: publishing from position",
                redis_url=redis_url)
        rows = measure_service(ctx, "scaled", server, hello)
        stack.close()  # the workers log their appends as they stop
        return [*rows, per_append(ctx, "scaled", server.log_path)]


@register("serving", "create and cancel over HTTP (wrk) against a hello-world Flask app")
def serving(ctx: Context) -> list[Row]:
    if shutil.which("wrk") is None:
        ctx.say("  serving: skipped (wrk is not installed: apt-get install wrk)")
        return []
    hello = hello_world(ctx.workdir)
    ctx.say(f"serving: hello-world Flask (gunicorn gthread 2x4): {hello.rate:,.0f} req/s")
    rows = embedded(ctx, hello)
    reason = missing(redis=True)
    if reason:
        ctx.say(f"  serving: scaled skipped ({reason})")
        return rows
    return rows + scaled(ctx, hello)
