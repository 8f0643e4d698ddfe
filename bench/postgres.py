"""`postgres`: cancel commands on PostgreSQL, in 1 and 2 processes, and as the log grows.

Every store here is a fresh schema (`?schema=bench_<hex>`) of the PostgreSQL
database named by `--database-url` (when it is a postgresql:// URL) or by
`SMARTSCHEDULER_BENCH_POSTGRES_URL` (default
postgresql://postgres@127.0.0.1:5432/test), dropped at the end, also on failure.

Throughput. Ours: worker processes (started with 'spawn'), each building its own
`Dispatch` with `smartscheduler.bootstrap.build_dispatch` (no read-model runner)
and calling `cancel_job` on its own disjoint share of seeded live jobs (one
Pending assignment each). Baseline, in its own schema seeded to the same size
(`--events`): as many worker processes with a plain
`eventsourcing.application.Application` on the stock `eventsourcing.postgres`
persistence, doing `repository.get` + `job.cancel` + `save`. With 1 and with 2
processes a side; the sides alternate, taking turns to go first, and the rate is
all the cancels of a run over the wall-clock time from the start signal to the
last process done. Target: ours >= 0.6 x baseline at each process count.

Latency. One `Dispatch` on a fresh schema seeded to 10,000 events: 500
sequential `cancel_job` latencies on live jobs from all over the log (p50, p99),
then the same schema seeded on to `--big-events` (1,000,000) and measured again
on jobs still live. Target: p50 and p99 at the big size at most 1.2 x those at
10,000. Each measurement follows a CHECKPOINT (when the user may run one): seeding
1M events writes about 1 GB of WAL, and the checkpoint that starts would otherwise
run through the measurement and stall about one commit in a hundred by ~20 ms.
At the big size the grown schema is measured in turns (blocks of 100) with a
second schema of 10,000 events, so the `alongside` rows (info) compare the two
sizes free of drift between the first and the second measurement.

Each cancel is also split into loading the aggregate (`repository.get`), the
write (`recorder.insert_events`: ours, BEGIN, the INSERT under the append lock,
COMMIT and a NOTIFY of its own in one pipelined round trip; the library's, LOCK
TABLE ... IN EXCLUSIVE MODE, NOTIFY and INSERT in one round trip, then the
synced COMMIT) and the rest, and printed.

Appends (also alone: `--only postgres-appends`). `recorder.insert_events` of
one new event per call, from P spawned processes of T threads each, for each
(P, T) in APPEND_SHAPES: ours (application.postgres: the append lock held only
for the INSERT, released before the COMMIT) against the library's recorder
(`LOCK TABLE ... IN EXCLUSIVE MODE` held through the COMMIT and its WAL flush),
each on its own fresh schema, in turns, `--commands` appends per run. Each run
also counts the server's WAL syncs (pg_stat_wal, the whole server's: other
sessions' count too): appends per sync above 1 means commits shared a flush.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID, uuid4

from application.persistence import eventsourcing_env, prepare_database, redacted
from application.settings import Settings
from bench.commands import (
    REASON,
    _requests,
    cancel_jobs,
    cancel_jobs_stock,
    in_turns,
)
from bench.context import BaselineApplication, Context, Store
from bench.http import percentile
from bench.realtime import POSTGRES_URL
from bench.registry import Row, Timing, register
from domain.job import ReasonCode
from smartscheduler.bootstrap import build_dispatch

TARGET = 0.6  # ours / baseline, cancels per second
GROWTH_LIMIT = 1.2  # latency at --big-events / latency at SMALL_EVENTS
PROCESS_COUNTS = (1, 2)
SMALL_EVENTS = 10_000
LATENCY_SAMPLES = 500
LATENCY_WARMUP = 50
LATENCY_BLOCK = 100  # cancels per turn when two stores are measured in turns
STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 1800.0
SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")
OURS, BASELINE = "ours", "baseline"


@dataclass(frozen=True)
class GrowthRow(Row):
    """A latency at the big size (ours) beside the same at the small (baseline):
    here lower is better, and the ratio must stay at or below `target`."""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "ok" if self.ratio <= self.target else "MISS"

    @property
    def target_text(self) -> str:
        return f"<= {self.target:.2f}" if self.target is not None else "-"


# Stores --------------------------------------------------------------------------


def base_url(ctx: Context) -> str:
    url = ctx.args.database_url
    return url if url and urlsplit(url).scheme in SCHEMES else POSTGRES_URL


class Schemas:
    """Fresh schemas of one database, every one of them dropped on `drop()`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.names: list[str] = []

    def new(self) -> str:
        """The URL of a new, empty schema `bench_<hex>` (created now)."""
        name = f"bench_{uuid4().hex[:12]}"
        url = urlsplit(self.base)
        query = {**dict(parse_qsl(url.query)), "schema": name}
        database_url = urlunsplit(url._replace(query=urlencode(query)))
        self.names.append(name)
        prepare_database(database_url)
        return database_url

    def _connect(self) -> Any:
        import psycopg

        env = eventsourcing_env(self.base)
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]), user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None, autocommit=True)

    def settle(self) -> str:
        """Run CHECKPOINT, so that a checkpoint started by bulk seeding does not run
        (and stall commits) during a measurement; say what was done."""
        import psycopg

        began = time.perf_counter()
        try:
            with self._connect() as connection:
                connection.execute("CHECKPOINT")
        except psycopg.Error as error:  # e.g. not a superuser nor pg_checkpoint
            return f"no CHECKPOINT ({type(error).__name__})"
        return f"CHECKPOINT {time.perf_counter() - began:.1f}s"

    def drop(self) -> None:
        if not self.names:
            return
        from psycopg import sql

        with self._connect() as connection:
            while self.names:
                connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.names[-1])))
                self.names.pop()


