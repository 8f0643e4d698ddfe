"""Persistence wiring: database URLs onto eventsourcing's own settings.

The recorders themselves are in `application.sqlite` and `application.postgres`.
Every wait on the store is bounded (see "Bounded waits" below): an outage of
the store is answered with 503 within seconds, not after the library's own
defaults (a 30 s pool wait, tried 10 times; a 30 s SQLite lock wait).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import (
    PersistenceError,
)

# Bounded waits -----------------------------------------------------------------
#
# The contract: while the store is unreachable every request that needs it gets a
# 503 within 5 s, and service is back within 10 s of the store coming back. The
# library's defaults are far from that: its PostgreSQL pool waits 30 s for a
# connection, each recorder method is tried 10 times (`@retry`), the pool backs
# off reconnecting up to minutes apart, and SQLite waits 30 s on a lock. So:
#
# - settings (eventsourcing_env): pool wait 2 s (the library calls it
#   POSTGRES_CONNECT_TIMEOUT, whole seconds), connections checked before use
#   (POSTGRES_PRE_PING: after a restart a stale one is replaced, not failed on),
#   lock wait 2 s on appends (POSTGRES_LOCK_TIMEOUT); SQLite lock wait 1 s in a
#   web process (SQLITE_LOCK_TIMEOUT, whole seconds).
# - what no setting reaches, in `application.postgres.BoundedPostgresDatastore`
#   and the recorders of `application.postgres` and `application.sqlite`: the
#   libpq connect timeout and TCP keep-alives, the pool's reconnect back-off, at
#   most MAX_WAITING requests waiting for a connection (more fail at once), a
#   statement timeout in web processes, no retry of a failed wait for a
#   connection (`StoreUnavailable`), and the recorder's retries kept to fast
#   failures within RETRY_WINDOW; SQLite's pool wait (SQLITE_POOL_TIMEOUT).
# - after a failed wait, the same calls fail at once for UNAVAILABLE_FOR, so
#   that callers queued behind one another do not each wait again.
#
# Worst case of one store call in a web process: a pool wait (2 s) or a lock
# wait (2 s) or a statement (4 s), after at most RETRY_WINDOW of fast failures.

POOL_TIMEOUT = 2
"""Seconds a PostgreSQL request waits for a pooled connection (whole seconds)."""

MAX_WAITING = 32
"""Requests that may wait for a PostgreSQL connection, per process, beyond the
pool's size; more fail at once, so that an outage cannot hold every server
thread (and with them /healthz) for POOL_TIMEOUT. Enforced by
`BoundedPostgresDatastore`, not by psycopg_pool's own `max_waiting` (the
library's POSTGRES_MAX_WAITING, left unset): that one counts the clients that
already gave up too, and once it is full it refuses every request and stops
growing the pool, so the pool never reconnects after an outage (psycopg_pool
3.3.3)."""

LOCK_TIMEOUT = 2
"""Seconds an append waits for PostgreSQL's lock on the events table (whole seconds)."""

CONNECT_TIMEOUT = 2
"""libpq's connect_timeout (seconds; 2 is its minimum): a host that drops packets
would otherwise hold a pool worker for minutes."""

LIBPQ_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                    "keepalives_count": 3, "tcp_user_timeout": 10_000}
"""A peer that vanished (host down, network cut) is noticed within about 11 s
instead of the kernel's 2 hours (idle) or 15 minutes (unacknowledged data)."""

RECONNECT_TIMEOUT = 2.0
"""Seconds the pool keeps retrying one lost connection before giving it up; a
request then starts a fresh attempt. The pool's own default (5 minutes, with a
doubling back-off) left it up to a minute behind a store that had come back."""

STATEMENT_TIMEOUTS = {"web": 4.0, "worker": None}
"""Seconds a statement may run, per process role: a request has 5 s in all;
workers (and the DDL run at start-up) are not limited."""

RETRY_WINDOW = 1.0
"""The library retries a failed call 10 times 0.2 s apart, however long each
attempt took. Ours retries only while the call is younger than this."""

RETRY_WAIT = 0.2

SQLITE_LOCK_TIMEOUTS = {"web": 1, "worker": 30}
"""Seconds an SQLite write waits for another connection's lock, per role. A web
request may wait for the pool twice (a read, then the write) and then the lock:
2 x SQLITE_POOL_TIMEOUT + 1 s stays within 5 s. Workers and one-off commands
(a rebuild's switch) keep a long wait."""

SQLITE_POOL_TIMEOUT = 1.5
"""Seconds an SQLite request waits for the pool (the library builds it with 5 s);
writers take turns there, so this is also how long one waits behind a writer."""

UNAVAILABLE_FOR = 1.0
"""Seconds after a wait for the store failed (PostgreSQL: for a connection;
SQLite: an append, for the lock) during which the same calls fail at once
instead of each waiting again. Commands queued behind one another (group
commit appends batch after batch) would otherwise each add a full wait, and
in an outage a command answered 503 after 6 s or more. The first call after
this second tries the store again, so service resumes at most this much later."""


class StoreUnavailable(PersistenceError, TimeoutError):
    """No connection to the store within the bounded wait.

    Deliberately neither the library's OperationalError nor InterfaceError: its
    `@retry` catches those and would wait the pool's timeout nine more times. A
    PersistenceError, so the API answers 503; a TimeoutError (so an OSError),
    so the followers count it among infrastructure failures.
    """


POOL_SIZES = {"web": (10, 20), "worker": (3, 3)}
"""PostgreSQL connections per process role: (kept open, extra under a burst)."""

SQLITE_POOL_SIZES = {"web": (16, 160), "worker": (5, 10)}
"""SQLite connections per process role: (kept open, extra under a burst). An SQLite
connection costs no server, so a web process has one for every thread that may
read at once: the library's 5 + 10 made requests queue for a connection (a
fifth of a worker's samples under a cancel load, by py-spy)."""


def size_pool(app: Any, role: str) -> None:
    """Size the SQLite pool of an application for the process's role (the
    library's factory takes no setting for it; PostgreSQL's is in the env)."""
    pool = getattr(getattr(app.factory, "datastore", None), "pool", None)
    if pool is not None and hasattr(pool, "db_name"):  # SQLite's
        pool.pool_size, pool.max_overflow = SQLITE_POOL_SIZES[role]


def eventsourcing_env(database_url: str, *, role: str = "worker") -> dict[str, str]:
    """Map `sqlite:///path` or `postgresql://user:pass@host:port/db` onto the
    library's environment settings, every wait bounded (see "Bounded waits").
    In the URL's query, `pool_size` and `max_overflow` override the defaults of
    the process role (POOL_SIZES); `pool_timeout` and `lock_timeout` (whole
    seconds) override the bounds; `schema` (PostgreSQL)."""
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
            "SQLITE_LOCK_TIMEOUT": query.get("lock_timeout",
                                             str(SQLITE_LOCK_TIMEOUTS[role])),
            "APPLICATION_RECORDER_TOPIC": "application.sqlite:SQLiteApplicationRecorder",
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
            # The library's name for the wait for a pooled connection.
            "POSTGRES_CONNECT_TIMEOUT": query.get("pool_timeout", str(POOL_TIMEOUT)),
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_LOCK_TIMEOUT": query.get("lock_timeout", str(LOCK_TIMEOUT)),
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "5",
            "APPLICATION_RECORDER_TOPIC": "application.postgres:" + (
                "WebPostgresApplicationRecorder" if role == "web"
                else "PostgresApplicationRecorder"),
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
        connect_timeout=CONNECT_TIMEOUT,
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
