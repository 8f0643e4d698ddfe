"""`postgres-appends` (also part of `postgres`): concurrent appends on PostgreSQL.

`recorder.insert_events` of one new event per call, from P spawned processes of
T threads each, for each (P, T) in APPEND_SHAPES: ours (application.postgres:
the append lock held only for the INSERT, released before the COMMIT) against
the library's recorder (`LOCK TABLE ... IN EXCLUSIVE MODE` held through the
COMMIT and its WAL flush), each on its own fresh schema, in turns, `--commands`
appends per run. Each run also counts the server's WAL syncs (pg_stat_wal, the
whole server's: other sessions' count too): appends per sync above 1 means
commits shared a flush.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from typing import Any
from uuid import uuid4

from application.persistence import eventsourcing_env, redacted
from bench.context import Context
from bench.registry import Row, Timing, in_turns, register
from bench.schemas import Schemas, base_url, schemas_of
from bench.workers import Workers, shares

APPEND_SHAPES = ((2, 1), (4, 1), (2, 4), (4, 4))
"""(processes, threads per process) of the appends figure."""
OURS, LIBRARY = "ours", "library"
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


def append_events(recorder: Any, count: int, errors: list[str] | None = None) -> None:
    from eventsourcing.persistence import StoredEvent

    insert = recorder.insert_events
    try:
        for _ in range(count):
            insert([StoredEvent(uuid4(), 1, "bench.Appended", APPEND_STATE)])
    except BaseException:
        if errors is None:
            raise
        errors.append(traceback.format_exc())


def threads_of(recorder: Any, counts: list[int], errors: list[str]) -> list[threading.Thread]:
    return [threading.Thread(target=append_events, args=(recorder, count, errors))
            for count in counts]


def appending(index: int, barrier: Any, tasks: Any, results: Any, side: str,
              database_url: str, threads: int) -> None:
    """A worker process: for each run, open a recorder (its own pool), append
    from `threads` threads at once after the start signal, then close the pool,
    so that its sessions' statistics reach the server's views."""
    while (count := tasks.get()) is not None:
        recorder = open_recorder(side, database_url)
        errors: list[str] = []
        try:
            for batch, start in (([5] * threads, None), (shares(count, threads), barrier)):
                workers = threads_of(recorder, batch, errors)  # first, every connection
                if start is not None:
                    start.wait()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
        finally:
            recorder.datastore.close()
        results.put((index, "error", errors[0]) if errors else (index, "done", count))


class WalSyncs:
    """The server's count of WAL syncs (pg_stat_wal.wal_sync), when it is readable."""

    def __init__(self, schemas: Schemas) -> None:
        self.connection = schemas.connect()

    def read(self, *, settle: bool = False) -> int:
        if settle:  # the workers' sessions have just closed: let them report
            time.sleep(0.5)
        self.connection.execute("SELECT pg_stat_clear_snapshot()")
        row = self.connection.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.connection.close()


def append_run(workers: Workers, appends: int, stats: WalSyncs) -> tuple[float, int]:
    """`appends` in all, shared by the processes; (appends/s, WAL syncs)."""
    syncs = stats.read()
    seconds, done = workers.run(shares(appends, workers.count))
    return sum(done) / seconds, stats.read(settle=True) - syncs


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
                workers: dict[str, Workers] = {}
                for side, url in urls.items():
                    workers[side] = Workers(f"appends-{side}", appending,
                                            (side, url, threads), processes)
                    running.callback(workers[side].stop)
                for run in range(1, repeat + 1):
                    for side in in_turns(run, (OURS, LIBRARY)):
                        rate, syncs = append_run(workers[side], count, stats)
                        rates[side].append(rate)
                        per_sync[side].append(count / syncs if syncs else 0.0)
                    ctx.say(f"  {processes} processes x {threads} thread(s), run {run}: "
                            + ", ".join(f"{side} {rates[side][-1]:,.0f}/s "
                                        f"({per_sync[side][-1]:.1f})"
                                        for side in (OURS, LIBRARY)))
            for side in (OURS, LIBRARY):
                ctx.say(f"    {side + ':':8} {Timing(tuple(rates[side])).describe('appends/s')}")
            rows.append(Row(
                f"postgres: appends, {processes} proc x {threads} thr", max(rates[OURS]),
                max(rates[LIBRARY]), "appends/s", None,
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
