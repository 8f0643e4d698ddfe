"""Rebuilding the read models: the whole log replayed into shadow tables, then
switched in for the live ones in one transaction (`DispatchViews.switch_to`).

A rebuild replays every event, so what each event costs is what it costs.
What keeps it near a raw read of the log:

- each event is decoded only as far as the read models need (`Decoder`): its
  stored JSON is parsed and the rows are made from the few fields they hold,
  without building the domain event. An event the fast path does not know
  exactly (another topic, an upcast, an encoding it does not expect, a cipher
  or a compressor) is decoded by the application's mapper and goes through
  `jobs.statements` and `assignments.statements`, as the runner does; the tests
  hold both paths to the same rows for every kind of event;
- the writes of a batch are folded per row (`Writes`): a job created and
  updated in the same batch is one INSERT of its final row, the other updates
  of a row are one UPDATE, and each table's inserts and updates are one
  executemany (SQLite, rows in key order) or one COPY (PostgreSQL). The effect
  is that of running the runner's statements one by one;
- batches of 10,000 events, each written in one transaction with its tracking
  position, as the runner does, while the next one is read and decoded. On
  SQLite they are written by a connection of the rebuild's own with
  `synchronous=NORMAL`: in WAL mode a crash or a power loss cannot corrupt the
  database with it (the WAL is synced before each checkpoint), it can only lose
  the rebuild's last batches, and that connection writes shadow tables only.
  The live read models are written by other connections, and the switch by a
  connection of its own, with the default FULL.
"""

from __future__ import annotations

import json
import json.scanner
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import DataError, JSONTranscoder, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from domain.catalog import format_time
from domain.job import AssignmentStatus, JobStatus
from projections import assignments, jobs
from projections.log import EventLog

BATCH = 10_000
"""Events per transaction of a rebuild."""

Params = tuple[Any, ...]
Stored = tuple[int, str, int, str, "bytes | str | None", "str | None"]
"""A stored event as the rebuild reads it: position, job id (canonical text),
version, topic, and its state (bytes, or text), or the JSON array of its
`FIELDS` (SQLite)."""

FIELDS: dict[str, list[str]] = {
    "smartscheduler.JobCreated": [
        "timestamp", "class_version", "type", "description", "duration_minutes",
        "priority", "region", "required_skills", "location", "window_start", "window_end"],
    "smartscheduler.AssignmentCreated": [
        "timestamp", "class_version", "assignment_id", "contractor_id", "start_utc",
        "end_utc", "region", "job_status"],
    "smartscheduler.AssignmentConfirmed": ["timestamp", "class_version", "assignment_id"],
    "smartscheduler.AssignmentCancelled": [
        "timestamp", "class_version", "assignment_id", "job_status"],
    "smartscheduler.JobStarted": ["timestamp", "class_version", "assignments"],
    "smartscheduler.JobCompleted": ["timestamp", "class_version", "assignments"],
    "smartscheduler.JobCancelled": [
        "timestamp", "class_version", "reason", "reason_code", "cancelled_by"],
}
"""The fields of its stored state the read models need, by topic (and
`class_version`, which must be absent: an upcast event is decoded in full)."""


@dataclass(frozen=True)
class RebuildResult:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# Reading the log ------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-f]{32}").fullmatch


def uuid_text(value: Any) -> str:
    """The canonical text of a UUID stored as hex (SQLite) or given as a UUID."""
    if value.__class__ is str and len(value) == 32 and _HEX(value):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value if isinstance(value, UUID) else UUID(value))


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


def _sqlite_pages(connection: sqlite3.Connection, table: str, size: int,
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


def _postgres_pages(app: EventLog, size: int, after: int = 0) -> Iterator[list[Stored]]:
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


def _parse(text: str) -> list[Any]:
    value, end = _scan(text, 0)
    if end != len(text) or value.__class__ is not list:
        raise Fallback
    return value  # type: ignore[no-any-return]


def _fields(topic: str, state: Any) -> list[Any] | None:
    """The values of the topic's FIELDS in a parsed state; None when the fast
    path cannot take them (the mapper decides, from the stored state)."""
    names = FIELDS.get(topic)
    if names is None or state.__class__ is not dict:
        return None
    try:
        return [state.get(name) if name == "class_version" else state[name]
                for name in names]
    except KeyError:
        return None


# Decoding only what the read models need --------------------------------------------


class Fallback(Exception):
    """The fast path does not know this event exactly: decode it in full."""


_SCALARS = frozenset({str, int, float, bool, type(None)})
_encoder: Any = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_encode = (_encoder(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                    False, False, True) if _encoder is not None else None)


def _dumps(value: Any) -> str:
    """json.dumps(value) with its defaults, its C encoder made once, not per call."""
    if _encode is None:
        return json.dumps(value)
    return "".join(_encode(value, 0))
_decoder: Any = json.JSONDecoder()
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_decoder)
"""json.loads without its checks: (value, end)."""


