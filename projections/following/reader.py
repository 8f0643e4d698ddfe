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

Here: `LogReader`, the consumers' side (taking from the window, or reading on
their own). Its state and the thread that fills the window are its base's
(`projections.following.window`); the entries it hands out, decoded once, are
`projections.following.entries`'.
"""

from __future__ import annotations

import bisect
import threading
import time
import weakref
from typing import Any

from projections.following.entries import Entry
from projections.following.window import Cursor, LogWindow
from projections.log import EventLog


class LogReader(LogWindow):
    """The log, read once for the consumers of a process (see the module docstring)."""

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
            self._cursors[consumer] = Cursor(stopping)

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


_readers: weakref.WeakKeyDictionary[Any, LogReader] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()
