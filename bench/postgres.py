"""`postgres`: cancel commands on PostgreSQL, in 1 and 2 processes, and as the log grows.

Every store is a fresh schema, dropped at the end (`bench.schemas`).

Throughput. Ours: worker processes (`bench.workers`), each building its own
`Dispatch` with `smartscheduler.bootstrap.build_dispatch` (no read-model runner)
and calling `cancel_job` on its own disjoint share of seeded live jobs (one
Pending assignment each). Baseline, in its own schema seeded to the same size
(`--events`): as many worker processes with a plain
`eventsourcing.application.Application` on the stock `eventsourcing.postgres`
persistence, doing `repository.get` + `job.cancel` + `save`. With 1 and with 2
processes a side; the sides alternate, taking turns to go first, and the rate is
all the cancels of a run over the wall-clock time from the start signal to the
last process done. Target: ours >= 0.6 x baseline at each process count.

Each cancel is also split into loading the aggregate (`bench.commands.Probe`), the
write (`recorder.insert_events`: ours, BEGIN, the INSERT under the append lock,
COMMIT and a NOTIFY of its own in one pipelined round trip; the library's, LOCK
TABLE ... IN EXCLUSIVE MODE, NOTIFY and INSERT in one round trip, then the
synced COMMIT) and the rest, and printed.

Then the appends (`bench.appends`) and the latency as the log grows
(`bench.latency`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from application.persistence import redacted
from bench.appends import appends
from bench.commands import Probe, cancel_jobs, cancel_jobs_stock, open_app
from bench.context import Context, Store
from bench.latency import latency
from bench.registry import Row, Timing, in_turns, register
from bench.schemas import Schemas, base_url, schemas_of
from bench.workers import Workers

TARGET = 0.6  # ours / baseline, cancels per second
PROCESS_COUNTS = (1, 2)
OURS, BASELINE = "ours", "baseline"


@dataclass(frozen=True)
class Share:
    """What one process did in one run: its cancels, and its time split up."""

    cancels: int
    seconds: float  # wall clock, in this process
    cpu: float  # this process's CPU time (the server's is not in it)
    load: float  # loading the job (Probe)
    write: float  # in recorder.insert_events


@dataclass(frozen=True)
class Run:
    """One timed run over every process of a side."""

    cancels: int
    seconds: float  # from the start signal to the last process done
    shares: tuple[Share, ...]

    @property
    def rate(self) -> float:
        return self.cancels / self.seconds if self.seconds else 0.0

    def ms_per_cancel(self, part: str) -> float:
        if part == "other":
            total = sum(s.seconds - s.load - s.write for s in self.shares)
        else:
            total = sum(getattr(s, part) for s in self.shares)
        return total / self.cancels * 1000 if self.cancels else 0.0


def cancelling(index: int, barrier: Any, tasks: Any, results: Any, side: str,
               database_url: str) -> None:
    """A worker process: build the app, then cancel each share of jobs it is sent."""
    app = open_app(side, database_url)
    try:
        probe = Probe(app)
        cancel = cancel_jobs if side == OURS else cancel_jobs_stock
        results.put((index, "ready", None))
        while (task := tasks.get()) is not None:
            job_ids, label = task
            probe.clear()
            barrier.wait()
            wall, cpu = time.perf_counter(), time.process_time()
            cancel(app, job_ids, label)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results.put((index, "done", Share(len(job_ids), wall, cpu, sum(probe.load),
                                              sum(probe.write))))
    finally:
        app.close()


def cancel_run(workers: Workers, job_ids: Sequence[Any], label: str) -> Run:
    """Each process cancels its own share of `job_ids`, all starting at once."""
    n = workers.count
    seconds, shares = workers.run([(list(job_ids[i::n]), f"{label}-p{i}") for i in range(n)])
    return Run(len(job_ids), seconds, tuple(shares))


def breakdown(runs: Sequence[Run]) -> str:
    parts = ("load", "write", "other")
    mean = {part: sum(r.ms_per_cancel(part) for r in runs) / len(runs) for part in parts}
    cpu = sum(r.ms_per_cancel("cpu") for r in runs) / len(runs)
    return (", ".join(f"{part} {mean[part]:.2f}" for part in parts)
            + f" ms per cancel per process (client CPU {cpu:.2f} ms)")


def throughput(ctx: Context, schemas: Schemas) -> list[Row]:
    ops, repeat, progress = ctx.args.commands, ctx.args.repeat, ctx.args.progress
    warmup = max(max(PROCESS_COUNTS), min(200, ops // 10))
    urls = {OURS: schemas.new(), BASELINE: schemas.new()}
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        stores = {}
        for side, url in urls.items():
            store = Store(side, open_app(side, url), seed=1, progress=progress)
            stack.callback(store.app.close)
            store.fill(ctx.events)
            stores[side] = store
        settled = schemas.settle()
        ctx.say(f"postgres: throughput, {ops:,} cancels per run, best of {repeat}, after "
                f"{warmup} warm-up cancels; the stores hold {stores[OURS].head():,} (ours) "
                f"and {stores[BASELINE].head():,} (baseline) events; {settled}")
        for count in PROCESS_COUNTS:
            workers: dict[str, Workers] = {}
            with contextlib.ExitStack() as running:
                for side, url in urls.items():
                    workers[side] = Workers(f"postgres-{side}", cancelling, (side, url),
                                            count)
                    running.callback(workers[side].stop)
                for side in workers:
                    workers[side].wait_until_ready()
                for side in workers:
                    cancel_run(workers[side], stores[side].take_live_jobs(warmup), "warmup")
                runs: dict[str, list[Run]] = {OURS: [], BASELINE: []}
                for run in range(1, repeat + 1):
                    jobs = {side: stores[side].take_live_jobs(ops) for side in workers}
                    for side in in_turns(run, (OURS, BASELINE)):
                        runs[side].append(cancel_run(workers[side], jobs[side], f"r{run}"))
                    ctx.say(f"  {count} process{'es' if count > 1 else ''}, run {run}: "
                            f"ours {runs[OURS][-1].rate:,.0f} ops/s, baseline "
                            f"{runs[BASELINE][-1].rate:,.0f} ops/s")
            timings = {side: Timing(tuple(r.rate for r in runs[side])) for side in runs}
            for side in (OURS, BASELINE):
                ctx.say(f"    {side + ':':9} {timings[side].describe('ops/s')}")
                ctx.say(f"    {'':9} {breakdown(runs[side])}")
            rows.append(Row(
                f"postgres: cancel, {count} process{'es' if count > 1 else ''}",
                timings[OURS].best, timings[BASELINE].best, "ops/s", TARGET,
                note=f"{count} spawned process(es) a side on disjoint jobs; baseline: "
                     "stock eventsourcing.postgres, repository.get + cancel + save"))
    return rows


@register("postgres", "PostgreSQL: cancels/s in 1 and 2 processes against the stock "
                      "library; concurrent appends against the library's lock; latency "
                      "at 10k vs --big-events events")
def postgres(ctx: Context) -> list[Row]:
    base = base_url(ctx)
    ctx.say(f"postgres: fresh schemas in {redacted(base)}")
    with schemas_of(base) as schemas:
        return throughput(ctx, schemas) + appends(ctx, schemas) + latency(ctx, schemas)
