"""Rebuilding the read models: the whole log replayed into shadow tables, then
switched in for the live ones in one transaction (`DispatchViews.switch_to`,
projections.shadow).

Here is the rebuild's orchestration (`rebuild`, `RebuildResult`); the CLI
(`smartscheduler projections rebuild`) calls it. A rebuild replays every event,
so what each event costs is what it costs. What keeps it near a raw read of the
log, module by module of this package:

- `pages` reads the log page by page, as directly as each backend allows
  (SQLite's JSON functions, PostgreSQL's server-side joins);
- `decode` decodes each event only as far as the read models need (`fields`):
  its stored JSON is parsed and the rows are made from the few fields they
  hold, without building the domain event. An event the fast path does not
  know exactly is decoded by the application's mapper and goes through
  `jobs.statements` and `assignments.statements`, as the runner does; the tests
  hold both paths to the same rows for every kind of event;
- `fold` folds the writes of a batch per row: a job created and updated in the
  same batch is one INSERT of its final row, the other updates of a row are one
  UPDATE. The effect is that of running the runner's statements one by one;
- `write` writes batches of 10,000 events, each in one transaction with its
  tracking position, as the runner does, while the next one is read and decoded
  (here, `_write_all`): each table's inserts and updates are one executemany
  (SQLite, its own connection) or one statement (PostgreSQL).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

from eventsourcing.sqlite import SQLiteApplicationRecorder

from projections.log import EventLog
from projections.rebuild.decode import Decoder
from projections.rebuild.fold import Writes
from projections.rebuild.pages import Stored, postgres_pages, read_pages, sqlite_pages
from projections.rebuild.write import (
    Writer,
    connect,
    shadow_writer,
    sqlite_pool,
    sqlite_writer,
)
from projections.store import DispatchViews

BATCH = 10_000
"""Events per transaction of a rebuild."""


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did: the events it replayed, in how many seconds."""

    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(app: EventLog, views: DispatchViews, *, batch_size: int = BATCH,
            progress: Callable[[int, int], None] | None = None) -> RebuildResult:
    """Replay the whole log into new tables, then switch them in for the live ones.

    The live read models keep serving (and being kept) meanwhile; the switch is
    one transaction. `progress(done, head)` is called after every batch.
    """
    began = time.perf_counter()
    shadow = views.shadow()
    shadow.create_empty()
    pool = sqlite_pool(app.recorder)
    done = 0
    if pool is not None:
        reading, writing = connect(pool), connect(pool)
        table = cast(SQLiteApplicationRecorder, app.recorder).events_table_name
        decoder = Decoder(app, lambda position: reading.execute(
            f"SELECT state FROM {table} WHERE rowid = ?", (position,)).fetchone()[0])
        try:
            pages = sqlite_pages(reading, table, batch_size, extract=decoder.fast)
            done = _write_all(pages, decoder, sqlite_writer(writing, shadow),
                              _head(app), progress)
        finally:
            reading.close()
            writing.close()
    else:
        decoder = Decoder(app)
        pages = (postgres_pages(app, batch_size)
                 if decoder.fast and hasattr(app.recorder, "max_settled_notification_id")
                 else read_pages(app, batch_size))
        done = _write_all(pages, decoder, shadow_writer(shadow),
                          _head(app), progress)
    views.switch_to(shadow, app)
    return RebuildResult(done, time.perf_counter() - began)


def _write_all(pages: Iterator[list[Stored]], decoder: Decoder, write: Writer,
               head: Callable[[], int], progress: Callable[[int, int], None] | None) -> int:
    """Decode each page and hand it to a thread that writes it, while the next
    one is read and decoded (the writes spend most of their time in the
    database's C code, outside the interpreter's lock)."""
    handed: queue.Queue[tuple[Writes, int, int, int] | None] = queue.Queue(maxsize=1)
    failed: list[BaseException] = []
    written = [0]

    def writing() -> None:
        while (work := handed.get()) is not None:
            writes, first, last, count = work
            try:
                if not failed:
                    write(writes, first, last)
                    written[0] += count
                    if progress:
                        progress(written[0], max(head(), last))
            except BaseException as error:  # raised in the caller's thread below
                failed.append(error)

    thread = threading.Thread(target=writing, name="rebuild-writer", daemon=True)
    thread.start()
    try:
        for page in pages:
            if failed:
                break
            handed.put((decoder.fold(page), page[0][0], page[-1][0], len(page)))
    finally:
        handed.put(None)
        thread.join()
    if failed:
        raise failed[0]
    return written[0]


def _head(app: EventLog) -> Callable[[], int]:
    return lambda: app.recorder.max_notification_id() or 0

