"""Reading the log for a rebuild, page by page, as `Stored` tuples.

Part of the fast rebuild of the read models (`projections.rebuild`), which
decodes each page (`projections.rebuild.decode`) while the previous one is
written. Three readers, one per kind of store: `read_pages`, through the
recorder's `select_notifications` (any store); `sqlite_pages`, straight from an
SQLite table with the `FIELDS` taken out by SQLite's JSON functions; and
`postgres_pages`, whole pages joined into two texts by the PostgreSQL server up
to its settled head. Each falls back to reading event by event when a page is
not what it expects, and the decoder decides.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from eventsourcing.persistence import DataError

from projections.log import EventLog
from projections.rebuild.fields import FIELDS, uuid_text

Stored = tuple[int, str, int, str, "bytes | str | None", "str | None"]
"""A stored event as the rebuild reads it: position, job id (canonical text),
version, topic, and its state (bytes, or text), or the JSON array of its
`FIELDS` (SQLite)."""


def read_pages(app: EventLog, size: int, after: int = 0) -> Iterator[list[Stored]]:
    """The log after `after`, page by page, through the recorder's
    `select_notifications` (whatever it guarantees: on PostgreSQL, only rows no
    transaction in flight can still come before)."""
    while True:
        notifications = app.recorder.select_notifications(
            start=after, limit=size, inclusive_of_start=False)
        if not notifications:
            return
        yield [(n.id, str(n.originator_id), n.originator_version, n.topic, n.state, None)
               for n in notifications]
        after = notifications[-1].id


def sqlite_pages(connection: sqlite3.Connection, table: str, size: int,
                  after: int = 0, *, extract: bool = True) -> Iterator[list[Stored]]:
    """The log of an SQLite store, page by page, straight from its table: one
    writer at a time commits in id order, so a page is always a prefix of what
    will ever be committed.

    SQLite's JSON functions take the `FIELDS` of each event out of its state in
    one parse (json_extract with many paths gives a JSON array), so Python
    parses that short array, not the whole state; the state itself comes only
    for another topic (or for a page whose JSON SQLite refuses).
    """
    known = ", ".join(f"'{topic}'" for topic in FIELDS)
    fields = " ".join(
        f"WHEN '{topic}' THEN json_extract(state, {', '.join(repr(f'$.{f}') for f in names)})"
        for topic, names in FIELDS.items())
    columns = "rowid, originator_id, originator_version, topic"
    extracting = (f"SELECT {columns}, CASE WHEN topic NOT IN ({known}) THEN state END, "
                  f"CASE topic {fields} END FROM {table} WHERE rowid > ? "
                  "ORDER BY rowid LIMIT ?")
    plain = f"SELECT {columns}, state, NULL FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    while True:
        try:
            rows = connection.execute(extracting if extract else plain,
                                      (after, size)).fetchall()
        except sqlite3.OperationalError:  # malformed JSON: Python decides, event by event
            rows = connection.execute(plain, (after, size)).fetchall()
        if not rows:
            return
        yield [(row[0], uuid_text(row[1]), row[2], row[3], row[4], row[5]) for row in rows]
        after = rows[-1][0]


def postgres_pages(app: EventLog, size: int, after: int = 0) -> Iterator[list[Stored]]:
    """The log of a PostgreSQL store up to its settled head, page by page, each
    page as two texts the server joins: the events' positions, job ids, versions
    and topics, and their states as stored (JSON never holds U+001E, the
    separator). Splitting them is C work, where fetching rows would be work per
    value (psycopg here is its pure-Python build). Needs the recorder's
    `max_settled_notification_id` (no row at or below it can commit later);
    without it, `read_pages`. A page the server cannot join (a state that is
    not UTF-8 text) or that does not split evenly is read by `read_pages`.
    """
    from psycopg import Error as PsycopgError
    from psycopg.sql import SQL, Identifier

    # PostgreSQL's recorder, with `max_settled_notification_id` (application.postgres).
    recorder: Any = app.recorder
    table = SQL("{}.{}").format(Identifier(recorder.datastore.schema),
                                Identifier(recorder.events_table_name))
    statement = SQL(
        "SELECT count(*) AS n, "
        "string_agg(notification_id || ' ' || originator_id || ' ' || originator_version "
        "|| ' ' || topic, E'\\x1e' ORDER BY notification_id) AS heads, "
        "string_agg(convert_from(state, 'UTF8'), E'\\x1e' ORDER BY notification_id) "
        "AS states FROM (SELECT notification_id, originator_id, originator_version, topic, "
        "state FROM {table} WHERE notification_id > %s AND notification_id <= %s "
        "ORDER BY notification_id LIMIT %s) AS page"
    ).format(table=table)
    settled = recorder.max_settled_notification_id() or 0
    while True:
        if after >= settled:
            settled = recorder.max_settled_notification_id() or 0
            if after >= settled:
                return
        page: list[Stored] | None = None
        try:
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(statement, (after, settled, size))
                row = curs.fetchone()
            if row is None or not row["n"]:
                return
            heads, states = row["heads"].split("\x1e"), row["states"].split("\x1e")
            if len(heads) == len(states) == row["n"]:
                page = []
                for head, state in zip(heads, states, strict=True):
                    position, job, version, topic = head.split(" ", 3)
                    page.append((int(position), job, int(version), topic, state, None))
        except (PsycopgError, DataError, ValueError):
            pass
        if page is None:  # Python decides, event by event
            page = [(n.id, str(n.originator_id), n.originator_version, n.topic, n.state,
                     None) for n in recorder.select_notifications(
                         start=after, stop=settled, limit=size, inclusive_of_start=False)]
        if not page:
            return
        yield page
        after = page[-1][0]
