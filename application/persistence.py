"""Persistence wiring: database URLs onto eventsourcing's own settings.

eventsourcing 9.5.6 ships no subscription for SQLite, so the projection runner
cannot follow an SQLite event store as shipped. `SQLiteApplicationRecorder`
below adds one: it polls the notification log, and a write made through any
recorder of the same database in this process wakes its subscribers at once.
It leans on the library's `ListenNotifySubscription`, hence the exact pin.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import ListenNotifySubscription, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder as _SQLiteApplicationRecorder

POLL_INTERVAL = 0.1
"""Seconds between polls of the log, for writes made by other processes."""

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
    """The library's SQLite recorder, plus `subscribe` and an in-process wake-up."""

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        _wake(self.datastore.pool.db_name)
        return ids

    def subscribe(self, gt: int | None = None,
                  topics: Sequence[str] = ()) -> SQLiteSubscription:  # type: ignore[override]
        return SQLiteSubscription(recorder=self, gt=gt, topics=topics)


POOL_SIZES = {"web": (10, 20), "worker": (3, 3)}
"""PostgreSQL connections per process role: (kept open, extra under a burst)."""


def eventsourcing_env(database_url: str, *, role: str = "worker") -> dict[str, str]:
    """Map `sqlite:///path` or `postgresql://user:pass@host:port/db` onto the
    library's environment settings. `pool_size` and `max_overflow` in the URL's
    query override the defaults of the process role (POOL_SIZES)."""
    url = urlsplit(database_url)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    if url.scheme == "sqlite":
        path = unquote(url.path[1:] if url.path.startswith("/") else url.path)
        if not path:
            raise ValueError(f"No SQLite file in database URL {database_url!r}")
        if path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": query.get("lock_timeout", "30"),
            "APPLICATION_RECORDER_TOPIC": f"{__name__}:SQLiteApplicationRecorder",
        }
    if url.scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": query.get("pool_size", str(POOL_SIZES[role][0])),
            "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", str(POOL_SIZES[role][1])),
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"]
        return env
    raise ValueError(
        f"Unsupported database URL {database_url!r}: use sqlite:///path/to/file.db "
        "or postgresql://user:pass@host:port/db")


def redacted(database_url: str) -> str:
    """The URL with its password masked, for logs."""
    url = urlsplit(database_url)
    if not url.password:
        return database_url
    netloc = url.netloc.replace(f":{url.password}@", ":***@", 1)
    return url._replace(netloc=netloc).geturl()


STORAGE_LOCK_KEY = 0x5353_4348_4544  # "SSCHED": one advisory lock per database
"""PostgreSQL advisory lock held while a process creates or checks its tables."""


@contextmanager
def storage_lock(database_url: str) -> Iterator[None]:
    """Hold the database's storage lock, with the URL's schema created if missing.

    eventsourcing and the read models run CREATE ... IF NOT EXISTS (and CREATE OR
    REPLACE FUNCTION) whenever a process starts; PostgreSQL fails such statements
    when processes run them at the same moment ("tuple concurrently updated"), so
    processes take turns. SQLite serialises them itself.
    """
    env = eventsourcing_env(database_url)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        yield
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]), user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
    ) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (STORAGE_LOCK_KEY,))
        try:
            if env.get("POSTGRES_SCHEMA"):
                connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(env["POSTGRES_SCHEMA"])))
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (STORAGE_LOCK_KEY,))


def prepare_database(database_url: str) -> None:
    """Create the PostgreSQL schema named in the URL (`?schema=`) if it is missing."""
    with storage_lock(database_url):
        pass
