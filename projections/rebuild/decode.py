"""Decoding stored events into the read models' writes, for a rebuild.

Part of the fast rebuild of the read models (`projections.rebuild`): the
`Decoder` turns each page of stored events (`projections.rebuild.pages`) into
folded `Writes` (`projections.rebuild.fold`). An event it knows exactly is made
into rows straight from the values of its stored `FIELDS`, one function per
topic below, without building the domain event (`projections.rebuild.fields`);
any other (another topic, an upcast, an encoding it does not expect, a cipher or
a compressor) is decoded by the application's mapper and goes through
`jobs.statements` and `assignments.statements`, as the runner does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, StoredEvent

from domain.values import AssignmentStatus, JobStatus
from projections import assignments, jobs
from projections.log import EventLog
from projections.rebuild.fields import (
    FIELDS,
    Fallback,
    dumps,
    fields_of,
    parse_fields,
    plain,
    scalar,
    scan,
    stored_time,
    stored_uuid,
)
from projections.rebuild.fold import Params, Writes
from projections.rebuild.pages import Stored

_CREATED = str(JobStatus.CREATED)
_IN_PROGRESS = str(JobStatus.IN_PROGRESS)
_COMPLETED = str(JobStatus.COMPLETED)
_CANCELLED = str(JobStatus.CANCELLED)
_PENDING = str(AssignmentStatus.PENDING)
_A_CONFIRMED = str(AssignmentStatus.CONFIRMED)
_A_CANCELLED = str(AssignmentStatus.CANCELLED)
_A_IN_PROGRESS = str(AssignmentStatus.IN_PROGRESS)
_A_COMPLETED = str(AssignmentStatus.COMPLETED)


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
                        make(writes, values, item, stored_time(values[0]))
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
        elif isinstance(state, str):  # as the server joined it (postgres_pages)
            state = state.encode()
        event = self.mapper.to_domain_event(StoredEvent(
            originator_id=UUID(item[1]), originator_version=item[2], topic=item[3],
            state=state))
        return [*jobs.statements(event), *assignments.statements(event)]


def _values(item: Stored) -> list[Any]:
    """The values of the topic's FIELDS, from the JSON array SQLite made or
    from the state (a field it lacks: the mapper decides)."""
    if item[5] is not None:
        return parse_fields(item[5])
    state = item[4]
    if state is None:
        raise Fallback
    text = state if state.__class__ is str else state.decode()  # type: ignore[union-attr]
    state, end = scan(text, 0)
    values = fields_of(item[3], state) if end == len(text) else None
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
        item[1], item[2], scalar(v[2]), scalar(v[3]), scalar(v[4]), scalar(v[5]),
        scalar(v[6]), dumps(plain(skills)),
        None if location is None else dumps(plain(location)),
        stored_time(v[9]), stored_time(v[10]), _CREATED, None, when, when])


def _assignment_created(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    row = [stored_uuid(v[2]), item[1], stored_uuid(v[3]), stored_time(v[4]),
           stored_time(v[5]), _PENDING, scalar(v[6]), when, when]
    status = scalar(v[7])
    writes.job_update(item[1], item[2], when, status and str(status))
    writes.assignment(row)


def _assignment_confirmed(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    key = stored_uuid(v[2])
    writes.job_update(item[1], item[2], when, None)
    writes.assignment_status(key, _A_CONFIRMED, when)


def _assignment_cancelled(writes: Writes, v: list[Any], item: Stored, when: str) -> None:
    key = stored_uuid(v[2])
    status = scalar(v[3])
    writes.job_update(item[1], item[2], when, status and str(status))
    writes.assignment_status(key, _A_CANCELLED, when)


def _refs(refs: Any) -> list[Any]:
    if refs.__class__ is not list:
        raise Fallback
    plain(refs)
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
    cancellation = dumps({"reason": scalar(v[2]), "reasonCode": scalar(v[3]),
                          "cancelledBy": scalar(v[4]), "cancelledAt": when})
    writes.job_update(item[1], item[2], when, _CANCELLED, cancellation)

