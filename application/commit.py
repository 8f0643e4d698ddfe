"""Group commit: the concurrent commands of a process share one append.

Each command hands its aggregate's new events to `GroupCommit.save` and waits.
The first to arrive leads: it appends its own events and those of every
command that queued meanwhile in one transaction (one lock, one flush), then
hands the lead to the next command waiting, if any. While one flush is on the
disk the next batch gathers, so the busier the process, the bigger the batch.

Each command still gets its own outcome: when a batch is refused because one of
its aggregates was stale (an optimistic-concurrency conflict), its events are
appended again command by command, so only the stale one fails. A command is
answered only once the transaction that holds its events has committed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import RecordConflictError, Recording

from application.metrics import metrics

MAX_BATCH = 128
"""Commands appended together at most."""


@dataclass
class AppendCount:
    """How many append transactions there were, holding how many events."""

    appends: int = 0
    events: int = 0

    def add(self, events: int) -> None:  # called by one group-commit leader at a time
        self.appends += 1
        self.events += events
        metrics().append_batch_events.observe(events)

    @property
    def events_per_append(self) -> float:
        return self.events / self.appends if self.appends else 0.0


@dataclass(eq=False)
class _Slot:
    aggregate: Any
    events: Sequence[Any]
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    recordings: list[Recording[Any]] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommit:
    """Appends the new events of concurrent commands in shared transactions.

    `record` writes one ProcessingEvent (the application's `_record`, plus what
    follows a save: snapshots and notifications); `on_batch` is told each
    batch's size in events.
    """

    def __init__(self, record: Callable[[ProcessingEvent[Any]], list[Recording[Any]]],
                 *, max_batch: int = MAX_BATCH,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self._record = record
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._leading = False

    def save(self, aggregate: Any) -> list[Recording[Any]]:
        """Append the aggregate's pending events; its recordings, once committed.

        Raises RecordConflictError when the aggregate was stale (its pending
        events are gone then, as after the library's own save).
        """
        slot = _Slot(aggregate, aggregate.collect_events())
        if not slot.events:
            return []
        with self._lock:
            self._queue.append(slot)
            if not self._leading:
                self._leading = slot.leads = True
        if not slot.leads:
            slot.done.wait()
        if slot.leads:
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.recordings

    def _lead(self) -> None:
        with self._lock:
            batch = self._queue[:self._max_batch]
            del self._queue[:self._max_batch]
        try:
            self._append(batch)
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is not None:
                    successor.leads = True
                else:
                    self._leading = False
            for slot in batch:
                slot.done.set()
            if successor is not None:
                successor.done.set()

    def _append(self, batch: list[_Slot]) -> None:
        together, alone = _without_repeats(batch)
        try:
            self._write(together)
        except RecordConflictError:
            alone = together + alone  # find the stale ones: each on its own
        except BaseException as error:  # the store failed: it failed for all of them
            for slot in batch:
                slot.error = _own_copy(error)
            return
        for slot in alone:
            try:
                self._write([slot])
            except BaseException as error:
                slot.error = error

    def _write(self, slots: list[_Slot]) -> None:
        if not slots:
            return
        processing = ProcessingEvent[Any]()
        for slot in slots:  # as collect_events would, without its Protocol checks
            processing.events.extend(slot.events)
            processing.aggregates[slot.aggregate.id] = slot.aggregate
        recordings = self._record(processing)
        if self._on_batch is not None:
            self._on_batch(len(recordings))
        by_aggregate: dict[Any, list[Recording[Any]]] = {}
        for recording in recordings:
            by_aggregate.setdefault(recording.domain_event.originator_id, []).append(
                recording)
        for slot in slots:
            slot.recordings = by_aggregate.get(slot.aggregate.id, [])


def _own_copy(error: BaseException) -> BaseException:
    """The error for one waiting command: raised in many threads, one shared
    exception would gather every thread's traceback on top of the others'."""
    try:
        mine = copy.copy(error)
    except Exception:  # an exception that cannot be copied is raised as it is
        return error
    mine.__cause__ = error
    return mine


def _without_repeats(batch: list[_Slot]) -> tuple[list[_Slot], list[_Slot]]:
    """The slots whose aggregates appear once, and the later repeats (at most one
    of two commands on one aggregate can succeed; they go on their own)."""
    seen: set[Any] = set()
    once: list[_Slot] = []
    repeats: list[_Slot] = []
    for slot in batch:
        (repeats if slot.aggregate.id in seen else once).append(slot)
        seen.add(slot.aggregate.id)
    return once, repeats