@contextlib.contextmanager
def schemas_of(base: str) -> Iterator[Schemas]:
    schemas = Schemas(base)
    try:
        yield schemas
    finally:
        schemas.drop()


def open_app(side: str, database_url: str) -> Any:
    """Ours as the service builds it, or the library's Application on stock persistence."""
    if side == OURS:
        return build_dispatch(Settings(database_url=database_url))
    env = eventsourcing_env(database_url)  # eventsourcing.postgres, nothing of ours
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    return BaselineApplication(env=env)


class Probe:
    """Times every `repository.get` (the load) and `recorder.insert_events` (the
    write: LOCK TABLE, NOTIFY and INSERT pipelined, then the COMMIT)."""

    def __init__(self, app: Any) -> None:
        self.load: list[float] = []
        self.write: list[float] = []
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


# Worker processes ----------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """What one process did in one run: its cancels, and its time split up."""

    cancels: int
    seconds: float  # wall clock, in this process
    cpu: float  # this process's CPU time (the server's is not in it)
    load: float  # in repository.get
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


def serve(index: int, side: str, database_url: str, barrier: Any, tasks: Any,
          results: Any) -> None:
    """A worker process: build the app, then cancel each share of jobs it is sent."""
    try:
        app = open_app(side, database_url)
    except BaseException:
        results.put((index, "error", traceback.format_exc()))
        return
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
    except BaseException:
        results.put((index, "error", traceback.format_exc()))
    finally:
        app.close()


