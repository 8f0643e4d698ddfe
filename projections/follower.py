"""A worker that follows the event store's log from a position it records."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from eventsourcing.persistence import InterfaceError, Notification, OperationalError

from projections.status import Failure, describe_error

log = logging.getLogger(__name__)

OUTAGE_BACKOFF = 2.0
"""Longest wait between tries while the store or Redis fails (an event that fails
is retried up to the follower's max_backoff)."""


class FailureRecord(Protocol):
    def record_failure(self, name: str, failure: Failure | None) -> None: ...


def batches(subscription: Any, max_size: int) -> Iterator[list[Notification]]:
    """Group what a subscription has already fetched, without waiting for more."""
    for notification in subscription:
        batch = [notification]
        # ListenNotifySubscription fetches pages; take the rest of the page at once.
        while (len(batch) < max_size
               and subscription._notifications_index < len(subscription._notifications)):
            batch.append(next(subscription))
        yield batch


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

    Subclasses say where they are (`position`) and what a batch means (`handle`).
    A failure is retried from the recorded position with a growing back-off, so
    the position stays honest and nothing is skipped. A batch that fails for a
    reason other than the infrastructure is applied again one event at a time,
    up to the event that fails: that event and the error are logged once, kept
    in `failure` and recorded for every process to see (projections.status).
    """

    name = "follower"
    infrastructure_errors: tuple[type[BaseException], ...] = (
        OperationalError, InterfaceError, OSError)
    """Failures of a server or the network, not of an event: logged without a traceback."""

    def __init__(self, app: Any, *, batch_size: int = 500, max_backoff: float = 30.0,
                 status: FailureRecord | None = None) -> None:
        self.app = app
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.status = status
        self.failure: Failure | None = None
        self.last_error: BaseException | None = None
        self._stopping = threading.Event()
        self._subscription: Any = None
        self._thread: threading.Thread | None = None

    def position(self) -> int:
        raise NotImplementedError

    def handle(self, notifications: list[Notification]) -> bool:
        """Act on a batch; False to follow again from the recorded position."""
        raise NotImplementedError

    def start(self) -> Any:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._subscription is not None:
            self._subscription.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Follow the log until stopped."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._follow()
                backoff = 0.1
            except EventFailed as failed:
                self._failed(failed.error, failed.notification, backoff)
                limit = self.max_backoff
            except Exception as error:  # keep following; see the class docstring
                self._failed(error, None, backoff)
                # An outage: look again soon, so service is back soon after the store.
                limit = min(self.max_backoff, OUTAGE_BACKOFF)
            else:
                continue
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, limit)

    def check(self) -> None:
        """Raise when what the follower writes to is unreachable (before following)."""

    def _follow(self) -> None:
        subscription = self.app.recorder.subscribe(gt=self.position())
        self._subscription = subscription
        with subscription:
            if self._stopping.is_set():
                return
            self.check()
            if self.failure is not None and self.failure.position is None:
                self._recovered(self.position() + 1)  # an outage, now over
            for batch in batches(subscription, self.batch_size):
                if not self._handle(batch):
                    return
                if self.failure is not None:
                    self._recovered(batch[0].id)

    def _handle(self, batch: list[Notification]) -> bool:
        try:
            return self.handle(batch)
        except self.infrastructure_errors:
            raise
        except Exception as error:
            if len(batch) == 1:
                raise EventFailed(batch[0], error) from error
        for notification in batch:  # find the event that fails, applying those before it
            try:
                if not self.handle([notification]):
                    return False
            except self.infrastructure_errors:
                raise
            except Exception as error:
                raise EventFailed(notification, error) from error
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
