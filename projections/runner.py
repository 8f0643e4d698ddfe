"""Keeps the read models up to date by following the event store's log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from projections.views import DispatchViews

log = logging.getLogger(__name__)


def batches(subscription: Any, max_size: int) -> Iterator[list[Notification]]:
    """Group what a subscription has already fetched, without waiting for more."""
    for notification in subscription:
        batch = [notification]
        # ListenNotifySubscription fetches pages; take the rest of the page at once.
        while (len(batch) < max_size
               and subscription._notifications_index < len(subscription._notifications)):
            batch.append(next(subscription))
        yield batch


class ViewsRunner:
    """Follows the application's log and applies new events to the read models.

    A failing batch is logged and retried from the recorded position after a
    back-off, so the position stays honest and nothing is skipped.
    """

    def __init__(self, app: Any, views: DispatchViews, *, batch_size: int = 500,
                 max_backoff: float = 30.0) -> None:
        self.app = app
        self.views = views
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.last_error: BaseException | None = None
        self._stopping = threading.Event()
        self._subscription: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> ViewsRunner:
        self._thread = threading.Thread(target=self.run, name="views-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        subscription = self._subscription
        if subscription is not None:
            subscription.stop()
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
            except Exception as error:  # keep following: the position stays honest
                self.last_error = error
                log.exception("Read models failed at position %s; retrying in %.1fs",
                              self.views.position(), backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _follow(self) -> None:
        subscription = self.app.recorder.subscribe(gt=self.views.position())
        self._subscription = subscription
        with subscription:
            if self._stopping.is_set():
                return
            for batch in batches(subscription, self.batch_size):
                try:
                    self.views.process(decode(self.app, batch, self.views.tracking_name))
                except IntegrityError:
                    if self.views.position() < batch[-1].id:
                        raise
                    # Another runner applied this batch first: follow on from there.
                    return
                self.last_error = None


def decode(app: Any, notifications: list[Notification],
           tracking_name: str) -> list[tuple[Any, Tracking]]:
    to_event = app.mapper.to_domain_event
    return [(to_event(n), Tracking(tracking_name, n.id)) for n in notifications]


@dataclass(frozen=True)
class RebuildResult:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(app: Any, views: DispatchViews, *, batch_size: int = 1000,
            progress: Callable[[int, int], None] | None = None) -> RebuildResult:
    """Empty the read models and replay the whole log into them.

    `progress(done, head)` is called after every batch.
    """
    began = time.perf_counter()
    views.reset()
    head = app.recorder.max_notification_id() or 0
    position, done = 0, 0
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch_size, inclusive_of_start=False)
        if not notifications:
            break
        views.process(decode(app, list(notifications), views.tracking_name))
        position = notifications[-1].id
        done += len(notifications)
        if progress:
            progress(done, max(head, position))
    return RebuildResult(done, time.perf_counter() - began)
