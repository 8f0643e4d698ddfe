"""`commands`: cancel commands per second, in process, against the raw library.

Ours: `Dispatch.cancel_job(request, job_id)` on live jobs (one assignment each)
of a store holding at least `--events` events: load (snapshot look-up, then
events), visibility and idempotency checks, the command, save with the
retry-on-conflict loop, and our recorder's wake-up of subscribers.

Baseline, in its own store of the same size: the same events through the
stock library, `repository.get(id)` + `job.cancel(...)` + `app.save(job)`.

Also what the PostgreSQL benchmarks cancel with: `open_app` and `Probe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from application.persistence import eventsourcing_env
from application.settings import Settings
from bench.context import ACTOR, BaselineApplication, Context
from bench.registry import Row, Timing, in_turns, register, timed
from domain.job import Job
from domain.values import ReasonCode, Request
from smartscheduler.bootstrap import build_dispatch

TARGET = 0.7
REASON = "Customer called to cancel"


def requests(count: int, label: str) -> list[Request]:
    return [Request(ACTOR, request_id=f"bench-{label}-{i}") for i in range(count)]


def cancel_jobs(app: Any, job_ids: Sequence[UUID], label: str = "ours") -> int:
    """Ours: `Dispatch.cancel_job` on each job in turn; how many it cancelled."""
    cancel_job = app.cancel_job
    for job_id, request in zip(job_ids, requests(len(job_ids), label), strict=True):
        cancel_job(request, job_id, reason=REASON,
                   reason_code=ReasonCode.CUSTOMER_REQUEST)
    return len(job_ids)


def cancel_jobs_stock(app: Application[UUID], job_ids: Sequence[UUID],
                      label: str = "base") -> int:
    """Baseline: the library alone, `repository.get` + `job.cancel` + `save`."""
    get, save = app.repository.get, app.save
    for job_id, request in zip(job_ids, requests(len(job_ids), label), strict=True):
        job: Job = get(job_id)
        job.cancel(request=request, reason=REASON, reason_code=ReasonCode.CUSTOMER_REQUEST)
        save(job)
    return len(job_ids)


def open_app(side: str, database_url: str) -> Any:
    """Ours ("ours") as the service builds it, or the library's Application on its
    stock persistence for the same database."""
    if side == "ours":
        return build_dispatch(Settings(database_url=database_url))
    env = eventsourcing_env(database_url)  # eventsourcing.postgres, nothing of ours
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    return BaselineApplication(env=env)


class Probe:
    """Times every load of a job (Dispatch's `_load`, which reads a short stream
    without the repository; the library's `repository.get`) and every
    `recorder.insert_events` (the write) of an application."""

    def __init__(self, app: Any) -> None:
        self.load: list[float] = []
        self.write: list[float] = []
        if hasattr(app, "_load"):
            app._load = self._timed(app._load, self.load)
        else:
            app.repository.get = self._timed(app.repository.get, self.load)
        app.recorder.insert_events = self._timed(app.recorder.insert_events, self.write)

    @staticmethod
    def _timed(function: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = clock()
            try:
                return function(*args, **kwargs)
            finally:
                into.append(clock() - began)

        return timed

    def clear(self) -> None:
        self.load.clear()
        self.write.clear()


def cancel_ours(ctx: Context, job_ids: list[UUID]) -> int:
    return cancel_jobs(ctx.ours().app, job_ids)


def cancel_baseline(ctx: Context, job_ids: list[UUID]) -> int:
    return cancel_jobs_stock(ctx.baseline().app, job_ids)


@register("commands", "cancel_job commands/s against the library's own get+cancel+save")
def commands(ctx: Context) -> list[Row]:
    ops, repeat = ctx.args.commands, ctx.args.repeat
    ours, baseline = ctx.ours(), ctx.baseline()
    warmup = max(1, min(200, ops // 10))
    ctx.say(f"commands: {ops:,} cancels per run, best of {repeat}, after {warmup} warm-up "
            f"cancels; stores hold {ours.head():,} (ours) and {baseline.head():,} "
            "(baseline) events")

    cancel_ours(ctx, ours.take_live_jobs(warmup))
    cancel_baseline(ctx, baseline.take_live_jobs(warmup))
    ours_runs: list[tuple[float, float]] = []
    baseline_runs: list[tuple[float, float]] = []
    for run in range(1, repeat + 1):
        # Interleaved, so drift (page cache, neighbours) hits both alike, and in
        # turns first: a burst of synced commits slows the disk for the next one.
        ours_jobs, baseline_jobs = ours.take_live_jobs(ops), baseline.take_live_jobs(ops)
        pair = [(ours_runs, lambda jobs=ours_jobs: cancel_ours(ctx, jobs)),
                (baseline_runs, lambda jobs=baseline_jobs: cancel_baseline(ctx, jobs))]
        for runs, work in in_turns(run, pair):
            runs.append(timed(work))
        ctx.say(f"  run {run}: ours {ours_runs[-1][0]:,.0f} ops/s "
                f"({ours_runs[-1][1]:,.0f} per CPU-second), baseline "
                f"{baseline_runs[-1][0]:,.0f} ops/s ({baseline_runs[-1][1]:,.0f})")

    ours_t, baseline_t = (Timing(tuple(wall for wall, _ in runs))
                          for runs in (ours_runs, baseline_runs))
    ours_cpu, baseline_cpu = (Timing(tuple(cpu for _, cpu in runs))
                              for runs in (ours_runs, baseline_runs))
    ctx.say(f"  ours:     {ours_t.describe('ops/s')}")
    ctx.say(f"  baseline: {baseline_t.describe('ops/s')}")
    ctx.say(f"  ours, CPU only:     {ours_cpu.describe('ops per CPU-second')}")
    ctx.say(f"  baseline, CPU only: {baseline_cpu.describe('ops per CPU-second')}")
    return [
        Row("commands: cancel_job", ours_t.best, baseline_t.best, "ops/s", TARGET,
            note="baseline: repository.get + job.cancel + save, stock Application"),
        Row("  CPU only", ours_cpu.best, baseline_cpu.best, "ops/CPU-s", None,
            note="the same runs by process CPU time: leaves out waiting for the disk"),
    ]
