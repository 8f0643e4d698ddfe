"""The PostgreSQL recorder: the library's, with every wait bounded, and appends
that do not hold a table lock through their commit.

See "Bounded waits" in `application.persistence` for the figures and why, and
"Appends without a table lock" in docs/architecture.md for the proof that a
follower still never skips nor repeats an event.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, NamedTuple, TypeVar

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    ShutDown,
    StoredEvent,
    Subscription,
)
from eventsourcing.postgres import PostgresApplicationRecorder as _PostgresApplicationRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresSubscription
from psycopg import Connection
from psycopg.sql import SQL, Composed, Identifier, Literal

from application.persistence import (
    CONNECT_TIMEOUT,
    LIBPQ_KEEPALIVES,
    MAX_WAITING,
    RECONNECT_TIMEOUT,
    RETRY_WAIT,
    RETRY_WINDOW,
    STATEMENT_TIMEOUTS,
    UNAVAILABLE_FOR,
    StoreUnavailable,
)


class BoundedPostgresDatastore(PostgresDatastore):
    """The library's datastore with the waits that no setting reaches bounded.

    eventsourcing builds its datastore inside its factory, which we keep (the
    benchmarks' baseline is the library's own); our application recorder adopts
    the datastore it is given (`adopt`), before the pool opens. The recorders of
    the read models and the relay share that datastore, so they are bounded too.
    """

    statement_timeout: float | None = None
    _admission: threading.BoundedSemaphore
    _unavailable_until = 0.0

    @classmethod
    def adopt(cls, datastore: PostgresDatastore, *,
              statement_timeout: float | None) -> BoundedPostgresDatastore:
        if not isinstance(datastore, cls):
            if not datastore.pool.closed:
                raise RuntimeError("Bound the datastore's waits before its pool opens")
            datastore.__class__ = cls
            assert isinstance(datastore, cls)
            pool = datastore.pool
            assert isinstance(pool.kwargs, dict)
            pool.kwargs.update({"connect_timeout": CONNECT_TIMEOUT, **LIBPQ_KEEPALIVES})
            pool.reconnect_timeout = RECONNECT_TIMEOUT
            datastore._admission = threading.BoundedSemaphore(pool.max_size + MAX_WAITING)
        assert isinstance(datastore, cls)
        if statement_timeout is not None and (datastore.statement_timeout is None or
                                              statement_timeout < datastore.statement_timeout):
            datastore.statement_timeout = statement_timeout
            # psycopg_pool offers no setter; the pool calls it on each new connection.
            datastore.pool._configure = datastore.after_connect_func()
        return datastore

    def after_connect_func(self) -> Callable[[Connection[Any]], None]:
        library = super().after_connect_func()
        if self.statement_timeout is None:
            return library
        statement = SQL("SET statement_timeout = {}").format(
            Literal(f"{int(self.statement_timeout * 1000)}ms"))

        def after_connect(conn: Connection[Any]) -> None:  # no reference to self
            library(conn)
            conn.execute(statement)

        return after_connect

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        if time.monotonic() < self._unavailable_until:
            raise StoreUnavailable("PostgreSQL is unavailable (no connection a moment ago)")
        if not self._admission.acquire(blocking=False):
            raise StoreUnavailable("PostgreSQL is unavailable: too many requests "
                                   "wait for a connection already")
        with ExitStack() as stack:
            stack.callback(self._admission.release)
            try:
                connection = stack.enter_context(super().get_connection())
            except (OperationalError, InterfaceError) as error:  # no connection in time
                self._unavailable_until = time.monotonic() + UNAVAILABLE_FOR
                raise StoreUnavailable(f"PostgreSQL is unavailable: {error}") from error
            yield connection


log = logging.getLogger(__name__)

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _retry_fast_failures(method: _Method) -> _Method:
    """The method (the library's without its `@retry`, 10 attempts) retried
    instead while the call is younger than RETRY_WINDOW: a stale connection is
    retried, a timed-out wait is not."""
    attempt = getattr(method, "__wrapped__", method)  # set by the library's @retry

    @functools.wraps(attempt)
    def call(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        while True:
            try:
                return attempt(*args, **kwargs)
            except (InterfaceError, OperationalError):
                if time.monotonic() - began + RETRY_WAIT > RETRY_WINDOW:
                    raise
            time.sleep(RETRY_WAIT)

    return call  # type: ignore[return-value]


# Appends without a table lock ------------------------------------------------------
#
# The library runs LOCK TABLE ... IN EXCLUSIVE MODE in every append and holds it
# through the COMMIT, and so through the commit's WAL flush: appends of all
# processes run one after the other, and no two share a flush. The lock is what
# keeps its followers from skipping: notification ids then commit in id order.
#
# Ours (docs/architecture.md, "PostgreSQL: appends without a table lock"):
# - every row records the id of the transaction that wrote it (`transaction_id
#   xid8 DEFAULT pg_current_xact_id()`);
# - one statement of each append holds the append lock, a session-level
#   advisory lock: taken before its first row, released after its last, so
#   the rows' ids (nextval) and the transaction's id (the column's default) are
#   assigned under it, and never the COMMIT. So among appenders, transaction id
#   order is notification id order. The NOTIFY follows the COMMIT in a
#   transaction of its own (see `_notify_statements`);
# - readers return only settled rows: `transaction_id < pg_snapshot_xmin(snapshot)`,
#   in id order, stopping at the first row that is not settled. Every
#   transaction below the snapshot's xmin has ended, so no row with a smaller
#   id can commit later: what a follower has read is a prefix of what will ever
#   be committed, and it never skips nor repeats;
# - a read cut short by the bound is looked at again soon (`SettledSubscription`):
#   the transaction in the way may be no append, and then no NOTIFY comes.

APPEND_LOCK_CLASS = 0x5353_4348  # "SSCH"
"""First half of the append lock's advisory-lock key; the second names the table."""

REPOLL_FIRST = 0.005
REPOLL_MAX = 0.05
"""Seconds a subscription whose last read was cut short waits before reading
again (doubling from the first to the most), unless a NOTIFY comes first."""

SETTLE_WAIT = 2.0
"""Seconds `select_notifications` waits at most for the rows committed before
it to settle (see there); after that it returns the settled ones."""


def append_lock_key(schema: str, table: str) -> tuple[int, int]:
    """The advisory-lock key (two int4) of the append lock of one events table."""
    return APPEND_LOCK_CLASS, zlib.crc32(f"{schema}.{table}".encode()) & 0x7FFF_FFFF


class SettledRead(NamedTuple):
    """What a read of the log returned; whether it stopped at a row that is
    committed but not settled yet (the caller should look again soon); and the
    last committed id of the page it read, settled or not."""

    notifications: list[Notification]
    cut_short: bool
    committed_to: int | None


class PostgresApplicationRecorder(_PostgresApplicationRecorder):
    """The library's PostgreSQL recorder with every wait bounded (see above), its
    appends serialised only up to their INSERT, and its reads settled."""

    statement_timeout: float | None = STATEMENT_TIMEOUTS["worker"]

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        datastore = BoundedPostgresDatastore.adopt(
            datastore, statement_timeout=self.statement_timeout)
        super().__init__(datastore, **kwargs)
        if self.datastore.enable_db_functions:
            raise ProgrammingError(
                "POSTGRES_ENABLE_DB_FUNCTIONS: the library's insert function takes "
                "no append lock, so followers could skip events; leave it off")
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.sql_create_statements[self.create_table_statement_index] = SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
            "originator_id {originator_id_type} NOT NULL, "
            "originator_version bigint NOT NULL, "
            "topic text, "
            "state bytea, "
            "notification_id bigserial, "
            "transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(), "
            "PRIMARY KEY "
            "(originator_id, originator_version)) "
            "WITH ("
            "    autovacuum_enabled = true,"
            "    autovacuum_vacuum_threshold = 100000000,"
            "    autovacuum_vacuum_scale_factor = 0.5,"
            "    autovacuum_analyze_threshold = 1000,"
            "    autovacuum_analyze_scale_factor = 0.01"
            ")"
        ).format(schema=schema, table=table,
                 originator_id_type=Identifier(self.datastore.originator_id_type))
        # A table made before this column: rows already there get 0 (settled;
        # a constant default rewrites nothing), rows from now on their writer's id.
        self._add_transaction_id = [
            SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS transaction_id xid8 "
                "NOT NULL DEFAULT '0'").format(schema, table),
            SQL("ALTER TABLE {}.{} ALTER COLUMN transaction_id "
                "SET DEFAULT pg_current_xact_id()").format(schema, table),
        ]
        self.append_lock_key = append_lock_key(self.datastore.schema, self.events_table_name)
        key = SQL("{}, {}").format(*map(Literal, self.append_lock_key))
        # One statement holds the append lock: taken before the first row (a
        # one-time filter), released once every row is in (the aggregate has
        # read them all), whatever the client does meanwhile. Each row's id
        # (nextval) and the transaction's id (the first pg_current_xact_id(), the
        # column's default) are assigned in between. Ids ascend in input order.
        self._append_statement = SQL(
            "WITH append_lock AS MATERIALIZED (SELECT pg_advisory_lock({key})), "
            "appended AS (INSERT INTO {schema}.{table} "
            "(originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state "
            "FROM unnest(%s::{schema}.{type}[]) WHERE EXISTS (SELECT FROM append_lock) "
            "RETURNING notification_id) "
            "SELECT array_agg(notification_id ORDER BY notification_id) AS ids, "
            "pg_advisory_unlock({key}) AS unlocked FROM appended"
        ).format(key=key, schema=schema, table=table,
                 type=Identifier(self.stored_event_type_name))
        self._before_append: list[SQL | Composed] = [
            SQL("BEGIN"),
            SQL("SET LOCAL lock_timeout = '{}s'").format(Literal(self.datastore.lock_timeout)),
        ]
        self._commit_statement = SQL("COMMIT")
        # The NOTIFY goes in a transaction of its own, after the append's COMMIT:
        # a transaction that notifies holds PostgreSQL's notify lock (one for the
        # whole server) from before its commit until after it, so appends that
        # notified would flush the WAL one at a time again. This one commits
        # without waiting for its flush: a notification needs no durability, and
        # the append it announces is already durable.
        self._notify_statements: list[SQL | Composed] = [
            SQL("BEGIN"),
            SQL("SET LOCAL synchronous_commit TO OFF"),
            SQL("NOTIFY {}").format(Identifier(self.channel_name)),
            SQL("COMMIT"),
        ]
        # One message, run by the server as a whole: no moment outside a
        # transaction with the lock held. Our pooled sessions hold no other
        # session-level advisory lock.
        self._release_statement = SQL("ROLLBACK; SELECT pg_advisory_unlock_all()")
        settled = SQL("transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))")
        self._select_settled = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, "
            "CASE WHEN settled THEN state END AS state, settled FROM ("
            "SELECT *, {settled} AS settled FROM {schema}.{table}"
        ).format(settled=settled, schema=schema, table=table)
        self._max_settled = SQL(
            "SELECT MAX(notification_id) FROM {schema}.{table} WHERE {settled}"
        ).format(settled=settled, schema=schema, table=table)

    def _create_table(self, curs: Any) -> None:
        super()._create_table(curs)
        curs.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s AND column_name = 'transaction_id'",
            (self.datastore.schema, self.events_table_name))
        if curs.fetchone() is None:  # ALTER TABLE locks the table: only when needed
            for statement in self._add_transaction_id:
                curs.execute(statement)

    # Appends ---------------------------------------------------------------------

    @_retry_fast_failures
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            return self._append(conn, stored_events, commit=True)

    def _append(self, conn: Connection[Any], stored_events: Sequence[StoredEvent], *,
                commit: bool) -> list[int]:
        """Append in one round trip: BEGIN, the INSERT under the append lock,
        COMMIT, then the NOTIFY in a transaction of its own (without `commit`,
        for tests: neither; the caller ends the transaction).

        When the INSERT fails (a conflict: the usual failure) it may leave the
        lock held, in a failed transaction (so the session's
        idle_in_transaction_session_timeout bounds it): the transaction is rolled
        back and the lock released in one more message. A connection that
        cannot do that is closed, which ends its session, and so the lock.
        A failure after the append's COMMIT (of the NOTIFY) fails no append.
        """
        events = [self.construct_pg_stored_event(e.originator_id, e.originator_version,
                                                 e.topic, e.state) for e in stored_events]
        error: BaseException | None = None
        committed = False
        ids: list[int] = []
        try:
            with conn.pipeline() as pipeline, conn.cursor() as curs, \
                    conn.cursor() as append, conn.cursor() as ending:
                try:
                    for statement in self._before_append:
                        curs.execute(statement, prepare=True)
                    append.execute(self._append_statement, (events,))
                    if commit:
                        ending.execute(self._commit_statement, prepare=True)
                        for statement in self._notify_statements:
                            curs.execute(statement, prepare=True)
                    pipeline.sync()
                except BaseException as e:  # raised once the pipeline is closed
                    error = e
                committed = commit and ending.statusmessage == "COMMIT"
                if error is None or committed:
                    row = append.fetchone()
                    ids = list(row["ids"]) if row else []
        except BaseException as e:
            error = error or e
        if error is not None:
            self._release_after_failure(conn)
            if not committed:
                raise error
            log.warning("An append committed, but what followed failed (%s): followers "
                        "see it at the next NOTIFY", error)
        return ids

    def _release_after_failure(self, conn: Connection[Any]) -> None:
        try:
            if not conn.closed:
                conn.execute(self._release_statement)
        except BaseException:  # cannot tell whether the lock is held: end the session
            conn.close()

    # Reads -----------------------------------------------------------------------

    @_retry_fast_failures
    def select_settled_notifications(
            self, start: int | None, limit: int, stop: int | None = None,
            topics: Sequence[str] = (), *, inclusive_of_start: bool = True) -> SettledRead:
        """The settled notifications from `start` (see the module's comment), in
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
        returned skips nothing (see the module's comment).

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

    select_events = _retry_fast_failures(_PostgresApplicationRecorder.select_events)
    max_notification_id = _retry_fast_failures(
        _PostgresApplicationRecorder.max_notification_id)
    """The largest committed notification id: every append committed before the
    call is at or below it, so read-your-writes waits for it. Rows below it may
    still be in flight: a follower starts from `max_settled_notification_id`."""

    @_retry_fast_failures
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

    def check_writable(self) -> None:
        """Nothing to add on PostgreSQL: reading the head needs a connection."""


class SettledSubscription(PostgresSubscription):
    """The library's LISTEN/NOTIFY subscription, reading settled rows only; while
    its last read was cut short by a transaction in flight, it reads again after
    REPOLL_FIRST..REPOLL_MAX seconds, since that transaction may be no append
    and then brings no NOTIFY."""

    _recorder: PostgresApplicationRecorder

    def __init__(self, recorder: PostgresApplicationRecorder, gt: int | None = None,
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


class WebPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The recorder of a process that serves requests: statements are limited too."""

    statement_timeout = STATEMENT_TIMEOUTS["web"]
