"""A worker that follows the event store's log from a position it records."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from eventsourcing.persistence import Notification

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


class LogFollower:
    """Follows the application's log in batches, in a thread, until stopped.

    Subclasses say where they are (`position`) and what a batch means (`handle`).
    A failure is logged and the log is followed again from the recorded position
    after a back-off, so the position stays honest and nothing is skipped.
    """

    name = "follower"
    quiet_errors: tuple[type[BaseException], ...] = ()
    """Expected failures (an outage), logged without a traceback."""

    def __init__(self, app: Any, *, batch_size: int = 500, max_backoff: float = 30.0) -> None:
        self.app = app
        self.batch_size = batch_size
        self.max_backoff = max_backoff
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
            except Exception as error:  # keep following; see the class docstring
                self._failed(error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _follow(self) -> None:
        subscription = self.app.recorder.subscribe(gt=self.position())
        self._subscription = subscription
        with subscription:
            if self._stopping.is_set():
                return
            for batch in batches(subscription, self.batch_size):
                if not self.handle(batch):
                    return
                if self.last_error is not None:
                    log.info("%s: going again from position %s.", self.name, batch[0].id)
                    self.last_error = None

    def _failed(self, error: BaseException, backoff: float) -> None:
        self.last_error, previous = error, self.last_error
        if previous is not None and type(previous) is type(error):
            return  # said already
        try:
            position: int | str = self.position()
        except Exception:  # the store is failing too: the thread must live on
            position = "the recorded one"
        log.warning("%s failed (%s); following again from position %s in %.1fs",
                    self.name, error, position, backoff,
                    exc_info=not isinstance(error, self.quiet_errors))
