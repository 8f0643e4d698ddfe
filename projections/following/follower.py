"""A worker that follows the event store's log from a position it records."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from eventsourcing.persistence import InterfaceError, Notification, OperationalError

from projections.following.backoff import OUTAGE_BACKOFF, Backoff
from projections.following.entries import Entry
from projections.following.reader import LogReader
from projections.following.status import Failure, describe_error
from projections.log import EventLog

log = logging.getLogger("projections.follower")  # the followers', as it always was


POLL = 0.25
"""Seconds a follower reading on its own waits before looking again, when it
found nothing new (only while the shared reader fails)."""


class FailureRecord(Protocol):
    def record_failure(self, name: str, failure: Failure | None) -> None: ...


class EventFailed(Exception):
    """Raised when one event, not the infrastructure, is what a follower fails on."""

    def __init__(self, notification: Notification, error: Exception) -> None:
        super().__init__(str(error))
        self.notification = notification
        self.error = error


def event_type_of(notification: Notification) -> str:
    return notification.topic.rpartition(".")[2] or notification.topic


class LogFollower:
    """Follows the application's log in batches, in a thread, until stopped.

    Subclasses say where they are (`position`) and what a batch of entries means
    (`handle`: each entry has its notification, and its domain event, envelope
    and JSON decoded once for the whole process). The log is read through the
    process's `LogReader`, shared with the other followers of the same
    application: the follower gets what is after its own position, and reads on
    its own while it is behind the others (projections.following.reader).

    A failure is retried from the recorded position with a growing back-off, so
    the position stays honest and nothing is skipped. A batch that fails for a
    reason other than the infrastructure is applied again one event at a time,
    up to the event that fails: that event and the error are logged once, kept
    in `failure` and recorded for every process to see (projections.following.status).
    """

    name = "follower"
    infrastructure_errors: tuple[type[BaseException], ...] = (
        OperationalError, InterfaceError, OSError)
    """Failures of a server or the network, not of an event: logged without a traceback."""

    def __init__(self, app: EventLog, *, batch_size: int = 500, max_backoff: float = 30.0,
                 status: FailureRecord | None = None, reader: LogReader | None = None) -> None:
        self.app = app
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.status = status
        self.reader = reader if reader is not None else LogReader.of(app)
        self.failure: Failure | None = None
        self.last_error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def position(self) -> int:
        raise NotImplementedError

    def handle(self, entries: Sequence[Entry]) -> bool:
        """Act on a batch; False to follow again from the recorded position."""
        raise NotImplementedError

    def start(self) -> Any:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand (its position recorded with it)."""
        self._stopping.set()
        self.reader.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Follow the log until stopped."""
        self.reader.attach(self, self._stopping)
        try:
            self._run()
        finally:
            self.reader.detach(self)

    def _run(self) -> None:
        backoff = Backoff(self.max_backoff)
        while not self._stopping.is_set():
            try:
                self._follow()
                backoff.succeeded()
                continue
            except EventFailed as failed:
                wait = backoff.failed()
                self._failed(failed.error, failed.notification, wait)
            except Exception as error:  # keep following; see the class docstring
                # An outage: look again soon, so service is back soon after the store.
                wait = backoff.failed(min(self.max_backoff, OUTAGE_BACKOFF))
                self._failed(error, None, wait)
            self._stopping.wait(wait)

    def check(self) -> None:
        """Raise when what the follower writes to is unreachable (before following)."""

    def start_after(self, after: int) -> int:
        """Where to follow from, given the recorded position (after `check`)."""
        return after

    def idle(self, after: int) -> bool:
        """Found nothing after `after` for a while: False to follow again from the
        recorded position (what it writes to changed under it)."""
        return True

    def _follow(self) -> None:
        after = self.position()
        if self._stopping.is_set():
            return
        self.check()
        after = self.start_after(after)
        if self.failure is not None and self.failure.position is None:
            self._recovered(after + 1)  # an outage, now over
        reader = self.reader
        while not self._stopping.is_set():
            batch = reader.take(self, after, self.batch_size)
            if batch is None:  # behind the shared window, or the reader fails
                batch = reader.read(self, after, self.batch_size)
                if not batch:
                    reader.pause(after, POLL)
            if not batch:
                if not self._stopping.is_set() and not self.idle(after):
                    return
                continue
            if not self._handle(batch):
                return
            if self.failure is not None:
                self._recovered(batch[0].id)
            after = batch[-1].id

    def _handle(self, batch: Sequence[Entry]) -> bool:
        try:
            return self.handle(batch)
        except self.infrastructure_errors:
            raise
        except Exception as error:
            if len(batch) == 1:
                raise EventFailed(batch[0].notification, error) from error
        for entry in batch:  # find the event that fails, applying those before it
            try:
                if not self.handle([entry]):
                    return False
            except self.infrastructure_errors:
                raise
            except Exception as error:
                raise EventFailed(entry.notification, error) from error
        return True

    def _failed(self, error: BaseException, notification: Notification | None,
                backoff: float) -> None:
        self.last_error = error
        failure = Failure(describe_error(error),
                          None if notification is None else notification.id,
                          None if notification is None else event_type_of(notification),
                          since=time.time())
        if failure.same_as(self.failure):
            assert self.failure is not None
            self.failure = self.failure.again()
            self._record(self.failure)  # the count of attempts, for status
            return  # said already
        self._record(failure)  # first: whoever sees `failure` finds it recorded
        self.failure = failure
        if notification is None:
            log.warning("%s failed (%s); following again from its recorded position in "
                        "%.1fs", self.name, failure.error, backoff,
                        exc_info=not isinstance(error, self.infrastructure_errors))
        else:
            log.error("%s cannot apply event %s (%s of job %s, version %s): %s. Retrying "
                      "with back-off; it resumes by itself once a fix is deployed.",
                      self.name, notification.id, failure.event_type,
                      notification.originator_id, notification.originator_version,
                      failure.error, exc_info=error)

    def _recovered(self, position: int) -> None:
        log.info("%s: going again from position %s.", self.name, position)
        self._record(None)  # first: whoever sees no `failure` finds none recorded
        self.failure = self.last_error = None

    def _record(self, failure: Failure | None) -> None:
        if self.status is None:
            return
        try:
            self.status.record_failure(self.name, failure)
        except Exception as error:  # the store may be what fails: the thread lives on
            log.debug("%s: could not record its status (%s)", self.name, error)
