"""The PostgreSQL recorder: the library's, with every wait bounded, and appends
that do not hold a table lock through their commit.

`application.persistence` names this module's recorders in the factory's
settings (APPLICATION_RECORDER_TOPIC). Each adds one layer to the library's:

- `application.postgres_appends`: appends serialised only up to their INSERT,
  under an advisory lock, each row with its transaction's id (xid8);
- `application.postgres_settled`: reads and a subscription that return settled
  rows only (below the snapshot's xmin), so a follower never skips nor repeats;
- `application.postgres_bounded` and here: every wait bounded (the datastore's,
  adopted before its pool opens) and fast failures retried.

See "Bounded waits" in `application.persistence` for the figures and why, and
"Appends without a table lock" in docs/architecture.md for the proof that a
follower still never skips nor repeats an event.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder as _PostgresApplicationRecorder
from eventsourcing.postgres import PostgresDatastore

from application.persistence import STATEMENT_TIMEOUTS
from application.postgres_bounded import BoundedPostgresDatastore, retry_fast_failures
from application.postgres_settled import PostgresSettledRecorder


class PostgresApplicationRecorder(PostgresSettledRecorder):
    """The library's PostgreSQL recorder with every wait bounded (see above), its
    appends serialised only up to their INSERT, and its reads settled."""

    statement_timeout: float | None = STATEMENT_TIMEOUTS["worker"]

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        datastore = BoundedPostgresDatastore.adopt(
            datastore, statement_timeout=self.statement_timeout)
        super().__init__(datastore, **kwargs)

    select_events = retry_fast_failures(_PostgresApplicationRecorder.select_events)
    max_notification_id = retry_fast_failures(
        _PostgresApplicationRecorder.max_notification_id)
    """The largest committed notification id: every append committed before the
    call is at or below it, so read-your-writes waits for it. Rows below it may
    still be in flight: a follower starts from `max_settled_notification_id`."""

    def check_writable(self) -> None:
        """Nothing to add on PostgreSQL: reading the head needs a connection."""


class WebPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The recorder of a process that serves requests: statements are limited too."""

    statement_timeout = STATEMENT_TIMEOUTS["web"]