def _time(value: Any) -> str:
    """`format_time` of a stored `datetime_iso`; in UTC, without the datetime."""
    if value.__class__ is not dict or len(value) != 2 or value.get("_type_") != "datetime_iso":
        raise Fallback
    text = value["_data_"]
    if text.__class__ is str and text[-6:] == "+00:00":
        if len(text) == 32 and text[19] == "." and text[10] == "T":  # isoformat's two
            return text[:26] + "Z"                                   # forms in UTC
        if len(text) == 25 and text[10] == "T":
            return text[:19] + ".000000Z"
    return format_time(datetime.fromisoformat(text))


def _uuid(value: Any) -> str:
    if value.__class__ is not dict or len(value) != 2 or value.get("_type_") != "uuid_hex":
        raise Fallback
    text = value["_data_"]
    if text.__class__ is not str or len(text) != 32 or not _HEX(text):
        raise Fallback
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _scalar(value: Any) -> Any:
    if value.__class__ not in _SCALARS:
        raise Fallback
    return value


def _plain(value: Any) -> Any:
    """The value, when it holds no encoded object (which the mapper would decode)."""
    kind = value.__class__
    if kind in _SCALARS:
        return value
    if kind is list:
        for item in value:
            if item.__class__ is not str:
                _plain(item)
        return value
    if kind is dict and "_type_" not in value:
        for item in value.values():
            _plain(item)
        return value
    raise Fallback


_CREATED = str(JobStatus.CREATED)
_IN_PROGRESS = str(JobStatus.IN_PROGRESS)
_COMPLETED = str(JobStatus.COMPLETED)
_CANCELLED = str(JobStatus.CANCELLED)
_PENDING = str(AssignmentStatus.PENDING)
_A_CONFIRMED = str(AssignmentStatus.CONFIRMED)
_A_CANCELLED = str(AssignmentStatus.CANCELLED)
_A_IN_PROGRESS = str(AssignmentStatus.IN_PROGRESS)
_A_COMPLETED = str(AssignmentStatus.COMPLETED)


