"""The read models' store: their tables, kept beside their tracking record.

Every batch of events is applied in one transaction together with the
tracking position of its last event, so an event is applied exactly once: a
redelivered one fails the tracking insert and the whole transaction rolls back.

The store also wakes the requests waiting for a position (`wait_for`), keeps
the followers' failures (projections.following.status), and runs the read
models' queries (projections.jobs, projections.assignments) in a transaction of
its own. The shadow tables a rebuild writes, and the switch that makes them
live, are projections.shadow; what SQLite and PostgreSQL do differently is
projections.backends.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from projections import assignments, jobs, shadow
from projections.assignments import AssignmentReadModel, AssignmentRecord
from projections.batches import Params, grouped, statements
from projections.following import status
from projections.following.status import Failure
from projections.jobs import JobReadModel, JobRecord
from projections.log import EventLog
from projections.query import Page

TRACKING_NAME = "Dispatch"

_TABLE_NAMES = re.compile(rf"\b({jobs.TABLE}|{assignments.TABLE})\b")


class DispatchViews:
    """The job and assignment read models (mixed into a tracking recorder)."""

    placeholder = "?"
    tracking_name = TRACKING_NAME
    suffix = ""
    """Appended to the tables' names: projections.shadow.SHADOW_SUFFIX in a rebuild."""

    on_advanced: Callable[[], None] | None = None
    """Called after this object committed a batch (or a rebuild's switch), to tell
    the other processes' waits (the composition root sets it); the waits of
    this process are woken directly."""

    def _init_views(self) -> None:
        self._advanced = threading.Condition()
        self._advances = 0  # counted under _advanced: a wait misses no wake-up
        self._sql_cache: dict[str, str] = {}
        self._assignments = AssignmentReadModel(self._sql)
        self._jobs = JobReadModel(self._sql, self._assignments)

    # Writing ---------------------------------------------------------------

    def process(self, events: Sequence[tuple[Any, Tracking]]) -> None:
        """Apply a batch of (event, tracking) pairs and record the last position.

        Raises IntegrityError, changing nothing, when the batch was already applied.
        """
        if not events:
            return
        with self._transaction(commit=True) as c:
            self._apply(c, events)
            self._advance(c, events[0][1].notification_id, events[-1][1].notification_id)
        self._advanced_here()

    def _apply(self, c: Any, events: Sequence[tuple[Any, Tracking]]) -> None:
        for sql, rows in grouped(statements(events)):
            c.executemany(self._sql(sql), self._storable(rows))

    def _storable(self, rows: list[Params]) -> list[Params]:
        """The rows as this backend can store them (see PostgresDispatchViews)."""
        return rows

    def _advance(self, c: Any, first: int, last: int) -> None:
        """Record `last` as the position, if the position is still below `first`.

        A batch applies only on top of the position it was read after, so a batch
        that overlaps what is already applied (a redelivery, or a rebuild that
        switched in meanwhile) changes nothing and raises IntegrityError.
        """
        c.execute(self._advance_sql(), {"name": self.tracking_name, "first": first,
                                        "last": last})
        if c.fetchone() is None:
            raise IntegrityError(f"{self.tracking_name} is already at or past {first}")

    # Rebuilding beside the live tables (projections.shadow) ------------------

    def shadow(self) -> DispatchViews:
        """The same read models under other table names, to rebuild into."""
        return shadow.shadow_of(self)

    def create_empty(self) -> None:
        """(Re)create this model's tables, empty and without secondary indexes."""
        shadow.create_empty(self)

    def switch_to(self, built: DispatchViews, app: EventLog) -> int:
        """Make the rebuilt tables the live ones, in one transaction; the position."""
        return shadow.switch(self, built, app)

    # Positions, and waiting for one -------------------------------------------

    def position(self) -> int:
        return self.position_of(self.tracking_name)

    def position_of(self, tracking_name: str) -> int:
        """The position recorded under `tracking_name` (0 when none)."""
        return self.max_tracking_id(tracking_name) or 0  # type: ignore[attr-defined]

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the read models have applied `position`; False on timeout.

        Woken when they advance (`notify_advanced`), else it looks every 50 ms.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._advanced:
                seen = self._advances
            if self.position() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                if self._advances == seen:  # else they moved since: look again now
                    self._advanced.wait(min(remaining, 0.05))

    def notify_advanced(self) -> None:
        """Wake this process's waits: the read models moved (here, or in another
        process that shares them)."""
        with self._advanced:
            self._advances += 1
            self._advanced.notify_all()

    def _advanced_here(self) -> None:
        self.notify_advanced()
        if self.on_advanced is not None:
            self.on_advanced()

    # Reading (projections.jobs, projections.assignments) ---------------------

    def list_jobs(self, *, status: str | None = None, priority: str | None = None,
                  region: str | None = None, page: int = 1,
                  page_size: int = 20) -> Page[JobRecord]:
        with self._transaction(commit=False) as c:
            return self._jobs.page(c, status=status, priority=priority, region=region,
                                   page=page, page_size=page_size)

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._transaction(commit=False) as c:
            return self._jobs.get(c, job_id)

    def list_assignments(self, *, contractor_id: str | None = None,
                         job_id: str | None = None, status: str | None = None,
                         page: int = 1, page_size: int = 100) -> Page[AssignmentRecord]:
        with self._transaction(commit=False) as c:
            return self._assignments.page(c, contractor_id=contractor_id, job_id=job_id,
                                          status=status, page=page, page_size=page_size)

    def count_jobs(self) -> int:
        return self.list_jobs(page_size=1).total

    # The followers' failures (projections.following.status) ------------------

    def record_failure(self, name: str, failure: Failure | None) -> None:
        """Record a follower's failure; None when it has moved on."""
        with self._transaction(commit=True) as c:
            if failure is None:
                c.execute(self._status_sql(status.DELETE), (name,))
            else:
                c.execute(self._status_sql(status.UPSERT), failure.row(name))

    def failures(self) -> dict[str, Failure]:
        with self._transaction(commit=False) as c:
            c.execute(self._status_sql(status.SELECT))
            return {row["name"]: Failure.from_row(row) for row in c.fetchall()}

    # SQL and transactions: each backend's (projections.backends) --------------

    def _sql(self, sql: str) -> str:
        """The statement for this backend and this model's table names (cached)."""
        found = self._sql_cache.get(sql)
        if found is None:
            found = sql if self.placeholder == "?" else sql.replace("?", self.placeholder)
            found = _TABLE_NAMES.sub(lambda m: self._table(m[1]), found)
            self._sql_cache[sql] = found
        return found

    def _table(self, name: str) -> str:
        return name + self.suffix

    def _status_sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:  # type: ignore[attr-defined]
            yield c

    def _advance_sql(self) -> str:
        raise NotImplementedError

    def _delete_tracking_sql(self) -> str:
        raise NotImplementedError

    def _select_tracking_sql(self) -> str:
        raise NotImplementedError

    def _switch_transaction(self) -> AbstractContextManager[Any]:
        """The transaction a switch runs in: the usual one unless the backend says."""
        return self._transaction(commit=True)

    def _lock_for_switch(self, c: Any) -> int:
        """Keep runners out of the live tables; return the live position."""
        c.execute(self._select_tracking_sql(), (self.tracking_name,))
        row = c.fetchone()
        return int(row["notification_id"]) if row else 0

    def _read_log(self, c: Any, app: EventLog, after: int, upto: int) -> Sequence[Notification]:
        """The notifications after `after` up to `upto`, read during the switch."""
        return app.recorder.select_notifications(
            start=after, stop=upto, limit=upto - after, inclusive_of_start=False)
