"""A batch of events as the read models' SQL: each model's statements, grouped
for executemany without changing what they do, and the decoding of stored
notifications into (event, tracking position) pairs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from eventsourcing.persistence import Notification, Tracking

from projections import assignments, jobs
from projections.log import EventLog

Params = tuple[Any, ...]

# The row each write of the read models touches: its table, and where the row's
# key sits in the statement's parameters. `grouped` reorders only these writes.
ROW_KEYS: dict[str, tuple[str, int]] = {
    jobs.INSERT: (jobs.TABLE, 0),
    jobs.UPDATE: (jobs.TABLE, -1),
    assignments.INSERT: (assignments.TABLE, 0),
    assignments.SET_STATUS: (assignments.TABLE, -1),
}


def statements(events: Sequence[tuple[Any, Tracking]]) -> Iterator[tuple[str, Params]]:
    """The statements of every read model for the events, in their order."""
    for event, _ in events:
        yield from jobs.statements(event)
        yield from assignments.statements(event)


def grouped(statements: Iterable[tuple[str, Params]]) -> Iterator[tuple[str, list[Params]]]:
    """The statements as (sql, rows) groups for executemany, with the same effect.

    Statements are grouped by their SQL; the groups run in the order of their
    first statements, each group's rows in their own order. Each statement
    writes one row (its primary key, by ROW_KEYS) and no other, so this equals
    running them one by one unless a row is written by a group that runs after
    the group of a later write to the same row. Such a statement, and any
    statement not in ROW_KEYS, starts a new set of groups, so the rows' own
    sequences of writes never change.
    """
    groups: dict[str, list[Params]] = {}  # in the order they run
    ranks: dict[str, int] = {}  # sql -> its place in that order
    last: dict[tuple[str, Any], int] = {}  # row -> rank of the group that last wrote it
    for sql, params in statements:
        key = ROW_KEYS.get(sql)
        if key is None:
            yield from groups.items()
            groups, ranks, last = {}, {}, {}
            yield sql, [params]
            continue
        row = (key[0], params[key[1]])
        rank = ranks.get(sql)
        if rank is None:
            rank = ranks[sql] = len(ranks)
            groups[sql] = [params]
        elif last.get(row, rank) > rank:
            yield from groups.items()
            groups, ranks, last = {sql: [params]}, {sql: 0}, {}
            rank = 0
        else:
            groups[sql].append(params)
        last[row] = rank
    yield from groups.items()


def decode(app: EventLog, notifications: Sequence[Notification],
           tracking_name: str) -> list[tuple[Any, Tracking]]:
    """Domain events from stored notifications, each with its tracking position."""
    to_event = app.mapper.to_domain_event
    return [(to_event(n), Tracking(tracking_name, n.id)) for n in notifications]
