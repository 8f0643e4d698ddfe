"""Bounded waits on PostgreSQL: the datastore and the retries of the recorder.

Part of the PostgreSQL recorder (`application.postgres`): the library's
datastore with the waits no setting reaches bounded (`BoundedPostgresDatastore`:
connecting, reconnecting, waiting for a pooled connection, each statement), and
`retry_fast_failures`, which retries a recorder's call only while it is young
(a stale connection), never a wait that timed out. See "Bounded waits" in
`application.persistence` for the figures and why.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection
from psycopg.sql import SQL, Literal

from application.persistence import (
    CONNECT_TIMEOUT,
    LIBPQ_KEEPALIVES,
    MAX_WAITING,
    RECONNECT_TIMEOUT,
    RETRY_WAIT,
    RETRY_WINDOW,
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



_Method = TypeVar("_Method", bound=Callable[..., Any])


def retry_fast_failures(method: _Method) -> _Method:
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
