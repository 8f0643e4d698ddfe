"""Settled reads of the PostgreSQL log, and the subscription that follows it.

Part of the PostgreSQL recorder (`application.postgres`). Appends do not hold a
table lock through their commit (`application.postgres_appends`), so a row with
a smaller notification id may still commit after one with a larger id. Readers
therefore return only settled rows: `transaction_id <
pg_snapshot_xmin(snapshot)`, in id order, stopping at the first row that is not
settled. Every transaction below the snapshot's xmin has ended, so no row with
a smaller id can commit later: what a follower has read is a prefix of what will
ever be committed, and it never skips nor repeats. A read cut short by the bound
is looked at again soon (`SettledSubscription`): the transaction in the way may
be no append, and then no NOTIFY comes. The proof is in docs/architecture.md,
"PostgreSQL: appends without a table lock".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from eventsourcing.persistence import ApplicationRecorder, Notification, ShutDown, Subscription
from eventsourcing.postgres import PostgresDatastore, PostgresSubscription
from psycopg.sql import SQL, Composed, Identifier

from application.postgres_appends import PostgresAppendingRecorder
from application.postgres_bounded import retry_fast_failures

REPOLL_FIRST = 0.005
REPOLL_MAX = 0.05
"""Seconds a subscription whose last read was cut short waits before reading
again (doubling from the first to the most), unless a NOTIFY comes first."""

SETTLE_WAIT = 2.0
"""Seconds `select_notifications` waits at most for the rows committed before
it to settle (see there); after that it returns the settled ones."""


class SettledRead(NamedTuple):
    """What a read of the log returned; whether it stopped at a row that is
    committed but not settled yet (the caller should look again soon); and the
    last committed id of the page it read, settled or not."""

    notifications: list[Notification]
    cut_short: bool
    committed_to: int | None


class PostgresSettledRecorder(PostgresAppendingRecorder):
    """The appending recorder, its reads and its subscription settled (see the
    module's docstring)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        settled = SQL("transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))")
        self._select_settled = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, "
            "CASE WHEN settled THEN state END AS state, settled FROM ("
            "SELECT *, {settled} AS settled FROM {schema}.{table}"
        ).format(settled=settled, schema=schema, table=table)
        self._max_settled = SQL(
            "SELECT MAX(notification_id) FROM {schema}.{table} WHERE {settled}"
        ).format(settled=settled, schema=schema, table=table)

    @retry_fast_failures
    def select_settled_notifications(
            self, start: int | None, limit: int, stop: int | None = None,
            topics: Sequence[str] = (), *, inclusive_of_start: bool = True) -> SettledRead:
        """The settled notifications from `start` (see the module's docstring), in
        id order, at most `limit`; and whether the read stopped at a committed
        row that is not settled yet."""
        statement = self._select_settled
        params: list[Any] = []
        conditions: list[Composed | SQL] = []
        if start is not None:
            conditions.append(SQL("notification_id >= %s") if inclusive_of_start
                              else SQL("notification_id > %s"))
            params.append(start)
        if stop is not None:
            conditions.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        if conditions:
            statement += SQL(" WHERE ") + SQL(" AND ").join(conditions)
        statement += SQL(" ORDER BY notification_id LIMIT %s) AS page "
                         "ORDER BY notification_id")
        params.append(limit)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            rows = curs.fetchall()
        notifications: list[Notification] = []
        for row in rows:
            if not row["settled"]:
                return SettledRead(notifications, True, rows[-1]["notification_id"])
            notifications.append(Notification(
                id=row["notification_id"], originator_id=row["originator_id"],
                originator_version=row["originator_version"], topic=row["topic"],
                state=bytes(row["state"])))
        return SettledRead(notifications, False, notifications[-1].id if notifications else None)

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *,
                             inclusive_of_start: bool = True) -> Sequence[Notification]:
        """Settled notifications only: a reader that goes on from the last one
        returned skips nothing (see the module's docstring).

        A read cut short is made again, for up to SETTLE_WAIT, until it reaches
        the rows that were committed when it was first made: they settle as
        soon as the transactions older than them end (usually within
        milliseconds), and a caller that reads right after a commit (a replay,
        a rebuild, a test) then sees it. Later appends are not waited for.
        """
        def read() -> SettledRead:
            return self.select_settled_notifications(
                start, limit, stop, topics, inclusive_of_start=inclusive_of_start)

        got = read()
        target, deadline, pause = got.committed_to, time.monotonic() + SETTLE_WAIT, 0.002
        while got.cut_short and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
            got = read()
            if (len(got.notifications) >= limit or target is None
                    or (got.notifications and got.notifications[-1].id >= target)):
                break
        return got.notifications

    @retry_fast_failures
    def max_settled_notification_id(self) -> int | None:
        """The largest settled notification id: no row at or below it can commit
        after the call, so a follower may start after it without skipping."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._max_settled, prepare=True)
            row = curs.fetchone()
            return None if row is None else row["max"]

    def subscribe(self, gt: int | None = None,
                  topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        return SettledSubscription(recorder=self, gt=gt, topics=topics)


class SettledSubscription(PostgresSubscription):
    """The library's LISTEN/NOTIFY subscription, reading settled rows only; while
    its last read was cut short by a transaction in flight, it reads again after
    REPOLL_FIRST..REPOLL_MAX seconds, since that transaction may be no append
    and then brings no NOTIFY."""

    _recorder: PostgresSettledRecorder

    def __init__(self, recorder: PostgresSettledRecorder, gt: int | None = None,
                 topics: Sequence[str] = ()) -> None:
        self._cut_short = False  # before the library starts the pulling thread
        super().__init__(recorder=recorder, gt=gt, topics=topics)

    def _loop_on_pull(self) -> None:
        try:
            repoll = REPOLL_FIRST
            self._pull()
            while not self._has_been_stopped:
                if self._cut_short:
                    self._has_been_notified.wait(repoll)
                    repoll = min(repoll * 2, REPOLL_MAX)
                else:
                    repoll = REPOLL_FIRST
                    self._has_been_notified.wait()
                self._pull()
        except BaseException as e:
            if self._thread_error is None:
                self._thread_error = e
            self.stop()

    def _pull(self) -> None:
        while not self._has_been_stopped:
            self._has_been_notified.clear()
            notifications, self._cut_short, _ = self._recorder.select_settled_notifications(
                start=self._last_notification_id or 0, limit=self._select_limit,
                topics=self._topics, inclusive_of_start=False)
            if notifications:
                try:
                    self._notifications_queue.put(notifications)
                except ShutDown:
                    break
                self._last_notification_id = notifications[-1].id
            if len(notifications) < self._select_limit:
                break
