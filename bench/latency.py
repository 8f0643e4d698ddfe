"""Part of `postgres`: the latency of one cancel as the log grows.

One `Dispatch` on a fresh schema seeded to 10,000 events: 500 sequential
`cancel_job` latencies on live jobs from all over the log (p50, p99), then the
same schema seeded on to `--big-events` (1,000,000) and measured again on jobs
still live. Target: p50 and p99 at the big size at most 1.2 x those at 10,000.
Each measurement follows a CHECKPOINT (when the user may run one): seeding 1M
events writes about 1 GB of WAL, and the checkpoint that starts would otherwise
run through the measurement and stall about one commit in a hundred by ~20 ms.
At the big size the grown schema is measured in turns (blocks of 100) with a
second schema of 10,000 events, so the `alongside` rows (info) compare the two
sizes free of drift between the first and the second measurement. Each cancel
is split into its load (see `bench.commands.Probe`) and its write (`insert_events`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from bench.commands import REASON, Probe, cancel_jobs, open_app, requests
from bench.context import Context, Store
from bench.registry import Row, in_turns, percentile
from bench.schemas import Schemas
from domain.values import ReasonCode

GROWTH_LIMIT = 1.2  # latency at --big-events / latency at SMALL_EVENTS
SMALL_EVENTS = 10_000
LATENCY_SAMPLES = 500
LATENCY_WARMUP = 50
LATENCY_BLOCK = 100  # cancels per turn when two stores are measured in turns


@dataclass
class Sample:
    """Sequential cancel latencies of one store, and their load and write parts
    (seconds)."""

    events: int = 0
    total: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    write: list[float] = field(default_factory=list)

    def p(self, part: str, fraction: float) -> float:
        """A percentile of `part` (total, load or write), in microseconds."""
        return percentile(getattr(self, part), fraction) * 1e6

    def describe(self, name: str) -> str:
        return (f"  {name:<22} {self.events:>11,} events: p50 {self.p('total', 0.5):6,.0f}, "
                f"p99 {self.p('total', 0.99):6,.0f} µs; load p50 {self.p('load', 0.5):5,.0f}, "
                f"p99 {self.p('load', 0.99):6,.0f}; write p50 {self.p('write', 0.5):5,.0f}, "
                f"p99 {self.p('write', 0.99):6,.0f}")


class Timed:
    """A Dispatch store whose cancels are timed one by one."""

    def __init__(self, label: str, database_url: str, seed: int, progress: bool) -> None:
        app = open_app("ours", database_url)
        self.label = label
        self.store = Store(label, app, seed=seed, progress=progress)
        self.probe = Probe(app)

    def warm_up(self) -> None:
        cancel_jobs(self.store.app, self.store.take_live_jobs(LATENCY_WARMUP),
                    f"latency-warmup-{self.label}-{self.store.head()}")

    def measure(self, into: Sample, count: int) -> None:
        """`count` sequential cancels of live jobs from all over the log, into `into`."""
        job_ids = self.store.take_live_jobs(count)
        made = requests(count, f"latency-{self.label}-{self.store.head()}")
        app: Any = self.store.app
        cancel_job, clock = app.cancel_job, time.perf_counter
        self.probe.clear()
        for job_id, request in zip(job_ids, made, strict=True):
            began = clock()
            cancel_job(request, job_id, reason=REASON,
                       reason_code=ReasonCode.CUSTOMER_REQUEST)
            into.total.append(clock() - began)
        into.load.extend(self.probe.load)
        into.write.extend(self.probe.write)
        into.events = self.store.head()

    def close(self) -> None:
        self.store.app.close()


def size(events: int) -> str:
    if events >= 1_000_000 and events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    if events >= 1_000 and events % 1_000 == 0:
        return f"{events // 1_000}k"
    return f"{events:,}"


def latency(ctx: Context, schemas: Schemas) -> list[Row]:
    big = int(ctx.args.big_events)
    small = min(SMALL_EVENTS, big)
    progress = ctx.args.progress
    with contextlib.ExitStack() as stack:
        grown = Timed("latency", schemas.new(), 2, progress)
        stack.callback(grown.close)
        grown.store.fill(small)
        settled = schemas.settle()
        grown.warm_up()
        at_small = Sample()
        grown.measure(at_small, LATENCY_SAMPLES)

        began = time.perf_counter()
        grown.store.fill(big)
        seeded = time.perf_counter() - began
        control = Timed("control", schemas.new(), 3, progress)
        stack.callback(control.close)
        control.store.fill(small)
        settled_big = schemas.settle()
        ctx.say(f"postgres: latency, {LATENCY_SAMPLES} sequential cancel_job per store "
                f"after {LATENCY_WARMUP} warm-up ones, each after a {settled}; seeded "
                f"{at_small.events:,} -> {grown.store.head():,} events in {seeded:,.0f}s "
                f"({(grown.store.head() - at_small.events) / seeded:,.0f} events/s), "
                f"then {settled_big}")
        grown.warm_up()
        control.warm_up()
        at_big, alongside = Sample(), Sample()
        blocks = max(1, LATENCY_SAMPLES // LATENCY_BLOCK)
        pairs = ((grown, at_big), (control, alongside))
        for block in range(1, blocks + 1):
            for timed, into in in_turns(block, pairs):
                timed.measure(into, LATENCY_SAMPLES // blocks)

    ctx.say(at_small.describe(f"{size(small)}, first"))
    ctx.say(at_big.describe(f"{size(big)}, then"))
    ctx.say(alongside.describe(f"{size(small)}, alongside it"))
    ctx.say("  (µs; load = Dispatch._load, write = recorder.insert_events)")
    label = f"{size(big)} vs {size(small)} events"
    note = (f"{LATENCY_SAMPLES} sequential Dispatch.cancel_job on live jobs of one schema; "
            f"ours = at {at_big.events:,} events, baseline = the same schema earlier, at "
            f"{at_small.events:,}; the 'alongside' rows: baseline = another schema of "
            f"{alongside.events:,} events, measured in turns with it")
    rows = ((f"postgres: cancel p50, {label}", 0.5, at_small, GROWTH_LIMIT, note),
            (f"postgres: cancel p99, {label}", 0.99, at_small, GROWTH_LIMIT, ""),
            (f"  p50, vs {size(small)} alongside", 0.5, alongside, None, ""),
            (f"  p99, vs {size(small)} alongside", 0.99, alongside, None, ""))
    return [Row(name, at_big.p("total", p), base.p("total", p), "µs", note=text, most=most)
            for name, p, base, most, text in rows]
