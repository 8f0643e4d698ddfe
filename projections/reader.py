"""One reader of the log per process, shared by the followers that run in it.

The read models, the relay and the realtime hub each follow the whole log. In
one process they share a `LogReader`: one subscription reads each page of the
log once into a window of recent entries, and each entry is decoded at most
once (its domain event, and its envelope and JSON when a consumer asks for
them), whichever consumer asks first.

Each consumer (a `LogFollower`) keeps its own thread, its own recorded position
and its own failures: it asks the reader for what is after *its* position, and
applies it its own way (the read models and the relay commit their position
with their effects). Nobody waits for anybody:

- the reader reads on demand, as soon as one consumer waits for what is newer
  than the window, so the fastest consumer is never held back by a slower one;
- the window keeps at most `window` entries, and only those a consumer inside it
  has not taken yet; a consumer that falls out of it (it was stopped, restarted
  far behind, or failed and retried with back-off while the others went on)
  reads on its own from the store, page by page, until it is back inside the
  window, and then shares again. So catching up costs what it always did, and
  the steady state (everybody near the head) costs one read and one decode.
- while the reader itself fails (the store is down), every consumer reads on its
  own: each sees the store's state itself, and handles an outage as before.

The window holds every notification after `low` up to `top`, in order: the
reader's subscription starts after a consumer's position, never ahead of it,
so it relies on no density of ids (PostgreSQL may skip some).
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from eventsourcing.persistence import Notification

from projections.backoff import Backoff
from projections.envelopes import envelope
from projections.log import EventLog
from projections.status import describe_error

log = logging.getLogger(__name__)

WINDOW = 4096
"""Entries a reader keeps at most for the consumers behind the newest one."""

KEEP = 256
"""Entries a reader keeps even once every consumer took them: for one that joins,
or retries a batch, just behind the others."""

PAGE = 1000
"""Notifications the reader appends to its window at most at once."""

_UNSET: Any = object()


def batches(subscription: Any, max_size: int) -> Iterator[list[Notification]]:
    """Group what a subscription has already fetched, without waiting for more."""
    for notification in subscription:
        batch = [notification]
        # ListenNotifySubscription fetches pages; take the rest of the page at once.
        while (len(batch) < max_size
               and subscription._notifications_index < len(subscription._notifications)):
            batch.append(next(subscription))
        yield batch


class Decoder:
    """Decodes entries for every consumer of a process, each entry once."""

    def __init__(self, mapper: Any) -> None:
        self.mapper = mapper
        self.lock = threading.Lock()
        self.decoded = 0
        """Domain events decoded so far (for tests and figures)."""

    def to_event(self, notification: Notification) -> Any:
        event = self.mapper.to_domain_event(notification)
        self.decoded += 1
        return event


class Entry:
    """A notification of the log, with its domain event, envelope and JSON made
    when first asked for, once, whoever asks. A failure to decode is not kept:
    the next ask tries again (a fix may have been deployed meanwhile)."""

    __slots__ = ("_decoder", "_envelope", "_event", "_payload", "id", "notification")

    def __init__(self, notification: Notification, decoder: Decoder) -> None:
        self.notification = notification
        self.id: int = notification.id
        self._decoder = decoder
        self._event: Any = _UNSET
        self._envelope: Any = _UNSET
        self._payload: Any = _UNSET

    @property
    def event(self) -> Any:
        """The domain event."""
        return self._once("_event", lambda: self._decoder.to_event(self.notification))

    @property
    def envelope(self) -> dict[str, Any]:
        """The published envelope (projections.envelopes)."""
        event = self.event  # outside `_once`: its lock is not re-entrant
        return self._once("_envelope",  # type: ignore[no-any-return]
                          lambda: envelope(event, self.id))

    @property
    def payload(self) -> str:
        """The envelope as JSON, as the relay publishes it."""
        item = self.envelope
        return self._once("_payload", lambda: json.dumps(item))  # type: ignore[no-any-return]

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        """The attribute `name`, made by `make` the first time anyone asks."""
        found = getattr(self, name)
        if found is _UNSET:
            with self._decoder.lock:
                found = getattr(self, name)
                if found is _UNSET:
                    found = make()
                    setattr(self, name, found)
        return found

    def __repr__(self) -> str:
        return f"Entry({self.id}, {self.notification.topic})"


class _Cursor:
    """Where a consumer is, as its reader knows it."""

    __slots__ = ("after", "stopping")

    def __init__(self, stopping: threading.Event) -> None:
        self.after: int | None = None
        self.stopping = stopping


class LogReader:
    """The log, read once for the consumers of a process (see the module docstring)."""

    def __init__(self, recorder: Any, mapper: Any, *, window: int = WINDOW,
                 page: int = PAGE, keep: int = KEEP) -> None:
        self.recorder = recorder
        self.decoder = Decoder(mapper)
        self.window = window
        self.page = min(page, window)
        self.keep = min(keep, window)
        self.shared = 0
        """Notifications read into the window (each once)."""
        self.own = 0
        """Notifications consumers read on their own (outside the window)."""
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # consumers wait on it for entries
        self._demand = threading.Condition(lock)  # the reader waits on it for a consumer
        self._entries: list[Entry] = []
        self._ids: list[int] = []
        self._low: int | None = None  # None: not reading
        self._top = 0
        self._cursors: dict[object, _Cursor] = {}
        self._waiting = 0
        self._failing: BaseException | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._subscription: Any = None

    @classmethod
    def of(cls, app: EventLog) -> LogReader:
        """The reader of this application object: one per process in practice,
        shared by every follower built on it."""
        with _readers_lock:
            reader = _readers.get(app)
            if reader is None:
                reader = _readers[app] = cls(app.recorder, app.mapper)
            return reader

    # Consumers -------------------------------------------------------------

    def attach(self, consumer: object, stopping: threading.Event) -> None:
        with self._cond:
            self._cursors[consumer] = _Cursor(stopping)

    def detach(self, consumer: object) -> None:
        """Forget the consumer; the last one to go stops the reading."""
        with self._cond:
            self._cursors.pop(consumer, None)
            if self._cursors or self._thread is None:
                return
            thread, subscription = self._thread, self._subscription
            self._thread, self._subscription = None, None
            self._stop.set()
            self._generation += 1
            self._clear()
            self._cond.notify_all()
            self._demand.notify_all()
        if subscription is not None:
            subscription.stop()
        if thread is not threading.current_thread():
            thread.join(10)

    def cursors(self) -> dict[str, int | None]:
        """Each attached consumer's last position as the reader knows it (None
        before it first asked), by its name."""
        with self._cond:
            return {getattr(consumer, "name", repr(consumer)): cursor.after
                    for consumer, cursor in self._cursors.items()}

    def wake(self) -> None:
        """Wake the consumers waiting for entries (one of them is stopping)."""
        with self._cond:
            self._cond.notify_all()

    def take(self, consumer: object, after: int, limit: int,
             timeout: float = 1.0) -> list[Entry] | None:
        """Up to `limit` entries after `after` from the window, waiting up to
        `timeout` for some: [] when none came (or the consumer is stopping), None
        when the consumer must read them itself (`read`): it is behind the
        window, or the reader is failing."""
        deadline: float | None = None
        with self._cond:
            cursor = self._cursors[consumer]
            if self._thread is None or not self._thread.is_alive():
                self._start(after)
            while not cursor.stopping.is_set():
                low = self._low
                if self._failing is not None or low is None or after < low:
                    cursor.after = after  # outside: it constrains nothing
                    return None
                if self._top > after:
                    first = bisect.bisect_right(self._ids, after)
                    found = self._entries[first:first + limit]
                    cursor.after = found[-1].id
                    self._trim()
                    return found
                cursor.after = after
                if deadline is None:
                    deadline = time.monotonic() + timeout
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._waiting += 1
                self._demand.notify()  # the reader reads on demand
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
            return []

    def read(self, consumer: object, after: int, limit: int) -> list[Entry]:
        """Up to `limit` entries after `after`, read from the store for one consumer.

        What it reads that joins up with the window goes into it (room allowing),
        and the consumer gets the window's entries: so followers that start at
        different positions near each other share from then on (decoded once).
        """
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False)
        with self._cond:
            self.own += len(notifications)
            low, top = self._low, self._top
            if (notifications and low is not None and self._failing is None
                    and after <= top and notifications[-1].id >= low):
                below = [n for n in notifications if n.id <= low]
                above = [n for n in notifications if n.id > top]
                if len(self._ids) + len(below) + len(above) <= self.window:
                    if below:
                        self._entries[:0] = [Entry(n, self.decoder) for n in below]
                        self._ids[:0] = [n.id for n in below]
                    self._low = min(low, after)
                    if above:
                        self._put(above)
                    first = bisect.bisect_right(self._ids, after)
                    found = self._entries[first:first + limit]
                    if found:
                        cursor = self._cursors.get(consumer)
                        if cursor is not None:
                            cursor.after = found[-1].id
                        self._cond.notify_all()
                        return found
        return [Entry(n, self.decoder) for n in notifications]

    def pause(self, after: int, timeout: float) -> None:
        """Wait up to `timeout` for the window to hold something after `after`
        (a consumer that read on its own and found nothing new)."""
        with self._cond:
            if self._failing is None and self._low is not None and self._top > after:
                return
            self._cond.wait(timeout)

    # The reading -------------------------------------------------------------

    def _start(self, after: int) -> None:
        """Start reading after `after` (a consumer's own position, never ahead of it)."""
        self._generation += 1
        self._clear()
        self._low = self._top = after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._generation, self._stop),
                                        name="log-reader", daemon=True)
        self._thread.start()

    def _clear(self) -> None:
        self._entries, self._ids = [], []
        self._low, self._top, self._failing = None, 0, None

    def _run(self, generation: int, stop: threading.Event) -> None:
        backoff, said = Backoff(), None
        while not stop.is_set():
            try:
                self._follow(generation, stop)
                backoff.succeeded()
            except Exception as error:  # read again; consumers read on their own meanwhile
                if stop.is_set():
                    return
                with self._cond:
                    if generation == self._generation:
                        self._failing = error
                    self._cond.notify_all()
                if describe_error(error) != said:
                    said = describe_error(error)
                    log.warning("The log reader failed (%s); its consumers read on their "
                                "own until it reads again.", said)
                stop.wait(backoff.failed())
            else:
                said = None

    def _follow(self, generation: int, stop: threading.Event) -> None:
        with self._cond:
            start = self._top
        self.recorder.max_notification_id()  # the store answers: consumers may share again
        subscription = self.recorder.subscribe(gt=start)
        with subscription:
            with self._cond:
                if stop.is_set() or generation != self._generation:
                    return
                self._subscription = subscription
                self._failing = None
                self._cond.notify_all()
            for batch in batches(subscription, self.page):
                with self._cond:
                    while not stop.is_set() and not self._waiting:
                        self._demand.wait()  # on demand: a consumer waits for more
                    if stop.is_set() or generation != self._generation:
                        return
                    self._append(batch)
                    self._cond.notify_all()

    def _append(self, notifications: Sequence[Notification]) -> None:
        self.shared += len(notifications)
        fresh = [n for n in notifications if n.id > self._top]  # a consumer's read
        if fresh:                                                 # may have put them
            self._put(fresh)
        self._trim()

    def _put(self, notifications: Sequence[Notification]) -> None:
        """Add notifications that come right after the top of the window."""
        decoder = self.decoder
        self._entries.extend(Entry(n, decoder) for n in notifications)
        self._ids.extend(n.id for n in notifications)
        self._top = notifications[-1].id

    def _trim(self) -> None:
        """Drop the entries every consumer inside the window has taken (but the
        last `keep`), and any beyond `window` (a consumer that needed those reads
        on its own)."""
        low = self._low
        if low is None or not self._ids:
            return
        inside = [c.after for c in self._cursors.values()
                  if c.after is not None and c.after >= low]
        cut = bisect.bisect_right(self._ids, min(inside)) if inside else len(self._ids)
        cut = max(min(cut, len(self._ids) - self.keep), len(self._ids) - self.window)
        if cut > 0:
            self._low = self._ids[cut - 1]
            del self._entries[:cut]
            del self._ids[:cut]


_readers: weakref.WeakKeyDictionary[Any, LogReader] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()