class Workers:
    """`count` spawned processes of one side, run together on a shared start signal."""

    def __init__(self, side: str, database_url: str, count: int) -> None:
        mp = multiprocessing.get_context("spawn")
        self.side, self.count = side, count
        self.barrier = mp.Barrier(count + 1)
        self.results = mp.Queue()
        self.tasks = [mp.Queue() for _ in range(count)]
        self.processes = [
            mp.Process(target=serve, name=f"bench-postgres-{side}-{i}", daemon=True,
                       args=(i, side, database_url, self.barrier, self.tasks[i],
                             self.results))
            for i in range(count)]
        for process in self.processes:
            process.start()

    def _receive(self, kind: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                index, got, payload = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in self.processes if p.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.side} workers: no answer ({kind}); "
                                       f"exited: {dead or 'none'}") from None
                continue
            if got == "error":
                raise RuntimeError(f"{self.side} worker {index} failed:\n{payload}")
            if got != kind:
                raise RuntimeError(f"{self.side} worker {index}: {got!r}, not {kind!r}")
            return payload

    def wait_until_ready(self) -> None:
        for _ in range(self.count):
            self._receive("ready", STARTUP_TIMEOUT)

    def run(self, job_ids: Sequence[UUID], label: str) -> Run:
        """Each process cancels its own share of `job_ids`, all starting at once."""
        for i, tasks in enumerate(self.tasks):
            tasks.put((list(job_ids[i::self.count]), f"{label}-p{i}"))
        self.barrier.wait(timeout=STARTUP_TIMEOUT)
        began = time.perf_counter()
        shares = tuple(self._receive("done", RUN_TIMEOUT) for _ in range(self.count))
        return Run(len(job_ids), time.perf_counter() - began, shares)

    def stop(self) -> None:
        for tasks in self.tasks:
            with contextlib.suppress(Exception):
                tasks.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()  # one of the processes this object started
                process.join(timeout=10)


# Throughput ----------------------------------------------------------------------


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
                    workers[side] = Workers(side, url, count)
                    running.callback(workers[side].stop)
                for side in workers:
                    workers[side].wait_until_ready()
                for side in workers:
                    workers[side].run(stores[side].take_live_jobs(warmup), "warmup")
                runs: dict[str, list[Run]] = {OURS: [], BASELINE: []}
                for run in range(1, repeat + 1):
                    jobs = {side: stores[side].take_live_jobs(ops) for side in workers}
                    for side in in_turns(run, (OURS, BASELINE)):
                        runs[side].append(workers[side].run(jobs[side], f"r{run}"))
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


# Latency -------------------------------------------------------------------------


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
        return percentile(getattr(self, part), fraction) * 1000  # percentile() gives ms

    def describe(self, name: str) -> str:
        return (f"  {name:<22} {self.events:>11,} events: p50 {self.p('total', 0.5):6,.0f}, "
                f"p99 {self.p('total', 0.99):6,.0f} µs; load p50 {self.p('load', 0.5):5,.0f}, "
                f"p99 {self.p('load', 0.99):6,.0f}; write p50 {self.p('write', 0.5):5,.0f}, "
                f"p99 {self.p('write', 0.99):6,.0f}")


class Timed:
    """A Dispatch store whose cancels are timed one by one."""

    def __init__(self, label: str, database_url: str, seed: int, progress: bool) -> None:
        app = open_app(OURS, database_url)
        self.label = label
        self.store = Store(label, app, seed=seed, progress=progress)
        self.probe = Probe(app)

    def warm_up(self) -> None:
        cancel_jobs(self.store.app, self.store.take_live_jobs(LATENCY_WARMUP),
                    f"latency-warmup-{self.label}-{self.store.head()}")

    def measure(self, into: Sample, count: int) -> None:
        """`count` sequential cancels of live jobs from all over the log, into `into`."""
        job_ids = self.store.take_live_jobs(count)
        requests = _requests(count, f"latency-{self.label}-{self.store.head()}")
        cancel_job, clock = self.store.app.cancel_job, time.perf_counter
        self.probe.clear()
        for job_id, request in zip(job_ids, requests, strict=True):
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
    ctx.say("  (µs; load = repository.get, write = recorder.insert_events)")
    label = f"{size(big)} vs {size(small)} events"
    note = (f"{LATENCY_SAMPLES} sequential Dispatch.cancel_job on live jobs of one schema; "
            f"ours = at {at_big.events:,} events, baseline = the same schema earlier, at "
            f"{at_small.events:,}; the 'alongside' rows: baseline = another schema of "
            f"{alongside.events:,} events, measured in turns with it")
    return [
        GrowthRow(f"postgres: cancel p50, {label}", at_big.p("total", 0.5),
                  at_small.p("total", 0.5), "µs", GROWTH_LIMIT, note=note),
        GrowthRow(f"postgres: cancel p99, {label}", at_big.p("total", 0.99),
                  at_small.p("total", 0.99), "µs", GROWTH_LIMIT),
        GrowthRow(f"  p50, vs {size(small)} alongside", at_big.p("total", 0.5),
                  alongside.p("total", 0.5), "µs", None),
        GrowthRow(f"  p99, vs {size(small)} alongside", at_big.p("total", 0.99),
                  alongside.p("total", 0.99), "µs", None),
    ]


