"""The SQLite recorder: the library's, with a subscription and bounded waits.

eventsourcing 9.5.6 ships no subscription for SQLite, so the projection runner
cannot follow an SQLite event store as shipped. `SQLiteApplicationRecorder`
adds one: it polls the notification log, and a write made through any recorder
of the same database in this process wakes its subscribers at once; a write
made by another process wakes them through `application.wakeup` (the
recorder's `on_appended` on the writer's side, `wake_subscriptions` on the
reader's), or else at the next poll. It leans on the library's
`ListenNotifySubscription`, hence the exact pin.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    ListenNotifySubscription,
    OperationalError,
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder as _SQLiteApplicationRecorder
from eventsourcing.sqlite import SQLiteDatastore

from application.persistence import SQLITE_POOL_TIMEOUT, UNAVAILABLE_FOR, StoreUnavailable

POLL_INTERVAL = 0.1
"""Seconds between polls of the log: the fallback for writes made by other processes
when their wake-up does not arrive (application.wakeup)."""

_subscribers: dict[str, weakref.WeakSet[SQLiteSubscription]] = {}
_subscribers_lock = threading.Lock()


def _wake(db_name: str) -> None:
    with _subscribers_lock:
        subscriptions = list(_subscribers.get(db_name, ()))
    for subscription in subscriptions:
        subscription.wake()


class SQLiteSubscription(ListenNotifySubscription["SQLiteApplicationRecorder"]):
    """Follows an SQLite notification log: woken by local writes, else polls."""

    def __init__(self, recorder: SQLiteApplicationRecorder, gt: int | None = None,
                 topics: Sequence[str] = (), poll_interval: float = POLL_INTERVAL) -> None:
        self._poll_interval = poll_interval
        self._stopped = threading.Event()
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        # Only now can it be woken: registered earlier, a concurrent write would
        # fail (after committing) on the missing `_has_been_notified`. Woken once
        # on registering, for what was written since the initial pull.
        db_name = recorder.datastore.pool.db_name
        with _subscribers_lock:
            _subscribers.setdefault(db_name, weakref.WeakSet()).add(self)
        self.wake()
        self._poll_thread = threading.Thread(target=self._poll, daemon=True,
                                             name="sqlite-subscription-poll")
        self._poll_thread.start()

    def wake(self) -> None:
        self._has_been_notified.set()

    def stop(self) -> None:
        self._stopped.set()
        super().stop()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._poll_thread.join()

    def _poll(self) -> None:
        while not self._stopped.wait(self._poll_interval):
            self._has_been_notified.set()


class SQLiteApplicationRecorder(_SQLiteApplicationRecorder):
    """The library's SQLite recorder, plus `subscribe` and an in-process wake-up,
    a bounded wait for the pool (SQLITE_POOL_TIMEOUT), appends refused at once
    for UNAVAILABLE_FOR after one failed, and a write probe."""

    _appends_refused_until = 0.0
    on_appended: Callable[[], None] | None = None
    """Called after each append has committed, to tell other processes (the
    composition root sets it: `application.wakeup`); this process's own
    subscriptions are woken directly."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        # Not a setting of the library's factory: the pool is built with 5 s.
        datastore.pool.pool_timeout = min(datastore.pool.pool_timeout, SQLITE_POOL_TIMEOUT)
        turn = _shared_turns.get(datastore.pool.db_name)
        if turn is not None and not isinstance(datastore.pool._writer_lock, _TakesTurns):
            datastore.pool._writer_lock = _TakesTurns(  # type: ignore[assignment]
                datastore.pool._writer_lock, turn)
        super().__init__(datastore, **kwargs)

    def check_writable(self, timeout: float = 1.0) -> None:
        """Take the database's write lock for a moment, on a connection of its own.

        In WAL mode a writer that holds the lock (another process's BEGIN
        EXCLUSIVE, a stuck rebuild) blocks no reader, so reading the head alone
        would call ready a store that refuses every command.
        """
        pool = self.datastore.pool
        if pool.is_sqlite_memory_mode:
            return
        try:
            connection = sqlite3.connect(pool.db_name, uri=True, timeout=timeout,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise InterfaceError(str(error)) from error
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise OperationalError(str(error)) from error
        finally:
            connection.close()

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if time.monotonic() < self._appends_refused_until:
            raise StoreUnavailable("SQLite is unavailable (an append failed a moment ago)")
        try:
            ids = super().insert_events(stored_events, **kwargs)
        except OperationalError:  # locked, or no pool connection in time; not a conflict
            self._appends_refused_until = time.monotonic() + UNAVAILABLE_FOR
            raise
        _wake(self.datastore.pool.db_name)
        if self.on_appended is not None:
            self.on_appended()
        return ids

    def wake_subscriptions(self) -> None:
        """Wake this process's subscriptions to the database: another process wrote."""
        _wake(self.datastore.pool.db_name)

    def subscribe(self, gt: int | None = None,
                  topics: Sequence[str] = ()) -> SQLiteSubscription:  # type: ignore[override]
        return SQLiteSubscription(recorder=self, gt=gt, topics=topics)


# Writers of one file take turns across processes ------------------------------------
#
# SQLite lets one connection write at a time; another waits in its busy handler,
# which sleeps 1, 2, 5, 10, ... up to 100 ms between looks. When the server's
# processes (HTTP workers, the followers process) write the same file at once,
# those sleeps, not the work, made the slowest commands: cancel p99 at 16
# connections went from 159 ms with one worker to 554 ms with two. So the writers
# of the processes one server forks take turns on a semaphore they share: a
# writer waits in the kernel and goes as soon as the last one is done. The turn
# only orders writers; SQLite's lock still decides, and a process that holds no
# turn (a command run beside the server) is kept out by it as before.

TURN_WAIT = 1.0
"""Seconds a writer waits for its turn; then it goes on, and SQLite's lock decides."""


class WriteTurn:
    """One writer at a time among the processes forked after it was made."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._semaphore = context.Semaphore(1)
        self._holder = context.RawValue("i", 0)

    def acquire(self, timeout: float) -> bool:
        if self._semaphore.acquire(timeout=timeout):
            self._holder.value = os.getpid()
            return True
        holder = self._holder.value
        if holder and not _alive(holder):  # it died in its turn: hand the turn on
            self._holder.value = 0
            self._semaphore.release()
        return False

    def release(self) -> None:
        self._holder.value = 0
        self._semaphore.release()


class _TakesTurns:
    """A pool's writer lock (one writer per process) that also takes the file's
    turn (one writer among the processes)."""

    def __init__(self, lock: Any, turn: WriteTurn) -> None:
        self._lock = lock
        self._turn = turn
        self._has_turn = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        began = time.monotonic()
        if not self._lock.acquire(blocking, timeout):
            return False
        wait = TURN_WAIT if timeout < 0 else min(
            TURN_WAIT, max(0.0, timeout - (time.monotonic() - began)))
        self._has_turn = self._turn.acquire(wait)
        return True

    def release(self) -> None:
        if self._has_turn:
            self._has_turn = False
            self._turn.release()
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()


_shared_turns: dict[str, WriteTurn] = {}


def share_write_turn(db_name: str) -> WriteTurn:
    """Make the writers of `db_name`, in the processes forked from now on, take
    turns (a server calls it before it forks its processes)."""
    turn = _shared_turns.get(db_name)
    if turn is None:
        turn = _shared_turns[db_name] = WriteTurn()
    return turn


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