class Writes:
    """The writes of a batch, folded per row, with the effect of running the
    read models' statements one by one.

    A row inserted in the batch takes the batch's later updates into its INSERT;
    the updates of any other row fold into one UPDATE (a job's: the last version
    and time, the last status and cancellation given, as its COALESCE does; an
    assignment's: the last status and time). An update before the row's insert
    in the same batch changed nothing (the row was not there, or the insert
    fails), so the insert drops it. A second insert of a row is kept, to fail
    as it would have.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, list[Any]] = {}
        """Job rows by id: the columns of JOB_ROW_INSERT."""
        self.assignments: dict[str, list[Any]] = {}
        self.job_updates: dict[str, list[Any]] = {}
        """By id: version, updated_at, status, cancellation, id (JOB_ROW_UPDATE)."""
        self.assignment_updates: dict[str, list[Any]] = {}
        self.again: list[tuple[str, Params]] = []

    def job(self, row: list[Any]) -> None:
        key = row[0]
        if key in self.jobs:
            self.again.append((JOB_ROW_INSERT, tuple(row)))
            return
        self.job_updates.pop(key, None)
        self.jobs[key] = row

    def job_update(self, key: str, version: int, when: str, status: Any,
                   cancellation: Any = None) -> None:
        row = self.jobs.get(key)
        if row is not None:  # row: ... status 11, cancellation 12, updated_at 14
            row[1], row[14] = version, when
            if status is not None:
                row[11] = status
            if cancellation is not None:
                row[12] = cancellation
            return
        update = self.job_updates.get(key)
        if update is None:
            self.job_updates[key] = [version, when, status, cancellation, key]
            return
        update[0], update[1] = version, when
        if status is not None:
            update[2] = status
        if cancellation is not None:
            update[3] = cancellation

    def assignment(self, row: list[Any]) -> None:
        key = row[0]
        if key in self.assignments:
            self.again.append((assignments.INSERT, tuple(row)))
            return
        self.assignment_updates.pop(key, None)
        self.assignments[key] = row

    def assignment_status(self, key: Any, status: str, when: str) -> None:
        row = self.assignments.get(key)
        if row is not None:  # row: ... status 5, updated_at 8
            row[5], row[8] = status, when
            return
        self.assignment_updates[key] = [status, when, key]

    def add(self, sql: str, params: Params) -> None:
        """A statement of `jobs.statements` or `assignments.statements`."""
        if sql == jobs.UPDATE:
            self.job_update(params[4], params[0], params[1], params[2], params[3])
        elif sql == assignments.SET_STATUS:
            self.assignment_status(params[2], params[0], params[1])
        elif sql == jobs.INSERT:  # its cancellation is NULL in the SQL: a column here
            self.job([*params[:12], None, *params[12:]])
        elif sql == assignments.INSERT:
            self.assignment(list(params))
        else:
            raise ValueError(f"Not a statement of the read models: {sql}")

    def groups(self) -> Iterator[tuple[str, list[Params]]]:
        """(sql, rows) in the order to run them; inserts in key order."""
        if self.jobs:
            yield JOB_ROW_INSERT, [tuple(self.jobs[k]) for k in sorted(self.jobs)]
        if self.assignments:
            yield assignments.INSERT, [tuple(self.assignments[k])
                                       for k in sorted(self.assignments)]
        if self.job_updates:
            yield JOB_ROW_UPDATE, [tuple(row) for row in self.job_updates.values()]
        if self.assignment_updates:
            yield assignments.SET_STATUS, [tuple(row)
                                           for row in self.assignment_updates.values()]
        for sql, params in self.again:
            yield sql, [params]


JOB_ROW_INSERT = jobs.INSERT.replace(", NULL, ", ", ?, ")
"""jobs.INSERT with the cancellation as a parameter (a folded cancel sets it)."""
JOB_ROW_UPDATE = jobs.UPDATE
JOB_COLUMNS = ["id", "version", "type", "description", "duration_minutes", "priority",
               "region", "required_skills", "location", "window_start", "window_end",
               "status", "cancellation", "created_at", "updated_at"]
ASSIGNMENT_COLUMNS = ["id", "job_id", "contractor_id", "start_utc", "end_utc", "status",
                      "region", "created_at", "updated_at"]
assert JOB_ROW_INSERT != jobs.INSERT


class Decoder:
    """Stored events into `Writes`, decoding only what the read models need.

    `state_of(position)` gives the state of an event read without it (SQLite),
    for the rare event the fast path hands to the mapper.
    """

    def __init__(self, app: EventLog, state_of: Callable[[int], bytes] | None = None) -> None:
        mapper = app.mapper
        self.mapper = mapper
        self.state_of = state_of or (lambda position: app.recorder.select_notifications(
            start=position, limit=1, inclusive_of_start=True)[0].state)
        self.fast = (type(mapper.transcoder) is JSONTranscoder
                     and not getattr(mapper, "cipher", None)
                     and not getattr(mapper, "compressor", None))
        self.full_decodes = 0
        """Events decoded by the mapper (for tests and figures)."""
        self._topics: dict[str, Callable[[Writes, list[Any], Stored, str], None]] = {
            "smartscheduler.JobCreated": _created,
            "smartscheduler.AssignmentCreated": _assignment_created,
            "smartscheduler.AssignmentConfirmed": _assignment_confirmed,
            "smartscheduler.AssignmentCancelled": _assignment_cancelled,
            "smartscheduler.JobStarted": _started,
            "smartscheduler.JobCompleted": _completed,
            "smartscheduler.JobCancelled": _cancelled,
        }
        assert set(self._topics) == set(FIELDS)

    def fold(self, stored: Sequence[Stored]) -> Writes:
        """The writes of a batch of stored events."""
        writes = Writes()
        topics = self._topics if self.fast else {}
        for item in stored:
            make = topics.get(item[3])
            if make is not None:
                try:
                    values = _values(item)
                    if values[1] is None:  # no class_version
                        # Made in full before any of it is added: all or nothing.
                        make(writes, values, item, _time(values[0]))
                        continue
                except (Fallback, KeyError, TypeError, ValueError, AttributeError,
                        IndexError, StopIteration):
                    pass
            for sql, params in self.statements(item):
                writes.add(sql, params)
        return writes

    def statements(self, item: Stored) -> list[tuple[str, Params]]:
        """By the application's mapper and the read models' own functions."""
        self.full_decodes += 1
        state = item[4]
        if state is None:
            state = self.state_of(item[0])
        elif isinstance(state, str):  # as the server joined it (_postgres_pages)
            state = state.encode()
        event = self.mapper.to_domain_event(StoredEvent(
            originator_id=UUID(item[1]), originator_version=item[2], topic=item[3],
            state=state))
        return [*jobs.statements(event), *assignments.statements(event)]


def _values(item: Stored) -> list[Any]:
    """The values of the topic's FIELDS, from the JSON array SQLite made or
    from the state (a field it lacks: the mapper decides)."""
    if item[5] is not None:
        return _parse(item[5])
    state = item[4]
    if state is None:
        raise Fallback
    text = state if state.__class__ is str else state.decode()  # type: ignore[union-attr]
    state, end = _scan(text, 0)
    values = _fields(item[3], state) if end == len(text) else None
    if values is None:
        raise Fallback
    return values


# The fast path, topic by topic: what jobs.statements and assignments.statements
# make of an event, from the values of its FIELDS. Each reads everything before
# it writes.

def _created(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    skills, location = v[7], v[8]
    if skills.__class__ is not list:
        raise Fallback
    writes.job([
        item[1], item[2], _scalar(v[2]), _scalar(v[3]), _scalar(v[4]), _scalar(v[5]),
        _scalar(v[6]), _dumps(_plain(skills)),
        None if location is None else _dumps(_plain(location)),
        _time(v[9]), _time(v[10]), _CREATED, None, when, when])


def _assignment_created(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    row = [_uuid(v[2]), item[1], _uuid(v[3]), _time(v[4]), _time(v[5]), _PENDING,
           _scalar(v[6]), when, when]
    status = _scalar(v[7])
    writes.job_update(item[1], item[2], when, status and str(status))
    writes.assignment(row)


def _assignment_confirmed(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    key = _uuid(v[2])
    writes.job_update(item[1], item[2], when, None)
    writes.assignment_status(key, _A_CONFIRMED, when)


def _assignment_cancelled(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    key = _uuid(v[2])
    status = _scalar(v[3])
    writes.job_update(item[1], item[2], when, status and str(status))
    writes.assignment_status(key, _A_CANCELLED, when)


def _refs(refs: Any) -> list[Any]:
    if refs.__class__ is not list:
        raise Fallback
    _plain(refs)
    return [ref["assignmentId"] for ref in refs]


def _started(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    refs = _refs(v[2])
    writes.job_update(item[1], item[2], when, _IN_PROGRESS)
    for ref in refs:
        writes.assignment_status(ref, _A_IN_PROGRESS, when)


def _completed(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    refs = _refs(v[2])
    writes.job_update(item[1], item[2], when, _COMPLETED)
    for ref in refs:
        writes.assignment_status(ref, _A_COMPLETED, when)


def _cancelled(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    cancellation = _dumps({"reason": _scalar(v[2]), "reasonCode": _scalar(v[3]),
                           "cancelledBy": _scalar(v[4]), "cancelledAt": when})
    writes.job_update(item[1], item[2], when, _CANCELLED, cancellation)


# The rebuild -----------------------------------------------------------------------


def rebuild(app: EventLog, views: Any, *, batch_size: int = BATCH,
            progress: Callable[[int, int], None] | None = None) -> RebuildResult:
    """Replay the whole log into new tables, then switch them in for the live ones.

    The live read models keep serving (and being kept) meanwhile; the switch is
    one transaction. `progress(done, head)` is called after every batch.
    """
    began = time.perf_counter()
    shadow = views.shadow()
    shadow.create_empty()
    pool = _sqlite_pool(app.recorder)
    done = 0
    if pool is not None:
        reading, writing = _connect(pool), _connect(pool)
        table = cast(SQLiteApplicationRecorder, app.recorder).events_table_name
        decoder = Decoder(app, lambda position: reading.execute(
            f"SELECT state FROM {table} WHERE rowid = ?", (position,)).fetchone()[0])
        try:
            pages = _sqlite_pages(reading, table, batch_size, extract=decoder.fast)
            done = _write_all(pages, decoder, _sqlite_writer(writing, shadow),
                              _head(app), progress)
        finally:
            reading.close()
            writing.close()
    else:
        decoder = Decoder(app)
        pages = (_postgres_pages(app, batch_size)
                 if decoder.fast and hasattr(app.recorder, "max_settled_notification_id")
                 else read_pages(app, batch_size))
        done = _write_all(pages, decoder, _writer(shadow),
                          _head(app), progress)
    views.switch_to(shadow, app)
    return RebuildResult(done, time.perf_counter() - began)


Writer = Callable[[Writes, int, int], None]


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


def _sqlite_pool(recorder: Any) -> Any:
    pool = getattr(getattr(recorder, "datastore", None), "pool", None)
    return pool if hasattr(pool, "db_name") else None


def _connect(pool: Any) -> sqlite3.Connection:
    """The rebuild's own connection (see the module's docstring)."""
    connection = sqlite3.connect(pool.db_name, uri=True, isolation_level=None,
                                 timeout=pool.lock_timeout or 30, check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")  # this connection's commits only
    connection.execute("PRAGMA cache_size=-65536")
    return connection


def _sqlite_writer(connection: sqlite3.Connection, shadow: Any) -> Writer:
    def write(writes: Writes, first: int, last: int) -> None:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in writes.groups():
                cursor.executemany(shadow._sql(sql), rows)
            shadow._advance(cursor, first, last)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    return write


def _writer(shadow: Any) -> Writer:
    """Through the read models' own transactions. On PostgreSQL each group of a
    batch is one statement that reads its rows from one JSON parameter (the
    rows encoded by Python's C encoder, parsed by the server): the server's
    work overlaps the decoding of the next batch, where psycopg's pure-Python
    COPY or executemany would hold the interpreter row by row."""
    if not hasattr(shadow, "_schema"):
        def write_plain(writes: Writes, first: int, last: int) -> None:
            with shadow._transaction(commit=True) as c:
                for sql, rows in writes.groups():
                    c.executemany(shadow._sql(sql), shadow._storable(rows))
                shadow._advance(c, first, last)
        return write_plain

    sets = {sql: statement.format(jobs=shadow._table(jobs.TABLE),
                                  assignments=shadow._table(assignments.TABLE))
            for sql, statement in _POSTGRES_SETS.items()}

    def write(writes: Writes, first: int, last: int) -> None:
        with shadow._transaction(commit=True) as c:
            for sql, rows in writes.groups():
                statement = sets.get(sql)
                if statement is None or len(rows) == 1:
                    c.executemany(shadow._sql(sql), shadow._storable(rows))
                    continue
                payload = _dumps(rows)
                if "\\u0000" in payload:  # text cannot hold NUL (see _storable)
                    payload = _dumps(shadow._storable(rows))
                c.execute(statement, (payload,))
            shadow._advance(c, first, last)

    return write


def _columns(*kinds: str) -> str:
    """The columns of a JSON array's elements, cast as the runner's parameters
    would be (a number for an INTEGER column arrives as float8 or integer)."""
    return ", ".join(f"(r ->> {i})::{kind}" if kind != "text" else f"r ->> {i}"
                     for i, kind in enumerate(kinds))


_POSTGRES_SETS = {
    JOB_ROW_INSERT: (
        f"INSERT INTO {{jobs}} ({', '.join(JOB_COLUMNS)}) SELECT "
        + _columns("text", "integer", "text", "text", "float8::integer", *["text"] * 10)
        + " FROM jsonb_array_elements(%s::jsonb) AS r"),
    assignments.INSERT: (
        f"INSERT INTO {{assignments}} ({', '.join(ASSIGNMENT_COLUMNS)}) SELECT "
        + _columns(*["text"] * 9) + " FROM jsonb_array_elements(%s::jsonb) AS r"),
    JOB_ROW_UPDATE: (  # one source row per job: Writes folds a batch's updates
        "UPDATE {jobs} AS t SET version = u.version, updated_at = u.updated_at, "
        "status = coalesce(u.status, t.status), "
        "cancellation = coalesce(u.cancellation, t.cancellation) FROM (SELECT "
        "(r ->> 0)::integer AS version, r ->> 1 AS updated_at, r ->> 2 AS status, "
        "r ->> 3 AS cancellation, r ->> 4 AS id FROM jsonb_array_elements(%s::jsonb) AS r"
        ") AS u WHERE t.id = u.id"),
    assignments.SET_STATUS: (
        "UPDATE {assignments} AS t SET status = u.status, updated_at = u.updated_at "
        "FROM (SELECT r ->> 0 AS status, r ->> 1 AS updated_at, r ->> 2 AS id "
        "FROM jsonb_array_elements(%s::jsonb) AS r) AS u WHERE t.id = u.id"),
}
"""The statements of PostgreSQL's batches, by the statement they stand for."""