# Appends ------------------------------------------------------------------------

APPEND_SHAPES = ((2, 1), (4, 1), (2, 4), (4, 4))
"""(processes, threads per process) of the appends figure."""
LIBRARY = "library"
APPEND_STATE = b'{"bench": "' + b"x" * 180 + b'"}'


def open_recorder(side: str, database_url: str) -> Any:
    """Ours (application.postgres, as the service configures it) or the library's
    stock PostgreSQL application recorder, on `database_url`."""
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    from application.persistence import storage_lock

    env = eventsourcing_env(database_url)
    if side == LIBRARY:
        env.pop("APPLICATION_RECORDER_TOPIC")
    with storage_lock(database_url):
        factory = InfrastructureFactory.construct(Environment("BenchAppends", env))
        return factory.application_recorder()


def append_events(recorder: Any, count: int) -> None:
    from eventsourcing.persistence import StoredEvent

    insert = recorder.insert_events
    for _ in range(count):
        insert([StoredEvent(uuid4(), 1, "bench.Appended", APPEND_STATE)])


def appending(recorder: Any, count: int, errors: list[str]) -> None:
    try:
        append_events(recorder, count)
    except BaseException:
        errors.append(traceback.format_exc())


def append_serve(index: int, side: str, database_url: str, threads: int, barrier: Any,
                 tasks: Any, results: Any) -> None:
    """A worker process: for each run, open a recorder (its own pool), append
    from `threads` threads at once after the start signal, then close the pool,
    so that its sessions' statistics reach the server's views."""
    try:
        while (count := tasks.get()) is not None:
            recorder = open_recorder(side, database_url)
            try:
                workers = [threading.Thread(target=append_events, args=(recorder, 5))
                           for _ in range(threads)]  # warm up: every connection made
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                errors: list[str] = []
                shares = [count // threads + (i < count % threads) for i in range(threads)]
                workers = [threading.Thread(target=appending, args=(recorder, share, errors))
                           for share in shares]
                barrier.wait()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
            finally:
                recorder.datastore.close()
            results.put((index, "error", errors[0]) if errors else (index, "done", count))
    except BaseException:
        results.put((index, "error", traceback.format_exc()))


class AppendWorkers(Workers):
    """`count` spawned processes of `threads` appending threads each."""

    def __init__(self, side: str, database_url: str, count: int, threads: int) -> None:
        mp = multiprocessing.get_context("spawn")
        self.side, self.count = side, count
        self.barrier = mp.Barrier(count + 1)
        self.results = mp.Queue()
        self.tasks = [mp.Queue() for _ in range(count)]
        self.processes = [
            mp.Process(target=append_serve, name=f"bench-appends-{side}-{i}", daemon=True,
                       args=(i, side, database_url, threads, self.barrier, self.tasks[i],
                             self.results))
            for i in range(count)]
        for process in self.processes:
            process.start()

    def append(self, appends: int, stats: WalSyncs) -> tuple[float, int]:
        """`appends` in all, shared by the processes; (appends/s, WAL syncs)."""
        syncs = stats.read()
        for i, tasks in enumerate(self.tasks):
            tasks.put(appends // self.count + (i < appends % self.count))
        self.barrier.wait(timeout=STARTUP_TIMEOUT)
        began = time.perf_counter()
        done = sum(self._receive("done", RUN_TIMEOUT) for _ in range(self.count))
        seconds = time.perf_counter() - began
        return done / seconds, stats.read(settle=True) - syncs


class WalSyncs:
    """The server's count of WAL syncs (pg_stat_wal.wal_sync), when it is readable."""

    def __init__(self, schemas: Schemas) -> None:
        self.connection = schemas._connect()

    def read(self, *, settle: bool = False) -> int:
        if settle:  # the workers' sessions have just closed: let them report
            time.sleep(0.5)
        self.connection.execute("SELECT pg_stat_clear_snapshot()")
        row = self.connection.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.connection.close()


def appends(ctx: Context, schemas: Schemas) -> list[Row]:
    count, repeat = ctx.args.commands, ctx.args.repeat
    urls = {OURS: schemas.new(), LIBRARY: schemas.new()}
    for side, url in urls.items():  # the tables, made once
        open_recorder(side, url).datastore.close()
    ctx.say(f"postgres: appends, one event per insert_events, {count:,} per run, best of "
            f"{repeat}; ours (append lock until the INSERT) vs the library's recorder "
            "(LOCK TABLE until after the COMMIT); appends per WAL sync in brackets "
            "(the server's syncs, other sessions' included)")
    rows: list[Row] = []
    stats = WalSyncs(schemas)
    try:
        for processes, threads in APPEND_SHAPES:
            rates: dict[str, list[float]] = {OURS: [], LIBRARY: []}
            per_sync: dict[str, list[float]] = {OURS: [], LIBRARY: []}
            with contextlib.ExitStack() as running:
                workers: dict[str, AppendWorkers] = {}
                for side, url in urls.items():
                    workers[side] = AppendWorkers(side, url, processes, threads)
                    running.callback(workers[side].stop)
                for run in range(1, repeat + 1):
                    for side in in_turns(run, (OURS, LIBRARY)):
                        rate, syncs = workers[side].append(count, stats)
                        rates[side].append(rate)
                        per_sync[side].append(count / syncs if syncs else 0.0)
                    ctx.say(f"  {processes} processes x {threads} thread(s), run {run}: "
                            + ", ".join(f"{side} {rates[side][-1]:,.0f}/s "
                                        f"({per_sync[side][-1]:.1f})"
                                        for side in (OURS, LIBRARY)))
            for side in (OURS, LIBRARY):
                ctx.say(f"    {side + ':':8} {Timing(tuple(rates[side])).describe('appends/s')}")
            best = {side: max(rates[side]) for side in rates}
            rows.append(Row(
                f"postgres: appends, {processes} proc x {threads} thr", best[OURS],
                best[LIBRARY], "appends/s", None,
                note=("insert_events of 1 event per call from spawned processes; baseline: "
                      "the library's recorder (LOCK TABLE through the COMMIT)")
                if not rows else ""))
    finally:
        stats.close()
    return rows


@register("postgres-appends", "PostgreSQL: concurrent appends/s from 2-4 processes "
                              "(1 and 4 threads), our append lock vs the library's")
def postgres_appends(ctx: Context) -> list[Row]:
    base = base_url(ctx)
    ctx.say(f"postgres: fresh schemas in {redacted(base)}")
    with schemas_of(base) as schemas:
        return appends(ctx, schemas)


@register("postgres", "PostgreSQL: cancels/s in 1 and 2 processes against the stock "
                      "library; concurrent appends against the library's lock; latency "
                      "at 10k vs --big-events events")
def postgres(ctx: Context) -> list[Row]:
    base = base_url(ctx)
    ctx.say(f"postgres: fresh schemas in {redacted(base)}")
    with schemas_of(base) as schemas:
        return throughput(ctx, schemas) + appends(ctx, schemas) + latency(ctx, schemas)
